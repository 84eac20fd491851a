"""A private Postfix instance on loopback, started and stopped by the integration tests.

The instance has its own config_directory, queue_directory and data_directory, listens only on
127.0.0.1 at a free port, performs no DNS lookups and delivers nothing: every transport is
`discard`, so an accepted message is logged and thrown away. It never reads or writes the system
instance's main.cf, master.cf, queue or data directory. Starting it needs root, because the
master daemon binds its port and then drops privileges to the `postfix` user (mail_owner).

Checked with Debian's postfix 3.7.11: `postfix -c DIR start-fg` creates the queue
subdirectories itself (`post-install create-missing`), and smtpd sends its 220 banner about one
second after the start.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

logger = logging.getLogger("adminkb.tests.postfix")

POSTFIX_COMMAND = Path("/usr/sbin/postfix")
POSTCONF_COMMAND = Path("/usr/sbin/postconf")

# Postfix's own commands (postconf, postfix stop) finish in well under a second on an idle host.
COMMAND_TIMEOUT = 20.0
# How long the master may take to exit after `postfix stop` before it is killed.
STOP_TIMEOUT = 10.0
# Bounded attempts when another program takes the chosen free port before the master binds it.
START_ATTEMPTS = 3


class PostfixStartError(RuntimeError):
    """The private Postfix instance sent no 220 banner on its port. The message ends with the log tail."""


def postfix_available() -> tuple[bool, str]:
    """Return whether a private Postfix instance can run here, and the reason when it cannot."""
    if not POSTFIX_COMMAND.exists():
        return False, f"{POSTFIX_COMMAND} not found (Debian package: postfix)"
    if not POSTCONF_COMMAND.exists():
        return False, f"{POSTCONF_COMMAND} not found (Debian package: postfix)"
    if os.geteuid() != 0:
        return False, ("a private Postfix instance needs root to start, because its master "
                       "daemon drops privileges to the postfix user; run the integration tests "
                       "as root")
    mail_owner = _postconf_default("mail_owner")
    try:
        import pwd

        pwd.getpwnam(mail_owner)
    except KeyError:
        return False, (f"the Postfix mail_owner account {mail_owner!r} does not exist "
                       "(reinstall the Debian package postfix)")
    return True, ""


def _postconf_default(name: str) -> str:
    completed = subprocess.run([str(POSTCONF_COMMAND), "-dh", name], capture_output=True, text=True,
                               timeout=COMMAND_TIMEOUT, check=True)
    return completed.stdout.strip()


def compatibility_level() -> str:
    """Return the newest compatibility_level that the installed Postfix accepts.

    Postfix 3.6 and later accept their own "major.minor", and with a lower level every
    Postfix command logs a warning about backwards-compatible defaults. Earlier 3.x versions
    know only levels up to 2.
    """
    version = _postconf_default("mail_version")
    found = re.match(r"(\d+)\.(\d+)", version)
    if found is None:
        return "2"
    major, minor = int(found[1]), int(found[2])
    return f"{major}.{minor}" if (major, minor) >= (3, 6) else "2"


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that is free on `host` right now.

    NOTE: another program may take the port before Postfix binds it, so `PrivatePostfix.start`
    retries with a new port when that happens.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe_socket:
        probe_socket.bind((host, 0))
        return probe_socket.getsockname()[1]


class PrivatePostfix:
    """One Postfix instance under its own temporary directory, for use as a context manager.

    `mynetworks` lists the client networks that may relay (`permit_mynetworks`), and an empty
    sequence denies relay to every client. Mail for `local_domain` (mydestination) is accepted
    from anyone. `log_folder`, when given, receives a copy of the instance's maillog file at
    stop, so the log outlives the instance directory, which `stop()` removes. `settings` adds
    main.cf parameters or replaces the values that `main_cf()` writes. `extra_services` adds
    master.cf lines, such as the tlsmgr service that smtpd needs before it offers STARTTLS.
    """

    def __init__(self, *, mynetworks: Sequence[str] = ("127.0.0.10/32",),
                 local_domain: str = "postfix.test", host: str = "127.0.0.1",
                 start_timeout: float = 10.0, log_folder: Path | None = None,
                 settings: Mapping[str, str] | None = None, extra_services: Sequence[str] = ()) -> None:
        if not host.startswith("127."):
            raise ValueError(f"the private Postfix instance listens on loopback only, not {host!r}")
        self.mynetworks = tuple(mynetworks)
        self.local_domain = local_domain
        self.host = host
        self.port = 0
        self.start_timeout = start_timeout
        self.log_folder = log_folder
        self.extra_settings = dict(settings or {})
        self.extra_services = tuple(extra_services)
        self.base_directory: Path | None = None
        self._master_runner: subprocess.Popen | None = None

    @property
    def running(self) -> bool:
        """Whether the master started by this object is still running."""
        return self._master_runner is not None and self._master_runner.poll() is None

    # Directory layout ---------------------------------------------------------------------

    @property
    def config_directory(self) -> Path:
        return self._base() / "config"

    @property
    def queue_directory(self) -> Path:
        return self._base() / "queue"

    @property
    def data_directory(self) -> Path:
        return self._base() / "data"

    @property
    def maillog_file(self) -> Path:
        return self._base() / "maillog"

    def _base(self) -> Path:
        if self.base_directory is None:
            raise RuntimeError("the private Postfix instance has no directory before start()")
        return self.base_directory

    # Configuration ------------------------------------------------------------------------

    def main_cf(self) -> str:
        """Return the text of main.cf for this instance."""
        base = self._base()
        settings = {
            "compatibility_level": compatibility_level(),
            "queue_directory": str(self.queue_directory),
            "data_directory": str(self.data_directory),
            "maillog_file": str(self.maillog_file),
            "maillog_file_prefixes": str(base),
            "syslog_name": "postfix-adminkb-test",
            # Explicit names, so that Postfix neither calls gethostname() nor looks up a domain.
            "myhostname": f"mx.{self.local_domain}",
            "mydomain": self.local_domain,
            "myorigin": "$mydomain",
            "mydestination": self.local_domain,
            "relay_domains": "",
            "inet_interfaces": self.host,
            "inet_protocols": "ipv4",
            "mynetworks": ", ".join(self.mynetworks),
            "smtpd_relay_restrictions": "permit_mynetworks, reject_unauth_destination",
            # No DNS at all: no reverse lookup of clients, no MX lookups for delivery.
            "smtpd_peername_lookup": "no",
            "smtp_dns_support_level": "disabled",
            "smtp_host_lookup": "native",
            "lmtp_host_lookup": "native",
            # Nothing leaves the machine: every accepted message is discarded.
            "default_transport": "discard",
            "relay_transport": "discard",
            "local_transport": "discard",
            "virtual_transport": "discard",
            # Any local part at local_domain is accepted, and no alias or passwd map is read.
            "alias_maps": "",
            "alias_database": "",
            "local_recipient_maps": "",
            "biff": "no",
        }
        settings.update(self.extra_settings)
        lines = ["# Private Postfix instance for the adminkb integration tests."]
        lines += [f"{name} = {value}" for name, value in settings.items()]
        return "\n".join(lines) + "\n"

    def master_cf(self) -> str:
        """Return the text of master.cf: smtpd on host:port and the services it needs, no chroot."""
        services = [
            f"{self.host}:{self.port} inet n - n - - smtpd",
            "cleanup unix n - n - 0 cleanup",
            "qmgr unix n - n 300 1 qmgr",
            "rewrite unix - - n - - trivial-rewrite",
            "bounce unix - - n - 0 bounce",
            "defer unix - - n - 0 bounce",
            "trace unix - - n - 0 bounce",
            "verify unix - - n - 1 verify",
            "proxymap unix - - n - - proxymap",
            "error unix - - n - - error",
            "retry unix - - n - - error",
            "discard unix - - n - - discard",
            "anvil unix - - n - 1 anvil",
            "scache unix - - n - 1 scache",
            "postlog unix-dgram n - n - 1 postlogd",
            *self.extra_services,
        ]
        return "# service type private unpriv chroot wakeup maxproc command\n" + "\n".join(services) + "\n"

    def _write_configuration(self) -> None:
        self.config_directory.mkdir(mode=0o755, exist_ok=True)
        (self.config_directory / "main.cf").write_text(self.main_cf(), encoding="ascii")
        (self.config_directory / "master.cf").write_text(self.master_cf(), encoding="ascii")
        # postconf warns on stderr about unknown or misspelled parameters, which must stop the start.
        completed = self._run_postfix_tool(POSTCONF_COMMAND, "-n")
        if completed.stderr.strip():
            raise PostfixStartError(f"postconf rejected the private main.cf:\n{completed.stderr}")

    def postconf(self, *names: str) -> dict[str, str]:
        """Return the instance's effective values of the named parameters (`postconf -c DIR`)."""
        completed = self._run_postfix_tool(POSTCONF_COMMAND, *names)
        values = {}
        for line in completed.stdout.splitlines():
            # An empty value prints as "name =" with no space after the sign.
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip()
        return values

    def _run_postfix_tool(self, command: Path, *arguments: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(command), "-c", str(self.config_directory), *arguments],
                              capture_output=True, text=True, timeout=COMMAND_TIMEOUT,
                              stdin=subprocess.DEVNULL)

    # Start and stop -----------------------------------------------------------------------

    def start(self) -> None:
        """Create the instance directory, start the master in the foreground and wait for smtpd.

        Raises PostfixStartError, with the tail of the maillog, when postconf rejects the
        configuration or smtpd does not send its 220 banner within `start_timeout` seconds.
        Nothing of the instance is left running or on disk after a failed start.
        """
        if self._master_runner is not None:
            raise RuntimeError("the private Postfix instance is already running")
        # NOTE: pytest's tmp_path lies under a 0700 directory that the postfix user cannot
        # traverse, and the master opens data_directory/master.lock as that user. So the
        # instance gets its own directory in the system temp folder, removed by stop().
        self.base_directory = Path(tempfile.mkdtemp(prefix="adminkb-postfix-"))
        try:
            self.base_directory.chmod(0o711)
            # queue_directory must exist and belong to root. Postfix creates the rest itself.
            self.queue_directory.mkdir(mode=0o755)
            self._start_on_free_port()
        except BaseException:
            self._stop_master()
            self._save_maillog()
            self._remove_directory()
            raise
        logger.info("private Postfix started on %s:%d in %s", self.host, self.port, self.base_directory)

    def _start_on_free_port(self) -> None:
        for attempt in range(1, START_ATTEMPTS + 1):
            self.port = free_port(self.host)
            self._write_configuration()
            self._launch_master()
            if self._wait_for_banner():
                return
            log_tail = self._maillog_tail()
            self._stop_master()
            # The master's words when its listening port is taken (Postfix 3.7).
            port_taken = f"bind {self.host} port {self.port}: Address already in use"
            if port_taken not in log_tail or attempt == START_ATTEMPTS:
                raise PostfixStartError(
                    f"Postfix sent no 220 banner on {self.host}:{self.port} within "
                    f"{self.start_timeout} s. Last maillog lines:\n{log_tail}")
            logger.warning("port %d was taken before Postfix bound it, retrying with another port",
                           self.port)

    def _launch_master(self) -> None:
        runner_log = (self._base() / "start-fg.out").open("ab")
        with runner_log:
            # `start-fg` keeps the master as a child of this process (through postfix-script),
            # so stop() can wait for it and reap it. The new session keeps the master's
            # process-group signals away from pytest.
            self._master_runner = subprocess.Popen(
                [str(POSTFIX_COMMAND), "-c", str(self.config_directory), "start-fg"],
                stdin=subprocess.DEVNULL, stdout=runner_log, stderr=subprocess.STDOUT,
                start_new_session=True)

    def _wait_for_banner(self) -> bool:
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self._master_runner.poll() is not None:
                return False
            try:
                with socket.create_connection((self.host, self.port), timeout=1.0) as connection:
                    connection.settimeout(2.0)
                    banner = connection.recv(512)
                    connection.sendall(b"QUIT\r\n")
                if banner.startswith(b"220"):
                    return True
            except OSError:
                pass
            time.sleep(0.05)
        return False

    def stop(self) -> None:
        """Stop the master with `postfix -c DIR stop`, kill it if it stays, remove the directory."""
        if self.base_directory is None:
            return
        self._stop_master()
        self._save_maillog()
        self._remove_directory()
        logger.info("private Postfix on %s:%d stopped", self.host, self.port)

    def _stop_master(self) -> None:
        runner = self._master_runner
        if runner is None:
            return
        if runner.poll() is None:
            completed = self._run_postfix_tool(POSTFIX_COMMAND, "stop")
            if completed.returncode != 0:
                logger.warning("postfix stop exited with %d: %s", completed.returncode,
                               completed.stderr.strip())
            try:
                runner.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                logger.warning("the Postfix master did not exit within %s s; killing it", STOP_TIMEOUT)
                self._kill_master(runner)
        self._master_runner = None

    def _kill_master(self, runner: subprocess.Popen) -> None:
        master_pid = self._master_pid()
        # Kill only a master whose parent is the postfix-script that this object started.
        if master_pid is not None and _parent_pid(master_pid) == runner.pid:
            try:
                os.kill(master_pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        runner.kill()
        runner.wait(timeout=STOP_TIMEOUT)

    def _master_pid(self) -> int | None:
        try:
            return int((self.queue_directory / "pid" / "master.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def _maillog_tail(self, line_count: int = 20) -> str:
        try:
            lines = self.maillog_file.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError as error:
            return f"(no maillog: {error})"
        return "\n".join(lines[-line_count:])

    def maillog(self) -> str:
        """Return the instance's log so far (empty before the first line is written)."""
        try:
            return self.maillog_file.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def wait_for_log(self, pattern: str, timeout: float = 5.0) -> re.Match | None:
        """Return the first match of `pattern` in the maillog, polling for up to `timeout` s.

        Postfix writes its log through the postlogd service, so a line can appear a moment
        after the SMTP reply that it describes.
        """
        deadline = time.monotonic() + timeout
        while True:
            found = re.search(pattern, self.maillog(), re.MULTILINE)
            if found or time.monotonic() >= deadline:
                return found
            time.sleep(0.05)

    def _save_maillog(self) -> None:
        if self.log_folder is None or not self.maillog_file.exists():
            return
        self.log_folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.maillog_file, self.log_folder / f"postfix-{self.port}.maillog")

    def _remove_directory(self) -> None:
        if self.base_directory is not None:
            shutil.rmtree(self.base_directory, ignore_errors=True)
            self.base_directory = None

    def __enter__(self) -> PrivatePostfix:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _parent_pid(pid: int) -> int | None:
    """Return the parent of `pid` from /proc, or None when the process is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name in field 2 may contain spaces; the fields after its ")" are fixed.
    return int(stat.rsplit(")", 1)[1].split()[1])
