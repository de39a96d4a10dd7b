"""ovsnet's private CA: host certificates for IKE, server and client certificates for Docker.

Pure builders (`build_*`, `summarize`, `verify_chain`, `ike_identity`) take and return
`cryptography` objects; the `ensure_*` / `list_certificates` functions at the bottom do the file
I/O. Private keys are written 0600 from their first byte (never chmod after write), atomically,
and never printed or returned as text.

Layout of a PKI directory (default /etc/ovsnet/pki, env OVSNET_PKI_DIR):

    ca-cert.pem  ca-key.pem
    hosts/HOST-cert.pem  hosts/HOST-key.pem
    docker/HOST/server/{ca.pem,cert.pem,key.pem}   dockerd --tlscacert/--tlscert/--tlskey
    docker/HOST/client/{ca.pem,cert.pem,key.pem}   DOCKER_CERT_PATH / --docker-tls DIR
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ovsnet.errors import InvalidInput, NotReady, OperationFailed

if TYPE_CHECKING:  # cryptography is a heavy import: keep `ovsnet --help` fast
    from cryptography import x509

DEFAULT_PKI_DIR = Path("/etc/ovsnet/pki")
CA_CERT = "ca-cert.pem"
CA_KEY = "ca-key.pem"
CA_DAYS = 3650
LEAF_DAYS = 825
EXPIRY_WARNING_DAYS = 30
# id-kp-ipsecIKE (RFC 4945): what strongSwan and Libreswan look for on an IKE certificate.
IKE_INTERMEDIATE_OID = "1.3.6.1.5.5.8.2.2"
ORGANIZATION = "ovsnet"
DOCKER_CLIENT_CN = "ovsnet-docker-client"
# A host name as a CN and SAN DNS name: letters, digits, '-' and '.', so that the RFC 2253 form
# ovs-monitor-ipsec parses needs no escaping (it extracts the CN with the regex `CN=(.+?),`).
_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?"
_HOST_RE = re.compile(rf"^(?=.{{1,64}}$){_LABEL}(\.{_LABEL})*$")


def pki_dir(value: str | os.PathLike | None) -> Path:
    """The PKI directory: the option, else OVSNET_PKI_DIR, else /etc/ovsnet/pki."""
    return Path(value or os.environ.get("OVSNET_PKI_DIR") or DEFAULT_PKI_DIR)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


# --- validation of user input (pure) -------------------------------------------------------


def check_host_name(host: str) -> str:
    if not _HOST_RE.fullmatch(host):  # match() would let a trailing newline through
        raise InvalidInput(
            f"{host!r} is not a usable host name for a certificate",
            "use letters, digits, '-' and '.' only (at most 64 characters)",
        )
    return host


def parse_ips(values: Iterable[str]) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    addresses = []
    for text in values:
        try:
            addresses.append(ipaddress.ip_address(text.strip()))
        except ValueError:
            raise InvalidInput(f"{text!r} is not an IP address", "give --ip ADDR") from None
    return addresses


def check_days(days: int) -> int:
    if not 1 <= days <= 36500:
        raise InvalidInput(f"validity of {days} days is out of range", "give 1 to 36500 days")
    return days


# --- building certificates (pure) ----------------------------------------------------------


def generate_key(rsa: bool = False):
    """A new private key: ECDSA P-256, or RSA 3072 when asked."""
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric import rsa as rsa_mod

    if rsa:
        return rsa_mod.generate_private_key(public_exponent=65537, key_size=3072)
    return ec.generate_private_key(ec.SECP256R1())


def key_like(key):
    """A new key of the same kind as `key` (host keys follow the CA's algorithm)."""
    from cryptography.hazmat.primitives.asymmetric import rsa as rsa_mod

    return generate_key(rsa=isinstance(key, rsa_mod.RSAPrivateKey))


def _name(common_name: str):
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    # O first, CN last: RFC 2253 prints it reversed as "CN=host,O=ovsnet", which is the form
    # ovs-monitor-ipsec can parse (a bare "CN=host" makes it drop the tunnel's IPsec config).
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _hash_for(key):
    from cryptography.hazmat.primitives import hashes

    return hashes.SHA256()  # ECDSA P-256 and RSA keys only (generate_key)


def build_ca(
    key, common_name: str = "ovsnet CA", now: dt.datetime | None = None, days: int = CA_DAYS
) -> x509.Certificate:
    """A self-signed CA certificate that may sign end-entity certificates only."""
    from cryptography import x509

    now = now or utcnow()
    name = _name(common_name)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    return builder.sign(key, _hash_for(key))


def _key_usage(cert_sign: bool = False, key_encipherment: bool = False):
    from cryptography import x509

    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=key_encipherment,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


@dataclass(frozen=True)
class LeafProfile:
    """What an end-entity certificate is for."""

    server: bool = True
    client: bool = True
    ike: bool = True


HOST_PROFILE = LeafProfile(server=True, client=True, ike=True)
DOCKER_SERVER_PROFILE = LeafProfile(server=True, client=False, ike=False)
DOCKER_CLIENT_PROFILE = LeafProfile(server=False, client=True, ike=False)


def build_leaf(
    ca_cert: x509.Certificate,
    ca_key,
    public_key,
    common_name: str,
    dns_names: Sequence[str] = (),
    ips: Sequence[ipaddress.IPv4Address | ipaddress.IPv6Address] = (),
    profile: LeafProfile = HOST_PROFILE,
    now: dt.datetime | None = None,
    days: int = LEAF_DAYS,
) -> x509.Certificate:
    """An end-entity certificate `O=ovsnet, CN=common_name` signed by the CA."""
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import rsa as rsa_mod
    from cryptography.x509.oid import ExtendedKeyUsageOID, ObjectIdentifier

    now = now or utcnow()
    usages = []
    if profile.server:
        usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
    if profile.client:
        usages.append(ExtendedKeyUsageOID.CLIENT_AUTH)
    if profile.ike:
        usages.append(ObjectIdentifier(IKE_INTERMEDIATE_OID))
    names = [x509.DNSName(n) for n in dict.fromkeys(dns_names)]
    names += [x509.IPAddress(ip) for ip in dict.fromkeys(ips)]
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca_cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(min(now + dt.timedelta(days=days), ca_cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            _key_usage(key_encipherment=isinstance(public_key, rsa_mod.RSAPublicKey)),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()),
            critical=False,
        )
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(ca_key, _hash_for(ca_key))


# --- reading and checking certificates (pure) -----------------------------------------------


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
        }


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
    )


