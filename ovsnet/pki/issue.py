"""Leaf certificates: what to issue for a purpose and name (`pki issue`), kept as long as it is
still valid, chains to its purpose's CA and is not revoked; hosts' IKE and Docker TLS pairs.

Place: docs/architecture.md, "Layers": facade layer.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ovsnet.errors import InvalidInput
from ovsnet.files import write_atomically
from ovsnet.pki.builders import build_leaf, generate_key, key_like
from ovsnet.pki.checks import check_purpose, verify_chain
from ovsnet.pki.crl import revoked_serials
from ovsnet.pki.profile import (
    DOCKER_CLIENT_CN,
    LEAF_DAYS,
    PURPOSE,
    check_days,
    check_host_name,
    check_purpose_name,
    parse_ips,
    utcnow,
)
from ovsnet.pki.reading import CertSummary, load_private_key, summarize
from ovsnet.pki.store import (
    Issued,
    host_paths,
    key_store,
    leaf_folder,
    load_ca,
    pem_certificate,
    private_dir,
    read_cert,
    write_certificate,
    write_private_key,
)


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
        cert = read_cert(request.cert_path)
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
            private_dir(request.cert_path.parent)
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
