"""ovsnet's private PKI: one CA per purpose, so a certificate works only where it was meant to.

Purposes (`PURPOSES`): `ike` (IPsec host identities, strongSwan), `docker-server` and
`docker-client` (the Docker API with --tlsverify), `etcd-server` and `etcd-client` (cluster mode).
Each purpose has its own self-signed CA and each consumer trusts exactly one of them: strongSwan
the IKE CA, dockerd the docker-client CA, a Docker client the docker-server CA, etcd the
etcd-client CA, an etcd client the etcd-server CA. What a certificate says (profiles, checks) is
pure and lives in `ovsnet.pki_profile` (re-exported here); this module keeps certificates, keys
and CRLs on disk. Private keys are written 0600 from their first byte, atomically, and never
printed or returned as text; every OS error of the key store becomes an ovsnet error with a
one-line message. The trust model, rotation and revocation: docs/security.md ("Trust model").

Layout of a PKI directory (default /var/lib/ovsnet/pki, env OVSNET_PKI_DIR): outside /etc/ovsnet,
which the companion container mounts. The CA keys stay here, on the machine that issues
certificates; `pki export` copies what one host needs (never a CA key):

    ca/PURPOSE/{ca-cert.pem,ca-key.pem,crl.pem}   one CA per purpose and its CRL
    hosts/HOST-cert.pem  hosts/HOST-key.pem        IKE (`ovsnet ipsec cert --ca ca/ike/ca-cert.pem`)
    docker/HOST/server/{ca.pem,cert.pem,key.pem}   dockerd --tlscacert/--tlscert/--tlskey
    docker/HOST/client/{ca.pem,cert.pem,key.pem}   DOCKER_CERT_PATH / --docker-tls DIR
    etcd/server/NAME/{ca.pem,cert.pem,key.pem}     etcd --trusted-ca-file/--cert-file/--key-file
    etcd/client/NAME/{ca.pem,cert.pem,key.pem}     ovsnet --etcd-ca/--etcd-cert/--etcd-key
In each folder ca.pem is the CA its holder must trust: the other side's purpose CA.

Place: docs/architecture.md, "Layers": facade layer (the key store on disk); the X.509
profile is pure, in `ovsnet.pki_profile`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ovsnet.errors import InvalidInput, NotReady, OperationFailed
from ovsnet.pki_profile import (  # noqa: F401 - re-exported: `from ovsnet import pki` is the API
    CA_DAYS,
    CRL_DAYS,
    DOCKER_CLIENT_CN,
    EKU_CLIENT_AUTH,
    EKU_IKE_INTERMEDIATE,
    EKU_IPSEC_IKE,
    EKU_SERVER_AUTH,
    EXPIRY_WARNING_DAYS,
    LEAF_DAYS,
    ORGANIZATION,
    PURPOSE,
    PURPOSE_LIST,
    PURPOSES,
    CertSummary,
    Purpose,
    build_ca,
    build_crl,
    build_leaf,
    check_days,
    check_host_name,
    check_ike_trust,
    check_key_matches,
    check_purpose,
    check_purpose_name,
    fingerprint,
    generate_key,
    ike_identity,
    key_like,
    leaf_ekus,
    load_certificate,
    load_private_key,
    parse_ips,
    serial_hex,
    summarize,
    utcnow,
    verify_chain,
)

if TYPE_CHECKING:  # cryptography is a heavy import: keep `ovsnet --help` fast
    from cryptography import x509

DEFAULT_PKI_DIR = Path("/var/lib/ovsnet/pki")
# The companion container mounts this directory (render.context.IPSEC_CONFIG_DIR) when IPsec
# is on: no CA key may be made under it. Older versions' default PKI directory was inside.
COMPANION_MOUNT = Path("/etc/ovsnet")
OLD_DEFAULT_PKI_DIR = COMPANION_MOUNT / "pki"
CA_CERT = "ca-cert.pem"
CA_KEY = "ca-key.pem"
CRL = "crl.pem"


def pki_dir(value: str | os.PathLike | None, old_default: Path = OLD_DEFAULT_PKI_DIR) -> Path:
    """The PKI directory: the option, else OVSNET_PKI_DIR, else /var/lib/ovsnet/pki.

    A PKI left at the old default is not used silently (nor is a second one made next to it):
    its CA key would be mounted into the companion container.
    """
    chosen = value or os.environ.get("OVSNET_PKI_DIR")
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


# --- files ----------------------------------------------------------------------------------


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


def write_atomically(path: Path, data: bytes, mode: int) -> None:
    """Write `path` via a temporary file created with `mode`, so it never exists looser."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    try:
        os.fchmod(fd, mode)  # before any byte is written: the umask may have removed bits
        os.write(fd, data)
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    os.close(fd)
    os.replace(tmp, path)


