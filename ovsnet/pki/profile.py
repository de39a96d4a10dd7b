"""What ovsnet's certificates are for (pure): purposes, their key usages and lifetimes, and the
checks of what a user asks a certificate to name.

One self-signed CA per purpose; leaves carry only their purpose's extended key usage. Building
certificates: `ovsnet.pki.builders`; reading them: `ovsnet.pki.reading`; checking them:
`ovsnet.pki.checks`. The trust model: docs/security.md ("Trust model").

Place: docs/architecture.md, "Layers": pure layer.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ovsnet.errors import InvalidInput

if TYPE_CHECKING:  # cryptography is a heavy import: keep `ovsnet --help` fast
    pass


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
