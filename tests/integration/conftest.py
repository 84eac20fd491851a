"""Peer detection and fixtures for the integration tests against real SMTP peers.

A test module names the peers it needs with `pytest.mark.peer(name)`. When a peer is missing,
its tests skip with the reason, unless ADMINKB_REQUIRE_PEERS=1: then a missing peer fails the
test, so that CI, which installs the peers, can never skip them silently.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path

import pytest

from .postfix import PrivatePostfix, postfix_available

REQUIRE_PEERS_VARIABLE = "ADMINKB_REQUIRE_PEERS"

# The conventional loopback addresses of the project: the servers listen on 127.0.0.1, a
# trusted application connects from 127.0.0.10, a stranger from 127.0.0.66.
SERVER_ADDRESS = "127.0.0.1"
TRUSTED_CLIENT = "127.0.0.10"
STRANGER_CLIENT = "127.0.0.66"

# Seconds per SMTP step, passed as swaks's --timeout.
SWAKS_STEP_TIMEOUT = 10
# Seconds for a whole swaks run, below the tests' own timeout so that a stuck run fails here.
SWAKS_RUN_TIMEOUT = 45


def peers_required() -> bool:
    """Return whether a missing peer must fail the test instead of skipping it."""
    return os.environ.get(REQUIRE_PEERS_VARIABLE, "").strip() == "1"


def require_peer(name: str, found: bool, reason: str) -> None:
    """Skip the current test when peer `name` was not found, or fail it when peers are required."""
    if found:
        return
    text = f"integration peer {name!r} is not available: {reason}"
    if peers_required():
        pytest.fail(f"{text}. {REQUIRE_PEERS_VARIABLE}=1 is set, so a missing peer is a failure.",
                    pytrace=False)
    pytest.skip(text)


def swaks_available() -> tuple[bool, str]:
    """Return whether the swaks command can run, and the reason when it cannot."""
    path = shutil.which("swaks")
    if path is None:
        return False, "the swaks command is not on PATH (Debian package: swaks)"
    try:
        completed = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=20,
                                   stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as error:
        return False, f"{path} --version failed: {error}"
    if completed.returncode != 0:
        return False, f"{path} --version exited with {completed.returncode}: {completed.stderr.strip()}"
    return True, ""


def loopback_aliases_available() -> tuple[bool, str]:
    """Return whether this host can use 127.0.0.10 and 127.0.0.66 as source addresses.

    Linux routes all of 127.0.0.0/8 to loopback. Some systems have only 127.0.0.1, and there
    the relay tests cannot tell a trusted client from a stranger.
    """
    for address in (TRUSTED_CLIENT, STRANGER_CLIENT):
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe_socket:
                probe_socket.bind((address, 0))
        except OSError as error:
            return False, (f"cannot bind {address} ({error}); this host has no loopback address "
                           "besides 127.0.0.1, so relay control by client address cannot be tested")
    return True, ""


PEER_CHECKS: dict[str, Callable[[], tuple[bool, str]]] = {
    "swaks": swaks_available,
    "postfix": postfix_available,
    "loopback-aliases": loopback_aliases_available,
}


@cache
def check_peer(name: str) -> tuple[bool, str]:
    """Run the check for peer `name` once per session."""
    try:
        check = PEER_CHECKS[name]
    except KeyError:
        raise pytest.UsageError(f"unknown integration peer {name!r}; known: {sorted(PEER_CHECKS)}") from None
    return check()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Apply require_peer() for every `peer` mark of the test before its fixtures start."""
    for mark in item.iter_markers(name="peer"):
        (name,) = mark.args
        found, reason = check_peer(name)
        require_peer(name, found, reason)


def run_swaks(*arguments: str) -> subprocess.CompletedProcess:
    """Run swaks with `arguments` plus a per-step timeout, and return its exit code and output.

    swaks writes the transcript to stdout (`->` sent, `<-` received, `<**` error reply) and
    its own errors to stderr.
    """
    command = ["swaks", "--timeout", str(SWAKS_STEP_TIMEOUT), *arguments]
    return subprocess.run(command, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                          timeout=SWAKS_RUN_TIMEOUT)


def swaks_arguments(*, port: int, source_address: str, mail_from: str, rcpt_to: str,
                    quit_after: str | None = "RCPT", helo: str = "client.example.net",
                    server: str = SERVER_ADDRESS, subject: str | None = None) -> list[str]:
    """Build the swaks arguments for one session from `source_address` to `server`:`port`.

    `--helo` is always given, so that swaks does not look up this host's name for EHLO.
    `quit_after=None` runs the whole session, DATA included. `subject` replaces the Subject
    header of swaks's test message.
    """
    arguments = ["--server", server, "--port", str(port), "--local-interface", source_address,
                 "--helo", helo, "--from", mail_from, "--to", rcpt_to]
    if quit_after is not None:
        arguments += ["--quit-after", quit_after]
    if subject is not None:
        arguments += ["--header", f"Subject: {subject}"]
    return arguments


@pytest.fixture(scope="module")
def private_postfix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivatePostfix]:
    """A private Postfix on 127.0.0.1 that lets only 127.0.0.10 relay."""
    log_folder = tmp_path_factory.mktemp("postfix-logs")
    with PrivatePostfix(mynetworks=(f"{TRUSTED_CLIENT}/32",), log_folder=log_folder) as instance:
        yield instance


@pytest.fixture
def start_postfix(tmp_path: Path) -> Iterator[Callable[..., PrivatePostfix]]:
    """A factory that starts a private Postfix with other settings and stops it after the test."""
    started: list[PrivatePostfix] = []

    def start(**settings: object) -> PrivatePostfix:
        instance = PrivatePostfix(log_folder=tmp_path / "postfix-logs", **settings)
        instance.start()
        started.append(instance)
        return instance

    yield start
    for instance in started:
        instance.stop()