def write_private_key(path: Path, key) -> None:
    write_atomically(path, _pem_private_key(key), 0o600)


def write_certificate(path: Path, cert: x509.Certificate) -> None:
    write_atomically(path, pem_certificate(cert), 0o644)


def _private_dir(path: Path) -> None:
    """Create `path` and missing parents as 0700 (mkdir(parents=True) would use the umask)."""
    if path.is_dir():
        return
    _private_dir(path.parent)
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


def _read_cert(path: Path) -> x509.Certificate:
    return load_certificate(path.read_bytes(), str(path))


# --- the CAs ----------------------------------------------------------------------------------


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


def _refuse_legacy(directory: Path) -> None:
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
            _refuse_legacy(directory)
            raise NotReady(
                f"no ovsnet {purpose} CA in {directory}", f"run `ovsnet pki init --dir {directory}`"
            )
        return _read_cert(cert_path), load_private_key(key_path.read_bytes(), str(key_path))


@dataclass(frozen=True)
class CaOptions:
    rsa: bool = False
    dry_run: bool = False
    days: int = CA_DAYS
    now: dt.datetime | None = None


def _ensure_one_ca(directory: Path, purpose: str, options: CaOptions) -> Issued:
    folder = ca_dir(directory, purpose)
    cert_path, key_path = folder / CA_CERT, folder / CA_KEY
    if cert_path.exists() or key_path.exists():
        if not (cert_path.exists() and key_path.exists()):
            raise OperationFailed(
                f"{folder} holds only one of {CA_CERT} and {CA_KEY}",
                "restore the missing file, or `ovsnet pki rotate-ca` to start this purpose anew",
            )
        return Issued("ca", purpose, cert_path, key_path, summarize(_read_cert(cert_path)), False)
    now = options.now or utcnow()
    key = generate_key(rsa=options.rsa)
    cert = build_ca(key, purpose, now=now, days=check_days(options.days))
    if not options.dry_run:
        _private_dir(folder)
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
        _refuse_legacy(directory)
        if not all(ca_cert_path(directory, p).exists() for p in PURPOSES):
            check_ca_home(directory)
        return [_ensure_one_ca(directory, p, options) for p in PURPOSES]


def migrate(directory: Path, options: CaOptions = CaOptions()) -> list[Issued]:
    """Retire an older ovsnet's all-purpose CA (moved to legacy-ca/, 0700) and create the
    per-purpose CAs. Leaf files stay where they are; `pki issue` replaces each on its next run
    because it no longer chains to its purpose's CA."""
    with key_store(directory):
        if legacy_ca(directory) is None:
            return ensure_cas(directory, options)
        check_ca_home(directory)
        retired = directory / "legacy-ca"
        if retired.exists():
            raise InvalidInput(
                f"{retired} exists already", "move it away (keep it offline) and run migrate again"
            )
        moved = []
        if (directory / CA_CERT).exists():
            old = summarize(_read_cert(directory / CA_CERT))
            moved.append(
                Issued("legacy-ca", "legacy", retired / CA_CERT, retired / CA_KEY, old, True)
            )
        if not options.dry_run:
            retired.mkdir(mode=0o700)
            for name in (CA_CERT, CA_KEY):
                if (directory / name).exists():
                    os.replace(directory / name, retired / name)
        # In a dry run the legacy files are still in place: build the new CAs without the check.
        return moved + [_ensure_one_ca(directory, p, options) for p in PURPOSES]


