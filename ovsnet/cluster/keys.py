"""The key layout in etcd and the per-host permissions that follow from it. Pure.

    <prefix>hosts/<name>        host record (JSON), bound to the host's lease: live hosts only
    <prefix>subnets/<a.b.c.d-n> subnet claim {"host": name}, bound to the same lease
    <prefix>last-subnet/<name>  the host's last subnet, no lease: lets a host that was away
                                longer than its lease get the same /24 back if still free

Permissions per host (etcd 3.4 RBAC grants read/write on one key or on a key range):
own record and own last-subnet key (exact keys, so h1 cannot write h10), read on the whole
prefix, and write on the subnets range. The subnets range is shared by design: a claim creates
a key whose name nobody knows in advance, and etcd cannot express "create, but only delete
what you created". A compromised host can therefore delete or squat on subnet claims (denial
of service), but it cannot rewrite another host's record, so it cannot redirect peers' tunnels.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from ipaddress import IPv4Network

from ovsnet.errors import InvalidInput
from ovsnet.validate import check_printable

DEFAULT_PREFIX = "/ovsnet/"
HOST_ROLE_PREFIX = "ovsnet-host-"
# A host name doubles as an etcd user (the certificate CN) and a key segment.
_NAME_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,62}[A-Za-z0-9])?$")


def check_name(name: str) -> str:
    if not _NAME_RE.fullmatch(name or ""):
        raise InvalidInput(
            f"host name {name!r} is not valid",
            "use 1-64 letters, digits, '.' or '-', starting and ending with a letter or digit",
        )
    return name


def check_prefix(prefix: str) -> str:
    check_printable(prefix, "key prefix")
    if not prefix.startswith("/") or not prefix.endswith("/") or "//" in prefix:
        raise InvalidInput(
            f"key prefix {prefix!r} is not valid",
            "write it like /ovsnet/ (leading and trailing slash)",
        )
    return prefix


@dataclass(frozen=True)
class Permission:
    """One etcd RBAC grant: `key` alone, or the range [key, range_end) when range_end is set."""

    kind: str  # "read", "write" or "readwrite"
    key: str
    range_end: str | None = None


def prefix_end(prefix: str) -> str:
    """The range end that makes [prefix, end) cover exactly the keys starting with prefix."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


@dataclass(frozen=True)
class ClusterKeys:
    prefix: str = DEFAULT_PREFIX

    def __post_init__(self) -> None:
        check_prefix(self.prefix)

    @property
    def hosts(self) -> str:
        return f"{self.prefix}hosts/"

    @property
    def subnets(self) -> str:
        return f"{self.prefix}subnets/"

    @property
    def last_subnets(self) -> str:
        return f"{self.prefix}last-subnet/"

    def host(self, name: str) -> str:
        return self.hosts + check_name(name)

    def last_subnet(self, name: str) -> str:
        return self.last_subnets + check_name(name)

    def subnet(self, subnet: IPv4Network) -> str:
        return f"{self.subnets}{subnet.network_address}-{subnet.prefixlen}"

    def name_of(self, key: str) -> str | None:
        """The host name in a host-record or last-subnet key, else None."""
        for base in (self.hosts, self.last_subnets):
            if key.startswith(base) and _NAME_RE.fullmatch(key[len(base) :]):
                return key[len(base) :]
        return None

    def subnet_of(self, key: str) -> IPv4Network | None:
        if not key.startswith(self.subnets):
            return None
        address, _, length = key[len(self.subnets) :].partition("-")
        try:
            return IPv4Network(f"{address}/{length}")
        except ValueError:
            return None

    def host_permissions(self, name: str) -> list[Permission]:
        """What host `name`'s role may do (see the module docstring for what stays shared)."""
        return [
            Permission("read", self.prefix, prefix_end(self.prefix)),
            Permission("readwrite", self.host(name)),
            Permission("readwrite", self.last_subnet(name)),
            Permission("readwrite", self.subnets, prefix_end(self.subnets)),
        ]


def role_name(host: str) -> str:
    return HOST_ROLE_PREFIX + check_name(host)
