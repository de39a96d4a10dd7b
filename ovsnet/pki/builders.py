"""Building ovsnet's keys, certificates and CRLs (pure): the X.509 profile of each purpose.

The builders take and return `cryptography` objects and do no I/O; `ovsnet.pki` keeps them on
disk. What each purpose's certificates carry is in `ovsnet.pki.profile`.

Place: docs/architecture.md, "Layers": pure layer.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from ovsnet.errors import InvalidInput
from ovsnet.pki.profile import (
    CA_DAYS,
    CRL_DAYS,
    LEAF_DAYS,
    ORGANIZATION,
    check_purpose_name,
    utcnow,
)

if TYPE_CHECKING:  # cryptography is a heavy import: keep `ovsnet --help` fast
    from cryptography import x509


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
