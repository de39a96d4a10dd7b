"""Revocation: each CA's CRL, read and checked, signed anew with one more entry (`pki revoke`)
or a fresh nextUpdate (`pki crl`).

Place: docs/architecture.md, "Layers": facade layer.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ovsnet.errors import InvalidInput
from ovsnet.files import write_atomically
from ovsnet.pki.builders import build_crl
from ovsnet.pki.profile import utcnow
from ovsnet.pki.reading import serial_hex
from ovsnet.pki.store import crl_path, key_store, load_ca, pem_crl

if TYPE_CHECKING:  # cryptography is a heavy import: keep `ovsnet --help` fast
    from cryptography import x509


def load_crl(path: Path):
    from cryptography import x509

    with key_store(path):
        data = path.read_bytes()
    try:
        return x509.load_pem_x509_crl(data)
    except ValueError:
        raise InvalidInput(f"{path} is not a PEM certificate revocation list") from None


def crl_number(crl) -> int:
    from cryptography import x509

    try:
        return crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    except x509.ExtensionNotFound:
        return 0


def revoked_serials(directory: Path, purpose: str) -> frozenset[int]:
    path = crl_path(directory, purpose)
    if not path.exists():
        return frozenset()
    return frozenset(entry.serial_number for entry in load_crl(path))


def verify_crl(crl, ca_cert: x509.Certificate, what: str = "CRL") -> None:
    """Refuse a CRL that its CA did not sign (a consumer would ignore it or trust a forgery)."""
    if crl.issuer != ca_cert.subject or not crl.is_signature_valid(ca_cert.public_key()):
        raise InvalidInput(
            f"{what} was not issued by the CA {ca_cert.subject.rfc4514_string()}",
            "give the crl.pem next to that CA (ca/PURPOSE/crl.pem in the PKI directory)",
        )


@dataclass(frozen=True)
class SignedCrl:
    purpose: str
    path: Path
    number: int
    revoked: int
    next_update: dt.datetime
    added: str | None  # hex serial revoked by this run
    changed: bool

    def as_json(self) -> dict:
        return {
            "purpose": self.purpose,
            "crl": str(self.path),
            "crl_number": self.number,
            "revoked_count": self.revoked,
            "next_update": self.next_update.isoformat(),
            "revoked_serial": self.added,
            "changed": self.changed,
        }


def sign_crl(
    directory: Path, purpose: str, extra: tuple[int, ...], now: dt.datetime, dry_run: bool
) -> SignedCrl:
    """PURPOSE's CRL signed anew with its entries and `extra` serials, and a CRL number one
    higher (strongSwan keeps the CRL with the higher number)."""
    ca_cert, ca_key = load_ca(directory, purpose)
    path = crl_path(directory, purpose)
    entries: dict[int, dt.datetime] = {}
    number = 0
    if path.exists():
        old = load_crl(path)
        verify_crl(old, ca_cert, str(path))
        number = crl_number(old)
        entries = {e.serial_number: e.revocation_date_utc for e in old}
    added = [serial for serial in extra if serial not in entries]
    for serial in added:
        entries[serial] = now
    crl = build_crl(ca_cert, ca_key, sorted(entries.items()), number + 1, now)
    if not dry_run:
        with key_store(path):
            write_atomically(path, pem_crl(crl), 0o644)
    return SignedCrl(
        purpose,
        path,
        number + 1,
        len(entries),
        crl.next_update_utc,
        serial_hex(added[0]) if added else None,
        True,
    )


def refresh_crl(
    directory: Path, purpose: str, dry_run: bool = False, now: dt.datetime | None = None
) -> SignedCrl:
    """Sign the CRL anew with the same entries and a fresh nextUpdate."""
    return sign_crl(directory, purpose, (), now or utcnow(), dry_run)