def rotate_ca(directory: Path, purpose: str, options: CaOptions = CaOptions()) -> list[Issued]:
    """Replace one purpose's CA: the old one moves to ca/PURPOSE.retired-STAMP, a new one is
    made. Every certificate of that purpose must then be reissued and its CA file redeployed;
    until a consumer trusts the new CA it refuses the new certificates (fail closed)."""
    now = options.now or utcnow()
    folder = ca_dir(directory, purpose)
    with key_store(directory):
        _refuse_legacy(directory)
        check_ca_home(directory)
        old = []
        if folder.exists():
            target = folder.with_name(f"{purpose}.retired-{now:%Y%m%dT%H%M%SZ}")
            if (folder / CA_CERT).exists():
                summary = summarize(_read_cert(folder / CA_CERT))
                old.append(
                    Issued("retired-ca", purpose, target / CA_CERT, target / CA_KEY, summary, True)
                )
            if not options.dry_run:
                os.replace(folder, target)
        if options.dry_run:
            new = build_ca(generate_key(options.rsa), purpose, now, check_days(options.days))
            return old + [
                Issued("ca", purpose, folder / CA_CERT, folder / CA_KEY, summarize(new), True)
            ]
        return old + [_ensure_one_ca(directory, purpose, options)]


# --- revocation -------------------------------------------------------------------------------


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
class CrlResult:
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


def _sign_crl(
    directory: Path, purpose: str, extra: tuple[int, ...], now: dt.datetime, dry_run: bool
) -> CrlResult:
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
    return CrlResult(
        purpose,
        path,
        number + 1,
        len(entries),
        crl.next_update_utc,
        serial_hex(added[0]) if added else None,
        True,
    )


def revoke(
    directory: Path, purpose: str, name: str, dry_run: bool = False, now: dt.datetime | None = None
) -> CrlResult:
    """Add NAME's current certificate of `purpose` to its CA's CRL and sign the CRL anew.

    The files stay; `pki issue NAME` replaces a revoked certificate. strongSwan and etcd read
    the CRL (`ovsnet ipsec crl FILE`, etcd --client-crl-file); dockerd cannot, see the notes.
    """
    now = now or utcnow()
    cert_path = leaf_request(directory, purpose, name).cert_path
    with key_store(directory):
        if not cert_path.exists():
            raise InvalidInput(
                f"no {purpose} certificate for {name} in {directory}", "see `ovsnet pki list`"
            )
        cert = _read_cert(cert_path)
    ca_cert, _ = load_ca(directory, purpose)
    try:
        cert.verify_directly_issued_by(ca_cert)
    except Exception:  # noqa: BLE001 - InvalidSignature, ValueError, TypeError: not ours
        raise InvalidInput(
            f"{cert_path} was not issued by the current {purpose} CA; its CRL cannot revoke it",
            "a certificate of a retired CA dies with that CA: remove the CA from the consumers",
        ) from None
    if cert.serial_number in revoked_serials(directory, purpose):
        crl = load_crl(crl_path(directory, purpose))
        return CrlResult(
            purpose,
            crl_path(directory, purpose),
            crl_number(crl),
            len(list(crl)),
            crl.next_update_utc,
            None,
            False,
        )
    return _sign_crl(directory, purpose, (cert.serial_number,), now, dry_run)


def refresh_crl(
    directory: Path, purpose: str, dry_run: bool = False, now: dt.datetime | None = None
) -> CrlResult:
    """Sign the CRL anew with the same entries and a fresh nextUpdate."""
    return _sign_crl(directory, purpose, (), now or utcnow(), dry_run)


# --- leaf certificates ------------------------------------------------------------------------


@dataclass(frozen=True)
class LeafRequest:
    """One end-entity certificate to keep on disk: what it says and where it goes."""

    purpose: str
    name: str
    cert_path: Path
    key_path: Path
    common_name: str
    dns: tuple[str, ...] = ()
    ips: tuple = ()
    key_type: str | None = None  # "rsa" | "ecdsa"; None: same as the CA's key
    trust_copy: Path | None = None  # the CA its holder trusts, copied here (ca.pem)

    def new_key(self, ca_key):
        if self.key_type is None:
            return key_like(ca_key)
        return generate_key(rsa=self.key_type == "rsa")


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


