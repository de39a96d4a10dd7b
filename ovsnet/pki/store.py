"""The PKI directory on disk: where each CA, CRL and certificate lives (layout: `ovsnet.pki`),
reading them, and writing keys 0600 from their first byte; every OS error of the key store
becomes an ovsnet error with a one-line message.

Place: docs/architecture.md, "Layers": facade layer.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ovsnet.errors import InvalidInput, NotReady, OperationFailed
from ovsnet.files import write_atomically
from ovsnet.pki.profile import check_purpose_name
from ovsnet.pki.reading import CertSummary, load_certificate, load_private_key

if TYPE_CHECKING:  # cryptography is a heavy import: keep `ovsnet --help` fast
    from cryptography import x509


DEFAULT_PKI_DIR = Path("/var/lib/ovsnet/pki")
# The companion container mounts this directory (render.host_layout.IPSEC_CONFIG_DIR) when IPsec
# is on: no CA key may be made under it. Older versions' default PKI directory was inside.
COMPANION_MOUNT = Path("/etc/ovsnet")
OLD_DEFAULT_PKI_DIR = COMPANION_MOUNT / "pki"
CA_CERT = "ca-cert.pem"
CA_KEY = "ca-key.pem"
CRL = "crl.pem"


def pki_dir(value: str | os.PathLike | None, old_default: Path = OLD_DEFAULT_PKI_DIR) -> Path:
    """The PKI directory: the one given (the CLI's --dir, which reads OVSNET_PKI_DIR), else
    /var/lib/ovsnet/pki.

    A PKI left at the old default is not used silently (nor is a second one made next to it):
    its CA key would be mounted into the companion container.
    """
    chosen = value
    if chosen:
        return Path(chosen)
    if not DEFAULT_PKI_DIR.exists() and old_default.is_dir():
        raise InvalidInput(
            f"the PKI is in {old_default}, which the companion container mounts; the default"
            f" is now {DEFAULT_PKI_DIR}",
            f"move it (mkdir -p -m 700 {DEFAULT_PKI_DIR.parent} && mv {old_default}"
            f" {DEFAULT_PKI_DIR}), or give --dir",
        )
    return DEFAULT_PKI_DIR


def pem_certificate(cert: x509.Certificate) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return cert.public_bytes(serialization.Encoding.PEM)


def pem_crl(crl) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return crl.public_bytes(serialization.Encoding.PEM)


def _pem_private_key(key) -> bytes:
    from cryptography.hazmat.primitives import serialization

    # Traditional OpenSSL PEM ("EC/RSA PRIVATE KEY"): strongSwan, Libreswan and Go all read it.
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


@contextlib.contextmanager
def key_store(what: Path) -> Iterator[None]:
    """Turn the OS's errors while reading or writing the key store into one-line ovsnet errors."""
    try:
        yield
    except PermissionError as exc:
        raise NotReady(
            f"cannot use {exc.filename or what}: permission denied",
            "run as the PKI directory's owner (root for the default), or give --dir",
        ) from None
    except (FileExistsError, NotADirectoryError) as exc:
        raise InvalidInput(
            f"cannot use {what} as a PKI directory: {exc.filename or what} is in the way"
            f" ({exc.strerror})",
            "give --dir a directory path (existing or new)",
        ) from None
    except IsADirectoryError as exc:
        raise InvalidInput(f"{exc.filename or what} is a directory, not a file") from None
    except OSError as exc:
        if exc.errno in (errno.EROFS, errno.ENOSPC, errno.EDQUOT):
            raise NotReady(f"cannot write {exc.filename or what}: {exc.strerror}") from None
        raise OperationFailed(f"{exc.filename or what}: {exc.strerror}") from None


def write_private_key(path: Path, key) -> None:
    write_atomically(path, _pem_private_key(key), 0o600)


def write_certificate(path: Path, cert: x509.Certificate) -> None:
    write_atomically(path, pem_certificate(cert), 0o644)


def private_dir(path: Path) -> None:
    """Create `path` and missing parents as 0700 (mkdir(parents=True) would use the umask)."""
    if path.is_dir():
        return
    private_dir(path.parent)
    path.mkdir(mode=0o700, exist_ok=True)


@dataclass(frozen=True)
class Issued:
    """A certificate ovsnet keeps on disk, and whether this run (re)wrote it."""

    kind: str  # ca | a purpose (ike, docker-server, ...) | legacy-ca
    name: str
    cert_path: Path
    key_path: Path
    summary: CertSummary
    changed: bool
    revoked: bool = False

    def as_json(self, now: dt.datetime) -> dict:
        return {
            "kind": self.kind,
            "name": self.name,
            "cert": str(self.cert_path),
            "key": str(self.key_path),
            "changed": self.changed,
            "revoked": self.revoked,
            **self.summary.as_json(now),
        }


def read_cert(path: Path) -> x509.Certificate:
    """The certificate in a PEM file; a file that is not one is refused with its path."""
    return load_certificate(path.read_bytes(), str(path))


def ca_dir(directory: Path, purpose: str) -> Path:
    return directory / "ca" / check_purpose_name(purpose).name


def ca_cert_path(directory: Path, purpose: str) -> Path:
    """The CA certificate a consumer of `purpose` certificates must trust (and only it)."""
    return ca_dir(directory, purpose) / CA_CERT


def crl_path(directory: Path, purpose: str) -> Path:
    return ca_dir(directory, purpose) / CRL


def legacy_ca(directory: Path) -> Path | None:
    """The single all-purpose CA older ovsnet versions kept at the top, if it is there."""
    path = directory / CA_CERT
    return path if path.exists() or (directory / CA_KEY).exists() else None


def refuse_legacy(directory: Path) -> None:
    """Refuse to work beside an older ovsnet's all-purpose CA until `pki migrate` retired it."""
    if legacy_ca(directory) is not None:
        raise InvalidInput(
            f"{directory} holds a CA made by an older ovsnet ({CA_CERT}) that signs every purpose",
            f"run `ovsnet pki migrate --dir {directory}`, then reissue every certificate",
        )


def load_ca(directory: Path, purpose: str):
    """The CA certificate and key of one purpose, or NotReady if there is none."""
    cert_path, key_path = ca_cert_path(directory, purpose), ca_dir(directory, purpose) / CA_KEY
    with key_store(directory):
        if not cert_path.exists() or not key_path.exists():
            refuse_legacy(directory)
            raise NotReady(
                f"no ovsnet {purpose} CA in {directory}", f"run `ovsnet pki init --dir {directory}`"
            )
        return read_cert(cert_path), load_private_key(key_path.read_bytes(), str(key_path))


def host_paths(directory: Path, host: str) -> tuple[Path, Path]:
    """Where HOST's IKE certificate and key live (the paths `ovsnet ipsec cert` is given)."""
    return directory / "hosts" / f"{host}-cert.pem", directory / "hosts" / f"{host}-key.pem"


def docker_dirs(directory: Path, host: str) -> tuple[Path, Path]:
    base = directory / "docker" / host
    return base / "server", base / "client"


def etcd_dir(directory: Path, purpose: str, name: str) -> Path:
    return directory / "etcd" / purpose.removeprefix("etcd-") / name


def leaf_folder(directory: Path, purpose: str, name: str) -> Path | None:
    """The folder of a TLS leaf (holding ca.pem, cert.pem, key.pem); None for IKE."""
    if purpose == "ike":
        return None
    if purpose.startswith("docker-"):
        server, client = docker_dirs(directory, name)
        return server if purpose == "docker-server" else client
    return etcd_dir(directory, purpose, name)
