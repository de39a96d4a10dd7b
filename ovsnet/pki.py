"""ovsnet's private PKI: one CA per purpose, so a certificate works only where it was meant to.

Purposes (`PURPOSES`): `ike` (IPsec host identities, strongSwan), `docker-server` and
`docker-client` (the Docker API with --tlsverify), `etcd-server` and `etcd-client` (cluster mode).
Each purpose has its own self-signed CA (pathlen 0, it signs end-entity certificates only) and
each consumer trusts exactly one of them: strongSwan the IKE CA, dockerd the docker-client CA,
a Docker client the docker-server CA, etcd the etcd-client CA, an etcd client the etcd-server
CA. Leaf certificates also carry only their purpose's extended key usage, so even a consumer
given the wrong CA file refuses them (Go's TLS and OpenSSL check the EKU). The trust model and
the rotation and revocation procedures: docs/decisions/g-pki.md.

Pure builders (`build_*`, `summarize`, `verify_chain`, `ike_identity`, `check_purpose`) take and
return `cryptography` objects; the functions below "files" do the I/O. Private keys are written
0600 from their first byte, atomically, and never printed or returned as text; every OS error of
the key store becomes an ovsnet error with a one-line message.

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
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import ipaddress
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ovsnet.errors import InvalidInput, NotReady, OperationFailed

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
CA_DAYS = 1825  # 5 years: rotating a CA means reissuing and redeploying its purpose's leaves
LEAF_DAYS = 90  # short: dockerd cannot check a CRL, so expiry is its only revocation
CRL_DAYS = 365  # the CRL's nextUpdate; `pki revoke` and `pki crl` sign a fresh one
EXPIRY_WARNING_DAYS = 30  # also when `pki issue` replaces a certificate on its own
ORGANIZATION = "ovsnet"
DOCKER_CLIENT_CN = "ovsnet-docker-client"

# Extended key usages (dotted OIDs). IKE certificates carry id-kp-ipsecIKE (RFC 4945) and
# iKEIntermediate (what strongSwan's `pki --flag ikeIntermediate` and Windows use) but neither
# serverAuth nor clientAuth: Go (dockerd, etcd) and OpenSSL then refuse them for TLS.
# strongSwan 5.9 does not look at the EKU; it refuses other purposes' certificates because it
# trusts only the IKE CA.
EKU_SERVER_AUTH = "1.3.6.1.5.5.7.3.1"
EKU_CLIENT_AUTH = "1.3.6.1.5.5.7.3.2"
EKU_IPSEC_IKE = "1.3.6.1.5.5.7.3.17"
EKU_IKE_INTERMEDIATE = "1.3.6.1.5.5.8.2.2"


@dataclass(frozen=True)
class Purpose:
    """What one CA and its leaf certificates are for."""

    name: str
    title: str
    ekus: tuple[str, ...]  # on every leaf of this purpose
    trusts: str  # the purpose whose CA a holder of such a certificate trusts (its ca.pem)
    ca_constrained: bool  # the CA itself carries the EKU (checked by Go and OpenSSL)


PURPOSE_LIST = (
    # The IKE CA carries no EKU: IKE implementations differ in how they read one on a CA.
    Purpose("ike", "IPsec IKE", (EKU_IPSEC_IKE, EKU_IKE_INTERMEDIATE), "ike", False),
    Purpose("docker-server", "Docker API server", (EKU_SERVER_AUTH,), "docker-client", True),
    Purpose("docker-client", "Docker API client", (EKU_CLIENT_AUTH,), "docker-server", True),
    Purpose("etcd-server", "etcd server", (EKU_SERVER_AUTH,), "etcd-client", True),
    Purpose("etcd-client", "etcd client", (EKU_CLIENT_AUTH,), "etcd-server", True),
)
PURPOSE = {p.name: p for p in PURPOSE_LIST}
PURPOSES = tuple(PURPOSE)

# A host name as a CN and SAN DNS name: letters, digits, '-' and '.', so that the RFC 2253 form
# ovs-monitor-ipsec parses needs no escaping (it extracts the CN with the regex `CN=(.+?),`).
_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?"
_HOST_RE = re.compile(rf"^(?=.{{1,64}}$){_LABEL}(\.{_LABEL})*$")


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


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


# --- validation of user input (pure) -------------------------------------------------------


def check_host_name(host: str) -> str:
    if not _HOST_RE.match(host):
        raise InvalidInput(
            f"{host!r} is not a usable host name for a certificate",
            "use letters, digits, '-' and '.' only (at most 64 characters)",
        )
    return host


def check_purpose_name(name: str) -> Purpose:
    if name not in PURPOSE:
        raise InvalidInput(f"unknown purpose {name!r}", f"use one of {', '.join(PURPOSES)}")
    return PURPOSE[name]


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
    """A new key of the same kind as `key` (leaf keys follow their CA's algorithm)."""
    from cryptography.hazmat.primitives.asymmetric import rsa as rsa_mod

    return generate_key(rsa=isinstance(key, rsa_mod.RSAPrivateKey))


def _name(common_name: str, unit: str | None = None):
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    # O first, CN last: RFC 2253 prints it reversed as "CN=host,O=ovsnet", which is the form
    # ovs-monitor-ipsec can parse (a bare "CN=host" makes it drop the tunnel's IPsec config).
    attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION)]
    if unit:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, unit))
    attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attributes)


