"""What a PKI directory holds (`pki list`, reads no private key) and what one host gets from it
(`pki export`: never a CA key).

Place: docs/architecture.md, "Layers": facade layer.
"""

from __future__ import annotations

from pathlib import Path

from ovsnet.errors import InvalidInput
from ovsnet.files import write_atomically
from ovsnet.pki.crl import revoked_serials
from ovsnet.pki.issue import leaf_request
from ovsnet.pki.profile import PURPOSE, PURPOSES
from ovsnet.pki.reading import summarize
from ovsnet.pki.store import (
    CA_CERT,
    CA_KEY,
    Issued,
    ca_cert_path,
    crl_path,
    key_store,
    private_dir,
    read_cert,
)


def list_certificates(directory: Path) -> list[Issued]:
    """Every certificate of the PKI directory (CAs first). Reads no private key."""
    with key_store(directory):
        return _list(directory)


def _list(directory: Path) -> list[Issued]:
    found: list[Issued] = []
    legacy = directory / CA_CERT
    if legacy.exists():
        found.append(
            Issued(
                "legacy-ca",
                "legacy",
                legacy,
                directory / CA_KEY,
                summarize(read_cert(legacy)),
                False,
            )
        )
    for purpose in PURPOSES:
        ca = ca_cert_path(directory, purpose)
        if ca.exists():
            found.append(
                Issued("ca", purpose, ca, ca.with_name(CA_KEY), summarize(read_cert(ca)), False)
            )
    revoked = {p: revoked_serials(directory, p) for p in PURPOSES}
    leaves: list[tuple[str, str, Path, Path]] = []
    for cert_path in sorted((directory / "hosts").glob("*-cert.pem")):
        name = cert_path.name.removesuffix("-cert.pem")
        leaves.append(("ike", name, cert_path, cert_path.with_name(f"{name}-key.pem")))
    for cert_path in sorted((directory / "docker").glob("*/*/cert.pem")):
        purpose = f"docker-{cert_path.parent.name}"
        leaves.append(
            (purpose, cert_path.parent.parent.name, cert_path, cert_path.with_name("key.pem"))
        )
    for cert_path in sorted((directory / "etcd").glob("*/*/cert.pem")):
        purpose = f"etcd-{cert_path.parent.parent.name}"
        leaves.append((purpose, cert_path.parent.name, cert_path, cert_path.with_name("key.pem")))
    for purpose, name, cert_path, key_path in leaves:
        summary = summarize(read_cert(cert_path))
        is_revoked = summary.serial in revoked.get(purpose, frozenset())
        found.append(Issued(purpose, name, cert_path, key_path, summary, False, is_revoked))
    return found


def export(directory: Path, purpose: str, name: str, target: Path, dry_run: bool = False):
    """Copy NAME's certificate of `purpose`, its key (0600) and the CA its holder trusts into
    `target` as cert.pem, key.pem, ca.pem, and for ike the IKE CA's CRL as crl.pem: what a
    host needs, and never a CA key. Returns (path, changed) pairs."""
    request = leaf_request(directory, purpose, name)
    trust = ca_cert_path(directory, PURPOSE[purpose].trusts)
    files = [
        (request.cert_path, target / "cert.pem", 0o644),
        (request.key_path, target / "key.pem", 0o600),
        (trust, target / "ca.pem", 0o644),
    ]
    if purpose == "ike":
        files.append((crl_path(directory, "ike"), target / "crl.pem", 0o644))
    written = []
    with key_store(target):
        for source, _, _ in files:
            if not source.exists():
                raise InvalidInput(
                    f"{source} does not exist",
                    f"issue it first: `ovsnet pki issue {name} --purpose {purpose}`",
                )
        if not dry_run:
            private_dir(target)
        for source, destination, mode in files:
            data = source.read_bytes()
            changed = not (
                destination.exists()
                and destination.read_bytes() == data
                and (destination.stat().st_mode & 0o777) == mode
            )
            if changed and not dry_run:
                write_atomically(destination, data, mode)
            written.append((destination, changed))
    return written
