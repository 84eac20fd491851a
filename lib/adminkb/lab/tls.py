"""STARTTLS for the mail lab: a self-signed certificate made at start, and the server's TLS context.

The certificate and its private key are written only to the lab's own folder (`<root>/tls`),
so a runbook can hand the certificate to a client as its only trusted CA and nothing outside
the lab changes. Validity counts from the real time, not the lab clock, because TLS clients
check it against the real time.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import ssl
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from adminkb.errors import InputError

log = logging.getLogger("adminkb.lab")

CERTIFICATE_FILE = "lab-certificate.pem"
KEY_FILE = "lab-key.pem"
DEFAULT_LIFETIME = timedelta(days=90)
# Clocks of client and lab may differ a little; the certificate is valid from slightly before now.
BACKDATE = timedelta(hours=1)

# The names `ssl.TLSVersion` uses, as the lab's `tls_minimum_version` option accepts them.
TLS_VERSIONS = {"TLSv1": ssl.TLSVersion.TLSv1, "TLSv1.1": ssl.TLSVersion.TLSv1_1,
                "TLSv1.2": ssl.TLSVersion.TLSv1_2, "TLSv1.3": ssl.TLSVersion.TLSv1_3}


@dataclass(frozen=True)
class LabCertificate:
    """The files and facts of the lab's certificate."""

    certificate_file: Path
    key_file: Path
    names: tuple[str, ...]
    not_after: datetime


def write_certificate(folder: Path, names: Sequence[str], *, not_after: datetime | None = None,
                      now: datetime | None = None) -> LabCertificate:
    """Create a self-signed certificate for `names` (host names or IP addresses) in `folder`.

    The certificate is its own CA (basicConstraints CA:TRUE), so a client can trust exactly
    this certificate with `cafile=`. The key file is readable by its owner only.
    """
    now = now or datetime.now(timezone.utc)
    not_after = not_after or now + DEFAULT_LIFETIME
    not_before = min(now - BACKDATE, not_after - BACKDATE)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0]),
                         x509.NameAttribute(NameOID.ORGANIZATION_NAME, "adminkb mail lab")])
    alternative_names: list[x509.GeneralName] = []
    for name in names:
        try:
            alternative_names.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alternative_names.append(x509.DNSName(name))
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName(alternative_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, content_commitment=False,
                                     key_encipherment=False, data_encipherment=False, key_agreement=False,
                                     crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder.mkdir(parents=True, exist_ok=True)
    certificate_file = folder / CERTIFICATE_FILE
    key_file = folder / KEY_FILE
    certificate_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_bytes = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption())
    descriptor = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(key_bytes)
    log.info("lab certificate for %s written to %s, valid until %s", ", ".join(names), certificate_file,
             not_after.isoformat())
    return LabCertificate(certificate_file=certificate_file, key_file=key_file, names=tuple(names),
                          not_after=not_after)


def checked_tls_version(version: str | None) -> ssl.TLSVersion | None:
    """Return the `ssl.TLSVersion` for a name such as "TLSv1.2"; None stays None."""
    if version is None:
        return None
    try:
        return TLS_VERSIONS[str(version)]
    except KeyError:
        raise InputError("lab.invalid_tls_version", value=version, names=", ".join(TLS_VERSIONS),
                         next_key="lab.invalid_tls_version_next") from None


def server_context(certificate: LabCertificate, *, minimum_version: ssl.TLSVersion | None = None,
                   ciphers: str | None = None) -> ssl.SSLContext:
    """Build the lab's server TLS context.

    `minimum_version` below TLS 1.2 and `ciphers` with weak suites exist to show a badly set up
    server. Both lower OpenSSL's security level to 0, because OpenSSL 3 refuses TLS 1.0 and 1.1
    and many weak suites at its default level.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificate.certificate_file, certificate.key_file)
    weak = minimum_version is not None and minimum_version < ssl.TLSVersion.TLSv1_2
    if minimum_version is not None:
        with warnings.catch_warnings():
            # Python deprecates TLS 1.0 and 1.1 on purpose; here the old versions are the point.
            warnings.simplefilter("ignore", DeprecationWarning)
            context.minimum_version = minimum_version
    if ciphers is not None:
        try:
            context.set_ciphers(ciphers)
        except ssl.SSLError:
            raise InputError("lab.invalid_tls_ciphers", value=ciphers,
                             next_key="lab.invalid_tls_ciphers_next") from None
    elif weak:
        context.set_ciphers("DEFAULT:@SECLEVEL=0")
    return context
