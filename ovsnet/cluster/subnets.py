"""Which /24 of the supernet a host claims. Pure.

Order of preference: the host's own subnet (the one its bridge already uses, or the one it held
last time), then free subnets nobody remembers, then free subnets another (absent) host held
last: such a host gets its /24 back when it returns, unless the supernet is full. Among equally
good subnets a host picks at random among the lowest few, so that hosts starting together
rarely collide (a collision only costs a retry: the claim is a create-if-absent transaction).
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Set
from ipaddress import IPv4Network

from ovsnet.addressing import HOST_PREFIXLEN
from ovsnet.errors import InvalidInput

SPREAD = 16  # how many of the lowest free subnets a host picks from


def check_supernet(supernet: IPv4Network, prefixlen: int = HOST_PREFIXLEN) -> IPv4Network:
    if supernet.prefixlen >= prefixlen:
        raise InvalidInput(
            f"supernet {supernet} has no room for /{prefixlen} host subnets",
            f"use a supernet shorter than /{prefixlen}, e.g. 10.0.0.0/8",
        )
    return supernet


def host_subnets(supernet: IPv4Network, prefixlen: int = HOST_PREFIXLEN) -> Iterator[IPv4Network]:
    """Every usable host subnet, lowest first: not the one holding the supernet's broadcast
    address (addressing.host_addressing refuses it)."""
    check_supernet(supernet, prefixlen)
    for subnet in supernet.subnets(new_prefix=prefixlen):
        if subnet.broadcast_address != supernet.broadcast_address:
            yield subnet


def usable(subnet: IPv4Network, supernet: IPv4Network, prefixlen: int = HOST_PREFIXLEN) -> bool:
    return (
        subnet.prefixlen == prefixlen
        and subnet.subnet_of(supernet)
        and subnet.broadcast_address != supernet.broadcast_address
    )


def choose_subnet(
    supernet: IPv4Network,
    taken: Set[IPv4Network],
    remembered: Set[IPv4Network] = frozenset(),
    preferred: tuple[IPv4Network, ...] = (),
    rng: random.Random | None = None,
    spread: int = SPREAD,
) -> IPv4Network | None:
    """The subnet to try to claim next, or None when the supernet is full."""
    for subnet in preferred:
        if usable(subnet, supernet) and subnet not in taken:
            return subnet
    rng = rng or random.Random()
    fresh: list[IPv4Network] = []
    fallback: list[IPv4Network] = []
    for subnet in host_subnets(supernet):
        if subnet in taken:
            continue
        if subnet in remembered:
            if len(fallback) < spread:
                fallback.append(subnet)
            continue
        fresh.append(subnet)
        if len(fresh) >= spread:
            break
    pool = fresh or fallback
    return rng.choice(pool) if pool else None
