"""What the agent wants, given what etcd says. Pure.

The peer set is recomputed from the whole view of live host records after every batch of
watch events, so a missed or repeated event can never leave a stale tunnel behind.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator, Mapping, Set
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network

from ovsnet.cluster.records import HostRecord
from ovsnet.errors import InvalidInput
from ovsnet.tunnels import parse_peer

# As `ovsnet pki show` prints it, after "sha256:": 32 bytes, hex pairs joined by colons.
_FINGERPRINT = re.compile(r"^sha256:([0-9A-Fa-f]{2}:){31}[0-9A-Fa-f]{2}$")


@dataclass(frozen=True)
class PeerPlan:
    peers: tuple[str, ...]  # underlay IPs, sorted numerically
    skipped: tuple[str, ...] = field(default=())  # one line per record that was left out
    # Certificate IPsec: (underlay IP, the CN of that peer's certificate), as its record says.
    names: tuple[tuple[str, str], ...] = field(default=())


def desired_peers(
    records: Mapping[str, HostRecord],
    me: str,
    own_ip: IPv4Address,
    tunnel_type: str,
    ipsec_method: str | None = None,
    supernet: IPv4Network | None = None,
    local: Set[IPv4Address] = frozenset(),
) -> PeerPlan:
    """Tunnels to every other live host of the same tunnel type and IPsec method (a plain
    host and an IPsec host cannot talk: the IPsec side drops unprotected tunnel traffic).

    With certificate IPsec, each peer's tunnel names the CN its record publishes (IKE then
    accepts only that name, signed by this host's IKE CA); a record without a valid CN and
    fingerprint is left out.

    A record that `peer sync` would refuse (an underlay address of this host, or inside the
    overlay) is left out here, so one bad record cannot make the whole sync fail."""
    peers: set[IPv4Address] = set()
    names: dict[IPv4Address, str] = {}
    skipped: list[str] = []
    for name, record in sorted(records.items()):
        if name == me:
            continue
        problem = _unusable(record, own_ip, local, supernet)
        if problem:
            skipped.append(f"{name}: {problem}")
        elif record.tunnel_type != tunnel_type:
            skipped.append(f"{name}: uses {record.tunnel_type} tunnels, this host {tunnel_type}")
        elif record.ipsec_method != ipsec_method:
            skipped.append(
                f"{name}: uses IPsec {record.ipsec_method or 'off'}, "
                f"this host {ipsec_method or 'off'}"
            )
        elif ipsec_method == "cert" and (problem := _certificate_problem(record)):
            skipped.append(f"{name}: {problem}")
        else:
            peers.add(record.underlay_ip)
            if ipsec_method == "cert":
                assert record.ipsec_cn is not None  # _certificate_problem refused a record without
                names[record.underlay_ip] = record.ipsec_cn
    return PeerPlan(
        tuple(str(ip) for ip in sorted(peers)),
        tuple(skipped),
        tuple((str(ip), names[ip]) for ip in sorted(names)),
    )


def _certificate_problem(record: HostRecord) -> str | None:
    """Why a certificate-IPsec record cannot get a tunnel: IKE needs the peer's CN."""
    from ovsnet.ipsec.credentials import check_remote_name

    if not record.ipsec_cn or not record.ipsec_fingerprint:
        return "uses IPsec cert but publishes no certificate name and fingerprint"
    if not _FINGERPRINT.match(record.ipsec_fingerprint):
        return f"its certificate fingerprint {record.ipsec_fingerprint!r} is not sha256:XX:XX:..."
    try:
        check_remote_name(record.ipsec_cn)
    except InvalidInput as exc:
        return exc.message
    return None


def _unusable(
    record: HostRecord,
    own_ip: IPv4Address,
    local: Set[IPv4Address],
    supernet: IPv4Network | None,
) -> str | None:
    if record.underlay_ip == own_ip:
        return f"has this host's underlay address {own_ip}"
    try:
        parse_peer(str(record.underlay_ip), set(local), supernet)
    except InvalidInput as exc:
        return exc.message
    if supernet is not None and not record.subnet.subnet_of(supernet):
        return f"its subnet {record.subnet} is outside this host's supernet {supernet}"
    return None


def underlay_conflicts(records: Mapping[str, HostRecord]) -> list[str]:
    """Hosts that publish the same underlay address (a typo, or a host pretending)."""
    seen: dict[IPv4Address, str] = {}
    problems = []
    for name, record in sorted(records.items()):
        other = seen.setdefault(record.underlay_ip, name)
        if other != name:
            problems.append(f"{other} and {name} both publish underlay {record.underlay_ip}")
    return problems


def subnet_conflicts(records: Mapping[str, HostRecord]) -> list[str]:
    """Hosts that publish the same subnet (never by ovsnet's claims; only by hand-written keys)."""
    seen: dict[str, str] = {}
    problems = []
    for name, record in sorted(records.items()):
        other = seen.setdefault(str(record.subnet), name)
        if other != name:
            problems.append(f"{other} and {name} both publish {record.subnet}")
    return problems


def backoff(
    first: float = 0.5, cap: float = 10.0, rng: random.Random | None = None
) -> Iterator[float]:
    """Delays before reconnect attempts: doubling from `first` up to `cap`, with jitter so a
    fleet that lost etcd together does not come back in lockstep."""
    rng = rng or random.Random()
    delay = first
    while True:
        yield delay * rng.uniform(0.75, 1.0)
        delay = min(cap, delay * 2)


def keepalive_interval(ttl: int) -> float:
    """Refresh the lease three times per TTL: two refreshes may fail before the lease ends."""
    return max(0.2, ttl / 3)


def backoff_cap(ttl: int) -> float:
    """Retry at least as often as keepalives: when etcd comes back, leases restart at their
    full TTL, and an agent must refresh before that runs out or its subnet is freed."""
    return max(0.5, min(10.0, ttl / 3))
