"""Deciding which subnet to claim, from what etcd holds. Pure.

Rules: an explicit --prefix reserves exactly that /24 or fails; otherwise a host
prefers the subnet its data plane already uses, then subnets etcd says it holds or held last.
A subnet another host holds is never taken, even if this host held it before its lease expired.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Network
from typing import Protocol

from ovsnet.cluster.keys import ClusterKeys
from ovsnet.cluster.records import BadRecord, claim_holder, memory_subnet
from ovsnet.cluster.subnets import choose_subnet
from ovsnet.errors import InvalidInput, OperationFailed


@dataclass(frozen=True)
class Holder:
    host: str
    mod_revision: int


class EtcdItem(Protocol):
    """What parsing needs of an etcd key's item (ovsnet.etcd.items.Item has it)."""

    @property
    def value(self) -> bytes: ...

    @property
    def mod_revision(self) -> int: ...


@dataclass(frozen=True)
class ClaimView:
    """Who holds which subnet, and which subnet each host held last."""

    holders: dict[IPv4Network, Holder]
    memory: dict[str, IPv4Network]
    bad: dict[str, str] = field(default_factory=dict)  # key -> why it could not be read

    @classmethod
    def parse(
        cls,
        keys: ClusterKeys,
        subnet_items: Mapping[str, EtcdItem],
        memory_items: Mapping[str, EtcdItem],
    ) -> ClaimView:
        """From etcd items (anything with .value and .mod_revision). Keys ovsnet cannot read
        still count as taken: better to skip a subnet than to share it."""
        holders, bad = {}, {}
        for key, item in subnet_items.items():
            subnet = keys.subnet_of(key)
            if subnet is None:
                bad[key] = "the key does not end in a subnet (A.B.C.D-N)"
                continue
            try:
                host = claim_holder(item.value)
            except BadRecord as exc:
                bad[key] = str(exc)
                host = "?"
            holders[subnet] = Holder(host, item.mod_revision)
        memory = {}
        for key, item in memory_items.items():
            name = keys.name_of(key)
            if name is None:
                bad[key] = "the key does not end in a valid host name"
                continue
            try:
                memory[name] = memory_subnet(item.value)
            except BadRecord as exc:
                bad[key] = str(exc)
        return cls(holders, memory, bad)

    def held_by(self, host: str) -> list[IPv4Network]:
        return sorted(s for s, h in self.holders.items() if h.host == host)


@dataclass(frozen=True)
class ClaimTarget:
    subnet: IPv4Network
    expected_revision: int | None  # None: create; else re-take our own claim at this revision


def plan_claim(
    view: ClaimView,
    host: str,
    supernet: IPv4Network,
    explicit: IPv4Network | None = None,
    current: IPv4Network | None = None,
    rng: random.Random | None = None,
) -> ClaimTarget:
    if explicit is not None:
        holder = view.holders.get(explicit)
        if holder is not None and holder.host != host:
            raise InvalidInput(
                f"subnet {explicit} is held by host {holder.host}",
                f"choose another --prefix, or free it with `ovsnet cluster release {holder.host}` "
                "if that host is gone",
            )
        return _target(view, host, explicit)
    taken = {s for s, h in view.holders.items() if h.host != host}
    remembered = {s for name, s in view.memory.items() if name != host}
    preferred = tuple(
        s for s in (current, *view.held_by(host), view.memory.get(host)) if s is not None
    )
    subnet = choose_subnet(supernet, taken, remembered, preferred, rng)
    if subnet is None:
        raise OperationFailed(
            f"no free /24 left in the supernet {supernet}",
            "release dead hosts with `ovsnet cluster release NAME` or use a larger --supernet",
        )
    return _target(view, host, subnet)


def _target(view: ClaimView, host: str, subnet: IPv4Network) -> ClaimTarget:
    holder = view.holders.get(subnet)
    return ClaimTarget(subnet, holder.mod_revision if holder and holder.host == host else None)


def displaced(previous: IPv4Network | None, claimed: IPv4Network, view: ClaimView) -> str | None:
    """A warning when the host had to move away from its previous subnet, naming the holder."""
    if previous is None or previous == claimed:
        return None
    holder = view.holders.get(previous)
    who = f"now held by {holder.host}" if holder else "not available"
    return (
        f"this host's previous subnet {previous} is {who}: claimed {claimed} instead; "
        "containers started with the old addresses must be restarted"
    )