def _hash_for(key):
    from cryptography.hazmat.primitives import hashes

    return hashes.SHA256()  # ECDSA P-256 and RSA keys only (generate_key)


def _eku(oids: Sequence[str]):
    from cryptography import x509
    from cryptography.x509.oid import ObjectIdentifier

    return x509.ExtendedKeyUsage([ObjectIdentifier(oid) for oid in oids])


def build_ca(
    key,
    purpose: str = "ike",
    now: dt.datetime | None = None,
    days: int = CA_DAYS,
) -> x509.Certificate:
    """A self-signed CA for one purpose that may sign end-entity certificates only.

    Subject `O=ovsnet, OU=PURPOSE, CN=ovsnet PURPOSE CA`: the OU is how ovsnet tells which
    purpose a CA file serves (`purpose_of_ca`).
    """
    from cryptography import x509

    spec = check_purpose_name(purpose)
    now = now or utcnow()
    name = _name(f"ovsnet {purpose} CA", purpose)
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
    if spec.ca_constrained:
        builder = builder.add_extension(_eku(spec.ekus), critical=False)
    return builder.sign(key, _hash_for(key))


def _key_usage(cert_sign: bool = False, key_encipherment: bool = False):
    from cryptography import x509

    return x509.KeyUsage(
        digital_signature=not cert_sign,
        content_commitment=False,
        key_encipherment=key_encipherment,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def build_leaf(
    ca_cert: x509.Certificate,
    ca_key,
    public_key,
    common_name: str,
    dns_names: Sequence[str] = (),
    ips: Sequence[ipaddress.IPv4Address | ipaddress.IPv6Address] = (),
    purpose: str = "ike",
    now: dt.datetime | None = None,
    days: int = LEAF_DAYS,
) -> x509.Certificate:
    """An end-entity certificate `O=ovsnet, CN=common_name` for one purpose, signed by its CA."""
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import rsa as rsa_mod

    spec = check_purpose_name(purpose)
    now = now or utcnow()
    names = [x509.DNSName(n) for n in dict.fromkeys(dns_names)]
    names += [x509.IPAddress(ip) for ip in dict.fromkeys(ips)]
    # TLS with an RSA key exchange needs keyEncipherment; TLS 1.3 and ECDHE suites do not.
    encipher = isinstance(public_key, rsa_mod.RSAPublicKey) and purpose != "ike"
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca_cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(min(now + dt.timedelta(days=days), ca_cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(key_encipherment=encipher), critical=True)
        .add_extension(_eku(spec.ekus), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()),
            critical=False,
        )
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(ca_key, _hash_for(ca_key))


def build_crl(
    ca_cert: x509.Certificate,
    ca_key,
    revoked: Iterable[tuple[int, dt.datetime]] = (),
    number: int = 1,
    now: dt.datetime | None = None,
    days: int = CRL_DAYS,
):
    """The CA's certificate revocation list: (serial, revocation time) pairs."""
    from cryptography import x509

    now = now or utcnow()
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca_cert.subject)
        .last_update(now - dt.timedelta(minutes=5))
        .next_update(now + dt.timedelta(days=days))
        .add_extension(x509.CRLNumber(number), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()),
            critical=False,
        )
    )
    for serial, when in revoked:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(when).build()
        )
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
            "serial": f"{self.serial:x}",
            "purpose": self.purpose,
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
            "rotate it with `ovsnet pki rotate-ca PURPOSE` and reissue",
        )
    from cryptography.exceptions import InvalidSignature

    try:
        cert.verify_directly_issued_by(ca_cert)
    except (InvalidSignature, ValueError, TypeError) as exc:  # wrong issuer name or signature
        raise InvalidInput(
            f"certificate {leaf.subject} was not issued by the CA {ca.subject}",
            "issue it with `ovsnet pki issue` from the CA of its purpose",
        ) from exc
    if leaf.expired(now):
        raise InvalidInput(
            f"certificate {leaf.subject} is not valid now (valid {leaf.not_before:%Y-%m-%d} "
            f"to {leaf.not_after:%Y-%m-%d})",
            "issue a new one with `ovsnet pki renew NAME --purpose PURPOSE`",
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


def leaf_ekus(cert: x509.Certificate) -> frozenset[str] | None:
    """The dotted EKU OIDs of a certificate; None when it has no EKU (usable for anything)."""
    from cryptography import x509

    try:
        value = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return None
    return frozenset(oid.dotted_string for oid in value)


def check_purpose(cert: x509.Certificate, purpose: str, what: str = "certificate") -> None:
    """Refuse a certificate that is not an ovsnet certificate for exactly this purpose.

    Two things make a purpose: the issuing CA (named by its OU) and the EKU. A certificate of
    the single CA older ovsnet versions made has no purpose and is refused with the hint to
    migrate: it is valid for IKE and as a TLS client and server at once.
    """
    spec = check_purpose_name(purpose)
    summary = summarize(cert)
    wanted = "CA" if summary.is_ca else "certificate"
    if summary.purpose is None:
        raise InvalidInput(
            f"{what} ({summary.subject}) comes from a CA made by an older ovsnet that signs every"
            " purpose",
            "run `ovsnet pki migrate` and issue purpose-bound certificates",
        )
    if summary.purpose != purpose:
        raise InvalidInput(
            f"{what} is a {PURPOSE[summary.purpose].title} {wanted}, not a {spec.title} {wanted}",
            f"give the {purpose} {wanted} (`ovsnet pki list` shows which is which)",
        )
    ekus = leaf_ekus(cert)
    if not summary.is_ca and (ekus is None or ekus != frozenset(spec.ekus)):
        raise InvalidInput(
            f"{what} does not carry exactly the {purpose} key usages",
            f"issue it with `ovsnet pki issue NAME --purpose {purpose}`",
        )


def check_ike_trust(cert: x509.Certificate, ca_cert: x509.Certificate) -> list[str]:
    """For `ovsnet ipsec cert`: refuse a certificate or CA of another purpose (strongSwan would
    then trust Docker or etcd certificates as host identities); only warn about the all-purpose
    CA of an older ovsnet, so that hosts set up with it keep working until they migrate."""
    if summarize(ca_cert).purpose is None and summarize(cert).purpose is None:
        return [
            "the CA is not an IKE-only ovsnet CA (an older ovsnet's, or another one): any"
            " certificate it signs, Docker ones too, passes as a host identity;"
            " `ovsnet pki migrate` and reissue"
        ]
    check_purpose(ca_cert, "ike", "the CA")
    check_purpose(cert, "ike", "the certificate")
    return []


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
        f"{added[0]:x}" if added else None,
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