def leaf_request(
    directory: Path,
    purpose: str,
    name: str,
    ips: Sequence[str] = (),
    dns: Sequence[str] = (),
    key_type: str | None = None,
    common_name: str | None = None,
) -> LeafRequest:
    """Where NAME's certificate of `purpose` lives and what it should say (pure)."""
    check_purpose_name(purpose)
    name = check_host_name(name)
    for extra in dns:
        check_host_name(extra)
    if key_type is not None and key_type not in KEY_TYPES:
        raise InvalidInput(f"unknown key type {key_type!r}", f"use one of {', '.join(KEY_TYPES)}")
    addresses = tuple(parse_ips(ips))
    folder = leaf_folder(directory, purpose, name)
    if folder is None:
        cert, key = host_paths(directory, name)
        return LeafRequest(
            purpose,
            name,
            cert,
            key,
            common_name or name,
            (name, *dns),
            addresses,
            key_type or HOST_KEY_TYPE,
        )
    # A client's CN is its identity (etcd maps it to a user): no SAN DNS name unless asked.
    names = tuple(dns) if purpose.endswith("-client") else (name, *dns)
    return LeafRequest(
        purpose,
        name,
        folder / "cert.pem",
        folder / "key.pem",
        common_name or name,
        names,
        addresses,
        key_type,
        folder / "ca.pem",
    )


def key_type_of(public_key) -> str:
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric import rsa as rsa_mod

    if isinstance(public_key, rsa_mod.RSAPublicKey):
        return "rsa"
    return "ecdsa" if isinstance(public_key, ec.EllipticCurvePublicKey) else "other"


def _current(request: LeafRequest, ca_cert, revoked: frozenset[int], now) -> CertSummary | None:
    """The existing certificate's summary if it already is what was asked for, else None."""
    if not (request.cert_path.exists() and request.key_path.exists()):
        return None
    try:
        cert = _read_cert(request.cert_path)
        summary = verify_chain(cert, ca_cert, now)
        check_purpose(cert, request.purpose)
    except InvalidInput:
        return None
    wanted_dns = tuple(dict.fromkeys(request.dns))
    wanted_ips = tuple(str(ip) for ip in dict.fromkeys(request.ips))
    if summary.dns_names != wanted_dns or summary.ip_addresses != wanted_ips:
        return None
    if summary.common_name != request.common_name:
        return None
    if request.key_type and key_type_of(cert.public_key()) != request.key_type:
        return None
    if summary.expires_soon(now) or summary.serial in revoked:
        return None
    if request.trust_copy is not None and not request.trust_copy.exists():
        return None
    return summary


@dataclass(frozen=True)
class IssueOptions:
    renew: bool = False
    dry_run: bool = False
    days: int = LEAF_DAYS
    now: dt.datetime | None = None
    keep_key: bool = False  # renew with the key already on disk


def _existing_key(request: LeafRequest):
    return load_private_key(request.key_path.read_bytes(), str(request.key_path))


def ensure_leaf(directory: Path, request: LeafRequest, options: IssueOptions = IssueOptions()):
    """Issue (or keep) one certificate: kept when it chains to its purpose's CA, says what was
    asked, is not revoked and does not expire within 30 days; otherwise (or with renew) a new
    certificate, with a new key unless keep_key, is written atomically."""
    ca_cert, ca_key = load_ca(directory, request.purpose)
    trusted = ca_cert
    if request.trust_copy is not None:
        trusted = load_ca(directory, PURPOSE[request.purpose].trusts)[0]
    now = options.now or utcnow()
    with key_store(directory):
        revoked = revoked_serials(directory, request.purpose)
        found = None if options.renew else _current(request, ca_cert, revoked, now)
        if found is not None:
            if request.trust_copy is not None and not options.dry_run:
                _refresh(request.trust_copy, pem_certificate(trusted))
            return Issued(
                request.purpose, request.name, request.cert_path, request.key_path, found, False
            )
        keep = options.keep_key and request.key_path.exists()
        key = _existing_key(request) if keep else request.new_key(ca_key)
        cert = build_leaf(
            ca_cert,
            ca_key,
            key.public_key(),
            request.common_name,
            request.dns,
            request.ips,
            request.purpose,
            now,
            check_days(options.days),
        )
        if not options.dry_run:
            _private_dir(request.cert_path.parent)
            if not keep:
                write_private_key(request.key_path, key)
            write_certificate(request.cert_path, cert)
            if request.trust_copy is not None:
                write_certificate(request.trust_copy, trusted)
    return Issued(
        request.purpose, request.name, request.cert_path, request.key_path, summarize(cert), True
    )