def verify_chain(
    cert: x509.Certificate, ca_cert: x509.Certificate, now: dt.datetime | None = None
) -> CertSummary:
    """Check that `cert` is signed by `ca_cert` and both are valid now; raise InvalidInput."""
    now = now or utcnow()
    ca = summarize(ca_cert)
    leaf = summarize(cert)
    if not ca.is_ca:
        raise InvalidInput(f"{ca.subject} is not a CA certificate", "give the ovsnet CA (--ca)")
    if ca.expired(now):
        raise InvalidInput(
            f"the CA certificate {ca.subject} is expired or not yet valid",
            "create a new CA with `ovsnet pki init` and reissue",
        )
    from cryptography.exceptions import InvalidSignature

    try:
        cert.verify_directly_issued_by(ca_cert)
    except (InvalidSignature, ValueError, TypeError) as exc:  # wrong issuer name or signature
        raise InvalidInput(
            f"certificate {leaf.subject} was not issued by the CA {ca.subject}",
            "issue it with `ovsnet pki issue` from the same CA",
        ) from exc
    if leaf.expired(now):
        raise InvalidInput(
            f"certificate {leaf.subject} is not valid now (valid {leaf.not_before:%Y-%m-%d} "
            f"to {leaf.not_after:%Y-%m-%d})",
            "issue a new one with `ovsnet pki issue HOST --renew`",
        )
    return leaf


def check_key_matches(cert: x509.Certificate, key) -> None:
    from cryptography.hazmat.primitives import serialization

    fmt = serialization.PublicFormat.SubjectPublicKeyInfo
    enc = serialization.Encoding.DER
    if cert.public_key().public_bytes(enc, fmt) != key.public_key().public_bytes(enc, fmt):
        raise InvalidInput(
            "the private key does not belong to the certificate",
            "give the key issued with this certificate",
        )


def ike_identity(summary: CertSummary) -> str:
    """The IKE identity (CN) ovs-monitor-ipsec will use for this certificate.

    It extracts the CN from the RFC 2253 subject with `CN=(.+?),`, so a subject with only a CN
    fails there (and the tunnel silently falls back to plaintext); strongSwan then matches the
    identity against the SAN DNS names, so the CN must be one of them.
    """
    cn = summary.common_name
    if not cn:
        raise InvalidInput(
            f"certificate {summary.subject} has no CN", "issue it with `ovsnet pki issue HOST`"
        )
    if summary.subject.split(",")[0] != f"CN={cn}" or "," not in summary.subject:
        raise InvalidInput(
            f"certificate subject {summary.subject!r} is a bare CN or does not start with it;"
            " ovs-monitor-ipsec cannot parse it",
            "issue it with `ovsnet pki issue HOST` (subject O=ovsnet, CN=HOST)",
        )
    if cn not in summary.dns_names:
        raise InvalidInput(
            f"certificate CN {cn} is not among its SAN DNS names",
            "issue it with `ovsnet pki issue HOST`",
        )
    return cn


