"""Checking certificates (pure): chain, key, purpose, and the IKE identity ovs-monitor-ipsec uses.

Each check raises InvalidInput with a hint. The trust model: docs/security.md ("Trust model").

Place: docs/architecture.md, "Layers": pure layer.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from ovsnet.errors import InvalidInput
from ovsnet.pki.profile import PURPOSE, check_purpose_name, utcnow
from ovsnet.pki.reading import CertSummary, leaf_ekus, summarize

if TYPE_CHECKING:  # cryptography is a heavy import: keep `ovsnet --help` fast
    from cryptography import x509


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
