"""Reading certificates and keys (pure): PEM parsing and what `pki list` shows of a certificate.

Place: docs/architecture.md, "Layers": pure layer.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ovsnet.errors import InvalidInput
from ovsnet.pki.profile import EXPIRY_WARNING_DAYS, PURPOSE

if TYPE_CHECKING:  # cryptography is a heavy import: keep `ovsnet --help` fast
    from cryptography import x509


@dataclass(frozen=True)
class CertSummary:
    """What `pki list` and `ovsnet status` show about a certificate. Holds no secret."""

    subject: str
    issuer: str
    common_name: str | None
    dns_names: tuple[str, ...]
    ip_addresses: tuple[str, ...]
    not_before: dt.datetime
    not_after: dt.datetime
    fingerprint_sha256: str
    is_ca: bool
    serial: int = 0
    purpose: str | None = None  # the OU of the CA (its own, or its issuer's); None: legacy

    def days_left(self, now: dt.datetime) -> int:
        return (self.not_after - now).days

    def expires_soon(self, now: dt.datetime, days: int = EXPIRY_WARNING_DAYS) -> bool:
        return self.not_after - now <= dt.timedelta(days=days)

    def expired(self, now: dt.datetime) -> bool:
        return not self.not_before <= now <= self.not_after

    def as_json(self, now: dt.datetime) -> dict:
        return {
            "subject": self.subject,
            "issuer": self.issuer,
            "common_name": self.common_name,
            "dns_names": list(self.dns_names),
            "ip_addresses": list(self.ip_addresses),
            "not_before": self.not_before.isoformat(),
            "not_after": self.not_after.isoformat(),
            "days_left": self.days_left(now),
            "expired": self.expired(now),
            "expires_soon": self.expires_soon(now),
            "fingerprint_sha256": self.fingerprint_sha256,
            "is_ca": self.is_ca,
            "serial": serial_hex(self.serial),
            "purpose": self.purpose,
        }


def serial_hex(serial: int) -> str:
    """A serial number as whole bytes in hex, the way OpenSSL, Go and etcd's logs print it."""
    text = f"{serial:x}"
    return text if len(text) % 2 == 0 else "0" + text


def load_certificate(data: bytes, what: str = "certificate") -> x509.Certificate:
    from cryptography import x509

    try:
        return x509.load_pem_x509_certificate(data)
    except ValueError:
        raise InvalidInput(f"{what} is not a PEM X.509 certificate", "give a PEM file") from None


def load_private_key(data: bytes, what: str = "private key"):
    from cryptography.hazmat.primitives import serialization

    try:
        return serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        # The message must not quote the data: it is a secret.
        raise InvalidInput(
            f"{what} is not an unencrypted PEM private key", "give an unencrypted PEM key file"
        ) from None


def fingerprint(cert: x509.Certificate) -> str:
    from cryptography.hazmat.primitives import hashes

    return ":".join(f"{b:02X}" for b in cert.fingerprint(hashes.SHA256()))


def summarize(cert: x509.Certificate) -> CertSummary:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns = tuple(san.get_values_for_type(x509.DNSName))
        ips = tuple(str(ip) for ip in san.get_values_for_type(x509.IPAddress))
    except x509.ExtensionNotFound:
        dns, ips = (), ()
    try:
        is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        is_ca = False
    units = (cert.subject if is_ca else cert.issuer).get_attributes_for_oid(
        NameOID.ORGANIZATIONAL_UNIT_NAME
    )
    purpose = str(units[0].value) if units and units[0].value in PURPOSE else None
    return CertSummary(
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        common_name=str(cns[0].value) if cns else None,
        dns_names=dns,
        ip_addresses=ips,
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        fingerprint_sha256=fingerprint(cert),
        is_ca=is_ca,
        serial=cert.serial_number,
        purpose=purpose,
    )


def leaf_ekus(cert: x509.Certificate) -> frozenset[str] | None:
    """The dotted EKU OIDs of a certificate; None when it has no EKU (usable for anything)."""
    from cryptography import x509

    try:
        value = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return None
    return frozenset(oid.dotted_string for oid in value)
