"""`adminkb smtp audit` against a private Postfix with relay closed and open, STARTTLS on.

The audit must give the right verdict and exit status in both configurations and leave
nothing in Postfix's queue, because it never sends DATA.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path

import pytest

from adminkb.cli import build_parser
from adminkb.lab.tls import write_certificate
from adminkb.smtp.audit import MAX_CONNECTIONS, Outcome, audit

from .conftest import STRANGER_CLIENT

pytestmark = [
    pytest.mark.peer("postfix"),
    pytest.mark.peer("loopback-aliases"),
    pytest.mark.timeout(120),
]

TIMEOUT = 10
QUEUE_FOLDERS = ("maildrop", "incoming", "active", "deferred", "hold", "corrupt")
# Without tlsmgr, smtpd logs "no entropy for TLS key generation" and replies 454 to STARTTLS.
TLS_SERVICES = ("tlsmgr unix - - n 1000? 1 tlsmgr",)


def tls_settings(folder: Path, *, hardened: bool = True) -> dict[str, str]:
    """Return main.cf settings that turn on opportunistic STARTTLS with a fresh self-signed certificate.

    Start the instance with `extra_services=TLS_SERVICES` as well. Postfix 3.7's opportunistic
    TLS accepts TLS 1.0 and 1.1 and anonymous suites, so `hardened` turns those off.

    smtpd reads the key while it still runs as root, so the files may stay in pytest's private folder.
    """
    certificate = write_certificate(folder, ["mx.postfix.test", "127.0.0.1"])
    settings = {"smtpd_tls_security_level": "may", "smtpd_tls_cert_file": str(certificate.certificate_file),
                "smtpd_tls_key_file": str(certificate.key_file)}
    if hardened:
        settings.update({"smtpd_tls_protocols": ">=TLSv1.2", "smtpd_tls_exclude_ciphers": "aNULL, eNULL"})
    return settings


def queued_files(instance) -> list[Path]:
    files = []
    for name in QUEUE_FOLDERS:
        folder = instance.queue_directory / name
        if folder.exists():
            files += [path for path in folder.rglob("*") if path.is_file()]
    return files


def run_cli(*arguments: str) -> tuple[int, str]:
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        parsed = build_parser().parse_args(["smtp", "audit", *arguments])
        status = parsed.handler(parsed)
    return status, output.getvalue()


def test_audit_relay_closed(start_postfix, tmp_path):
    settings = tls_settings(tmp_path / "tls")
    instance = start_postfix(settings=settings, extra_services=TLS_SERVICES)
    report = audit(instance.host, instance.port, local_domain=instance.local_domain,
                   cafile=settings["smtpd_tls_cert_file"], source_address=STRANGER_CLIENT, timeout=TIMEOUT)

    assert report.item("relay").outcome is Outcome.PASS, report.item("relay").explanation
    assert "Relay access denied" in report.item("relay").values["reply"]
    assert report.item("percent_relay").outcome is Outcome.PASS
    assert report.item("starttls").outcome is Outcome.PASS
    assert report.item("tls_versions").outcome is Outcome.PASS, report.item("tls_versions").explanation
    assert report.item("certificate_trust").outcome is Outcome.PASS, report.item("certificate_trust").explanation
    assert report.item("certificate_expiry").outcome is Outcome.PASS
    assert report.item("auth_before_tls").outcome is Outcome.PASS
    assert report.item("banner_version").outcome is Outcome.PASS
    assert report.item("vrfy").outcome is Outcome.PASS
    assert report.problems == []
    assert report.exit_code == 0
    assert report.connections <= MAX_CONNECTIONS
    assert queued_files(instance) == []
    assert "cleanup" not in instance.maillog()


def test_audit_relay_open(start_postfix, tmp_path):
    settings = tls_settings(tmp_path / "tls")
    instance = start_postfix(mynetworks=("127.0.0.0/8",), settings=settings, extra_services=TLS_SERVICES)
    report = audit(instance.host, instance.port, local_domain=instance.local_domain,
                   cafile=settings["smtpd_tls_cert_file"], source_address=STRANGER_CLIENT, timeout=TIMEOUT)

    relay = report.item("relay")
    assert relay.outcome is Outcome.PROBLEM
    assert relay.values["reply"].startswith("250")
    assert [item.name for item in report.problems] == ["relay"]
    assert report.exit_code == 1
    assert queued_files(instance) == []
    logged = instance.wait_for_log(rf"disconnect from \S+\[{STRANGER_CLIENT}\]")
    assert logged is not None, instance.maillog()
    assert "cleanup" not in instance.maillog()


def test_audit_cli_exit_status(start_postfix, tmp_path):
    settings = tls_settings(tmp_path / "tls")
    closed = start_postfix(settings=settings, extra_services=TLS_SERVICES)
    opened = start_postfix(mynetworks=("127.0.0.0/8",), settings=settings, extra_services=TLS_SERVICES)
    common = ["--lab-ca", settings["smtpd_tls_cert_file"], "--source-ip", STRANGER_CLIENT,
              "--timeout", str(TIMEOUT), "--format", "json"]

    closed_status, closed_output = run_cli(f"{closed.host}:{closed.port}", *common)
    opened_status, opened_output = run_cli(f"{opened.host}:{opened.port}", *common)

    assert closed_status == 0, closed_output
    assert opened_status == 1, opened_output
    assert json.loads(opened_output)["exit_code"] == 1
    assert queued_files(closed) == []
    assert queued_files(opened) == []


def test_audit_without_ca_reports_untrusted(start_postfix, tmp_path):
    instance = start_postfix(settings=tls_settings(tmp_path / "tls"), extra_services=TLS_SERVICES)
    report = audit(instance.host, instance.port, source_address=STRANGER_CLIENT, timeout=TIMEOUT)

    trust = report.item("certificate_trust")
    assert trust.outcome is Outcome.PROBLEM
    assert trust.finding == "not_trusted"
    assert "mx.postfix.test" in trust.values["names"]
    assert report.exit_code == 1


def test_audit_without_tls(start_postfix):
    instance = start_postfix()
    report = audit(instance.host, instance.port, source_address=STRANGER_CLIENT, timeout=TIMEOUT)

    assert report.item("starttls").outcome is Outcome.PROBLEM
    assert report.item("tls_versions").outcome is Outcome.NOT_CHECKED
    assert report.connections == 1


def test_audit_flags_postfix_tls_defaults(start_postfix, tmp_path):
    settings = tls_settings(tmp_path / "tls", hardened=False)
    instance = start_postfix(settings=settings, extra_services=TLS_SERVICES)
    report = audit(instance.host, instance.port, cafile=settings["smtpd_tls_cert_file"],
                   source_address=STRANGER_CLIENT, timeout=TIMEOUT)

    versions = report.item("tls_versions")
    assert versions.outcome is Outcome.PROBLEM
    assert versions.values["deprecated"] == "TLSv1, TLSv1.1"
    weak = report.item("weak_ciphers")
    assert weak.outcome is Outcome.PROBLEM
    assert weak.values["cipher"].startswith(("AECDH", "ADH"))
    assert report.item("relay").outcome is Outcome.PASS
    assert report.exit_code == 1
    assert queued_files(instance) == []


def test_audit_postfix_starttls_rejected(start_postfix, tmp_path):
    # Without tlsmgr, Postfix lists STARTTLS and replies 454 to it, so the TLS items stay unchecked.
    instance = start_postfix(settings=tls_settings(tmp_path / "tls"))
    report = audit(instance.host, instance.port, source_address=STRANGER_CLIENT, timeout=TIMEOUT)

    starttls = report.item("starttls")
    assert starttls.outcome is Outcome.PROBLEM
    assert starttls.finding == "rejected"
    assert starttls.values["reply"].startswith("454")
    for name in ("tls_versions", "weak_ciphers", "certificate_trust", "certificate_expiry"):
        assert report.item(name).outcome is Outcome.NOT_CHECKED, name
        assert report.item(name).finding == "starttls_rejected", name
    assert report.connections == 2
    assert report.exit_code == 1
    # Postfix mails postmaster about its own TLS failure, and this instance discards that notice.
    # No message comes from the audit.
    notice = instance.wait_for_log(r"qmgr\[\d+\]: (\w+): from=<double-bounce@")
    assert notice is not None, instance.maillog()
    removed = instance.wait_for_log(rf"qmgr\[\d+\]: {notice.group(1)}: removed")
    assert removed is not None, instance.maillog()
    assert re.search(r"qmgr\[\d+\]: \w+: from=<relay-audit@", instance.maillog()) is None
    assert queued_files(instance) == []
