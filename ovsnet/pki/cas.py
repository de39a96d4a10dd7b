"""The CAs, one per purpose: creating the missing ones, refusing a CA key where the companion
container would see it, and leaving an older ovsnet's all-purpose CA alone until `pki migrate`.

Place: docs/architecture.md, "Layers": facade layer.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from ovsnet.errors import InvalidInput, OperationFailed
from ovsnet.files import write_atomically
from ovsnet.pki.builders import build_ca, build_crl, generate_key
from ovsnet.pki.profile import CA_DAYS, PURPOSES, check_days, utcnow
from ovsnet.pki.reading import summarize
from ovsnet.pki.store import (
    CA_CERT,
    CA_KEY,
    COMPANION_MOUNT,
    CRL,
    DEFAULT_PKI_DIR,
    Issued,
    ca_cert_path,
    ca_dir,
    key_store,
    pem_crl,
    private_dir,
    read_cert,
    refuse_legacy,
    write_certificate,
    write_private_key,
)


@dataclass(frozen=True)
class CaOptions:
    rsa: bool = False
    dry_run: bool = False
    days: int = CA_DAYS
    now: dt.datetime | None = None


def ensure_one_ca(directory: Path, purpose: str, options: CaOptions) -> Issued:
    """PURPOSE's CA as it is, or a new one with an empty CRL when it has none yet."""
    folder = ca_dir(directory, purpose)
    cert_path, key_path = folder / CA_CERT, folder / CA_KEY
    if cert_path.exists() or key_path.exists():
        if not (cert_path.exists() and key_path.exists()):
            raise OperationFailed(
                f"{folder} holds only one of {CA_CERT} and {CA_KEY}",
                "restore the missing file, or `ovsnet pki rotate-ca` to start this purpose anew",
            )
        return Issued("ca", purpose, cert_path, key_path, summarize(read_cert(cert_path)), False)
    now = options.now or utcnow()
    key = generate_key(rsa=options.rsa)
    cert = build_ca(key, purpose, now=now, days=check_days(options.days))
    if not options.dry_run:
        private_dir(folder)
        write_private_key(key_path, key)  # key first: a cert without its key is useless
        write_certificate(cert_path, cert)
        write_atomically(folder / CRL, pem_crl(build_crl(cert, key, now=now)), 0o644)
    return Issued("ca", purpose, cert_path, key_path, summarize(cert), True)


def check_ca_home(directory: Path, mount: Path = COMPANION_MOUNT) -> None:
    """Refuse to make CA keys where the companion container would see them."""
    if directory.absolute().is_relative_to(mount):
        raise InvalidInput(
            f"CA keys in {directory} would be mounted into the companion container ({mount})",
            f"use the default {DEFAULT_PKI_DIR} or another --dir outside {mount}",
        )


def ensure_cas(directory: Path, options: CaOptions = CaOptions()) -> list[Issued]:
    """Create each purpose's CA (and its empty CRL) unless it exists; never replace one."""
    with key_store(directory):
        refuse_legacy(directory)
        if not all(ca_cert_path(directory, p).exists() for p in PURPOSES):
            check_ca_home(directory)
        return [ensure_one_ca(directory, p, options) for p in PURPOSES]
