"""What ovsnet's certificates say (pure): purposes, the X.509 profile of each, and checks.

One self-signed CA per purpose; leaves carry only their purpose's extended key usage. The
builders take and return `cryptography` objects and do no I/O; `ovsnet.pki` keeps them on disk.
The trust model: docs/security.md ("Trust model").

Place: docs/architecture.md, "Layers": pure layer.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ovsnet.errors import InvalidInput

if TYPE_CHECKING:  # cryptography is a heavy import: keep `ovsnet --help` fast
    from cryptography import x509


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


def _authority_key_id(ca_cert: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    """The extension naming the CA's key. ovsnet's CAs have RSA or ECDSA keys (generate_key),
    the only kinds _hash_for signs with."""
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    key = ca_cert.public_key()
    if not isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        raise InvalidInput(
            f"the CA's key is a {type(key).__name__}: ovsnet's CAs have RSA or ECDSA keys"
        )
    return x509.AuthorityKeyIdentifier.from_issuer_public_key(key)


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
    names: list[x509.GeneralName] = [x509.DNSName(n) for n in dict.fromkeys(dns_names)]
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
        .add_extension(_authority_key_id(ca_cert), critical=False)
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
        .add_extension(_authority_key_id(ca_cert), critical=False)
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