def _refresh(path: Path, data: bytes) -> None:
    """Rewrite a CA copy that is out of date (after `pki rotate-ca`)."""
    if path.read_bytes() != data:
        write_atomically(path, data, 0o644)


def renew(
    directory: Path, purpose: str, name: str, options: IssueOptions = IssueOptions()
) -> Issued:
    """A new certificate for NAME's existing one of `purpose`: same subject, SANs and key type
    (and the same key with keep_key)."""
    probe = leaf_request(directory, purpose, name)
    with key_store(directory):
        if not probe.cert_path.exists():
            raise InvalidInput(
                f"no {purpose} certificate for {name} in {directory}",
                f"issue one with `ovsnet pki issue {name} --purpose {purpose}`",
            )
        summary = summarize(_read_cert(probe.cert_path))
        key_type = key_type_of(_read_cert(probe.cert_path).public_key())
    dns = [n for n in summary.dns_names if purpose.endswith("-client") or n != name]
    request = leaf_request(
        directory, purpose, name, summary.ip_addresses, dns, key_type, summary.common_name
    )
    return ensure_leaf(
        directory,
        request,
        IssueOptions(True, options.dry_run, options.days, options.now, options.keep_key),
    )


# NOTE: ovs-monitor-ipsec writes the host key into ipsec.secrets as `: RSA <file>`, and
# strongSwan 5.9 then loads only RSA keys ("building CRED_PRIVATE_KEY - RSA failed" for an
# ECDSA key, seen here): IKE host certificates get RSA keys whatever the CA's algorithm.
HOST_KEY_TYPE = "rsa"
KEY_TYPES = ("rsa", "ecdsa")


def ensure_host_cert(
    directory: Path,
    host: str,
    ips: Sequence[str] = (),
    options: IssueOptions = IssueOptions(),
    key_type: str = HOST_KEY_TYPE,
) -> Issued:
    """Issue (or keep) HOST's IKE certificate: CN=HOST, SAN DNS=HOST + IPs, from the IKE CA."""
    return ensure_leaf(directory, leaf_request(directory, "ike", host, ips, (), key_type), options)


def ensure_docker_certs(
    directory: Path,
    host: str,
    ips: Sequence[str] = (),
    dns: Sequence[str] = (),
    options: IssueOptions = IssueOptions(),
) -> tuple[Issued, Issued]:
    """dockerd's server certificate (SAN = HOST, --dns names, --ip addresses) and a client one.

    Each directory holds ca.pem, cert.pem and key.pem: the names Docker's client expects in
    DOCKER_CERT_PATH, and what `--docker-tls DIR` reads. The server's ca.pem is the
    docker-client CA (whom dockerd lets in), the client's the docker-server CA.
    """
    server = leaf_request(directory, "docker-server", host, ips, dns)
    client = leaf_request(directory, "docker-client", host, common_name=DOCKER_CLIENT_CN)
    return ensure_leaf(directory, server, options), ensure_leaf(directory, client, options)


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
                summarize(_read_cert(legacy)),
                False,
            )
        )
    for purpose in PURPOSES:
        ca = ca_cert_path(directory, purpose)
        if ca.exists():
            found.append(
                Issued("ca", purpose, ca, ca.with_name(CA_KEY), summarize(_read_cert(ca)), False)
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
        summary = summarize(_read_cert(cert_path))
        is_revoked = summary.serial in revoked.get(purpose, frozenset())
        found.append(Issued(purpose, name, cert_path, key_path, summary, False, is_revoked))
    return found


# --- what one host gets -----------------------------------------------------------------------


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
            _private_dir(target)
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