# --- files ----------------------------------------------------------------------------------


def pem_certificate(cert: x509.Certificate) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return cert.public_bytes(serialization.Encoding.PEM)


def _pem_private_key(key) -> bytes:
    from cryptography.hazmat.primitives import serialization

    # Traditional OpenSSL PEM ("EC/RSA PRIVATE KEY"): strongSwan, Libreswan and Go all read it.
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


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

    kind: str  # ca | host | docker-server | docker-client
    name: str
    cert_path: Path
    key_path: Path
    summary: CertSummary
    changed: bool

    def as_json(self, now: dt.datetime) -> dict:
        return {
            "kind": self.kind,
            "name": self.name,
            "cert": str(self.cert_path),
            "key": str(self.key_path),
            "changed": self.changed,
            **self.summary.as_json(now),
        }


def _read_cert(path: Path) -> x509.Certificate:
    return load_certificate(path.read_bytes(), str(path))


def load_ca(directory: Path):
    """The CA certificate and key of a PKI directory, or NotReady if there is none."""
    cert_path, key_path = directory / CA_CERT, directory / CA_KEY
    if not cert_path.exists() or not key_path.exists():
        raise NotReady(f"no ovsnet CA in {directory}", "run `ovsnet pki init` first")
    return _read_cert(cert_path), load_private_key(key_path.read_bytes(), str(key_path))


def ensure_ca(
    directory: Path,
    rsa: bool = False,
    dry_run: bool = False,
    now: dt.datetime | None = None,
    days: int = CA_DAYS,
) -> Issued:
    """Create the CA unless one exists (an existing CA is never replaced)."""
    now = now or utcnow()
    cert_path, key_path = directory / CA_CERT, directory / CA_KEY
    if cert_path.exists() or key_path.exists():
        if not (cert_path.exists() and key_path.exists()):
            raise OperationFailed(
                f"{directory} holds only one of {CA_CERT} and {CA_KEY}",
                "restore the missing file, or move the directory away and run init again",
            )
        return Issued("ca", "ca", cert_path, key_path, summarize(_read_cert(cert_path)), False)
    key = generate_key(rsa=rsa)
    cert = build_ca(key, now=now, days=check_days(days))
    if not dry_run:
        _private_dir(directory)
        write_private_key(key_path, key)  # key first: a cert without its key is useless
        write_certificate(cert_path, cert)
    return Issued("ca", "ca", cert_path, key_path, summarize(cert), True)


def host_paths(directory: Path, host: str) -> tuple[Path, Path]:
    return directory / "hosts" / f"{host}-cert.pem", directory / "hosts" / f"{host}-key.pem"


@dataclass(frozen=True)
class LeafRequest:
    """One end-entity certificate to keep on disk: what it says and where it goes."""

    kind: str
    name: str
    cert_path: Path
    key_path: Path
    common_name: str
    dns: tuple[str, ...]
    ips: tuple
    profile: LeafProfile
    key_type: str | None = None  # "rsa" | "ecdsa"; None: same as the CA's key
    ca_copy: Path | None = None  # also write the CA certificate here (Docker's ca.pem)

    def new_key(self, ca_key):
        if self.key_type is None:
            return key_like(ca_key)
        return generate_key(rsa=self.key_type == "rsa")


def key_type_of(public_key) -> str:
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric import rsa as rsa_mod

    if isinstance(public_key, rsa_mod.RSAPublicKey):
        return "rsa"
    return "ecdsa" if isinstance(public_key, ec.EllipticCurvePublicKey) else "other"


def _current(request: LeafRequest, ca_cert, now: dt.datetime) -> CertSummary | None:
    """The existing certificate's summary if it already is what was asked for, else None."""
    if not (request.cert_path.exists() and request.key_path.exists()):
        return None
    try:
        cert = _read_cert(request.cert_path)
        summary = verify_chain(cert, ca_cert, now)
    except InvalidInput:
        return None
    wanted_dns = tuple(dict.fromkeys(request.dns))
    wanted_ips = tuple(str(ip) for ip in dict.fromkeys(request.ips))
    if summary.dns_names != wanted_dns or summary.ip_addresses != wanted_ips:
        return None
    if request.key_type and key_type_of(cert.public_key()) != request.key_type:
        return None
    if summary.expires_soon(now):
        return None
    return summary


@dataclass(frozen=True)
class IssueOptions:
    renew: bool = False
    dry_run: bool = False
    days: int = LEAF_DAYS
    now: dt.datetime | None = None


def _ensure_leaf(directory: Path, request: LeafRequest, options: IssueOptions) -> Issued:
    ca_cert, ca_key = load_ca(directory)
    now = options.now or utcnow()
    found = None if options.renew else _current(request, ca_cert, now)
    if found is not None:
        return Issued(request.kind, request.name, request.cert_path, request.key_path, found, False)
    key = request.new_key(ca_key)
    cert = build_leaf(
        ca_cert,
        ca_key,
        key.public_key(),
        request.common_name,
        request.dns,
        request.ips,
        request.profile,
        now,
        check_days(options.days),
    )
    if not options.dry_run:
        _private_dir(request.cert_path.parent)
        write_private_key(request.key_path, key)
        write_certificate(request.cert_path, cert)
        if request.ca_copy is not None:
            write_certificate(request.ca_copy, ca_cert)
    return Issued(
        request.kind, request.name, request.cert_path, request.key_path, summarize(cert), True
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
    """Issue (or keep) HOST's certificate for IKE and TLS: CN=HOST, SAN DNS=HOST + IPs.

    An existing certificate is kept when it chains to the CA, has the asked-for SANs and key
    type and does not expire within 30 days; otherwise (or with renew) a new key and
    certificate are written.
    """
    host = check_host_name(host)
    if key_type not in KEY_TYPES:
        raise InvalidInput(f"unknown key type {key_type!r}", f"use one of {', '.join(KEY_TYPES)}")
    cert_path, key_path = host_paths(directory, host)
    request = LeafRequest(
        "host",
        host,
        cert_path,
        key_path,
        host,
        (host,),
        tuple(parse_ips(ips)),
        HOST_PROFILE,
        key_type=key_type,
    )
    return _ensure_leaf(directory, request, options)


def docker_dirs(directory: Path, host: str) -> tuple[Path, Path]:
    base = directory / "docker" / host
    return base / "server", base / "client"


def ensure_docker_certs(
    directory: Path,
    host: str,
    ips: Sequence[str] = (),
    dns: Sequence[str] = (),
    options: IssueOptions = IssueOptions(),
) -> tuple[Issued, Issued]:
    """The dockerd server certificate (SAN = HOST, --dns names, --ip addresses) and a client one.

    Each directory holds ca.pem, cert.pem and key.pem: the names Docker's client expects in
    DOCKER_CERT_PATH, and what `--docker-tls DIR` reads.
    """
    host = check_host_name(host)
    for name in dns:
        check_host_name(name)
    server_dir, client_dir = docker_dirs(directory, host)
    server = LeafRequest(
        "docker-server",
        host,
        server_dir / "cert.pem",
        server_dir / "key.pem",
        host,
        (host, *dns),
        tuple(parse_ips(ips)),
        DOCKER_SERVER_PROFILE,
        ca_copy=server_dir / "ca.pem",
    )
    client = LeafRequest(
        "docker-client",
        host,
        client_dir / "cert.pem",
        client_dir / "key.pem",
        DOCKER_CLIENT_CN,
        (),
        (),
        DOCKER_CLIENT_PROFILE,
        ca_copy=client_dir / "ca.pem",
    )
    return _ensure_leaf(directory, server, options), _ensure_leaf(directory, client, options)


def list_certificates(directory: Path) -> list[Issued]:
    """Every certificate of the PKI directory (CA first). Reads no private key."""
    found: list[Issued] = []
    ca = directory / CA_CERT
    if ca.exists():
        found.append(Issued("ca", "ca", ca, directory / CA_KEY, summarize(_read_cert(ca)), False))
    for cert_path in sorted((directory / "hosts").glob("*-cert.pem")):
        name = cert_path.name.removesuffix("-cert.pem")
        key_path = cert_path.with_name(f"{name}-key.pem")
        found.append(
            Issued("host", name, cert_path, key_path, summarize(_read_cert(cert_path)), False)
        )
    for cert_path in sorted((directory / "docker").glob("*/*/cert.pem")):
        kind = f"docker-{cert_path.parent.name}"
        found.append(
            Issued(
                kind,
                cert_path.parent.parent.name,
                cert_path,
                cert_path.with_name("key.pem"),
                summarize(_read_cert(cert_path)),
                False,
            )
        )
    return found
