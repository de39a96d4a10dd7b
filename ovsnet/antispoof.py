"""Source pinning: the OpenFlow rules that keep each port to the addresses behind it.

Pure planning: from the bridge as OVSDB records it (this host's subnet, docker0's ofport, each
tunnel's ofport and recorded peer subnet) to the flow table ovsnet wants in table 0. The rules
sit above the bridge's default `priority=0 actions=NORMAL`; what they allow still goes to
NORMAL, so MAC learning and flooding are unchanged.

Per pinned port (docker0 with this host's subnet, each tunnel whose peer subnet is known):
- IPv4 with a source in the subnet, and ARP with a sender in it, go on (NORMAL);
- ARP probes (sender 0.0.0.0, RFC 5227) go on: they claim no address and update no cache;
- every other IPv4 and ARP packet from that port is dropped.
Broadcast and multicast from every tunnel (pinned or not) pass one OpenFlow meter shared by
the tunnels (BROADCAST_RATE packets/s, BROADCAST_BURST at once) where the datapath has meters:
the peers together cannot flood the bridge. One meter, not one per tunnel: OVS 3.1's ovs-ofctl
adds meters one process each, which would cost a 1,000-peer host seconds. Without meters (an
old kernel datapath) broadcast passes unmetered, as before.
The bridge's LOCAL port (the gateway, the host's own stack) is not pinned. IPv6 and other
ethertypes are not pinned (Docker's bridge network here is IPv4 only). A tunnel whose peer
subnet is unknown is left as it was: nothing pinned.

Place: docs/architecture.md, "Layers": pure layer.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import IPv4Network

from ovsnet.errors import InvalidInput
from ovsnet.model import PEER_SUBNET_KEY, SUBNET_KEY, ObservedBridge

# Every ovsnet flow carries this cookie ("ovsnt" in ASCII): sync and reset touch only these.
COOKIE = 0x6F76736E74
METERED_PRIORITY = 220  # multicast allowed by pinning, through the tunnel's meter
ALLOW_PRIORITY = 210
DROP_PRIORITY = 200
BROADCAST_PRIORITY = 190  # any other multicast from a tunnel (IPv6 ND...), through its meter
# ovsnet's meter: an id others are unlikely to pick (below the userspace datapath's maximum).
METER_ID = 0x6F76
BROADCAST_RATE = 2000  # packets/s from all tunnels: ARP for thousands of containers, no storm
BROADCAST_BURST = 2000
MULTICAST = "dl_dst=01:00:00:00:00:00/01:00:00:00:00:00"


@dataclass(frozen=True)
class PinnedPort:
    """One bridge port whose IPv4 and ARP sources must lie in `subnet`."""

    ofport: int
    subnet: IPv4Network
    what: str  # for a person: "docker0", "tunnel to 192.0.2.2"


def port_flows(port: PinnedPort) -> list[str]:
    """The flows for one port, as `ovs-ofctl dump-flows --no-stats` prints them (no cookie)."""
    n, net = port.ofport, port.subnet.with_prefixlen
    allow, drop = f"priority={ALLOW_PRIORITY}", f"priority={DROP_PRIORITY}"
    return [
        f"{allow},ip,in_port={n},nw_src={net} actions=NORMAL",
        f"{allow},arp,in_port={n},arp_spa={net} actions=NORMAL",
        f"{allow},arp,in_port={n},arp_spa=0.0.0.0 actions=NORMAL",
        f"{drop},ip,in_port={n} actions=drop",
        f"{drop},arp,in_port={n} actions=drop",
    ]


def metered_flows(ofport: int, pinned: PinnedPort | None) -> list[str]:
    """A tunnel's broadcast and multicast through its meter: what pinning allows (above the
    pinning rules, so the meter sees it) and, below them, every other ethertype."""
    n, meter = ofport, f"actions=meter:{METER_ID},NORMAL"
    flows = [f"priority={BROADCAST_PRIORITY},in_port={n},{MULTICAST} {meter}"]
    if pinned is not None:
        net, prio = pinned.subnet.with_prefixlen, f"priority={METERED_PRIORITY}"
        flows += [
            f"{prio},ip,in_port={n},{MULTICAST},nw_src={net} {meter}",
            f"{prio},arp,in_port={n},{MULTICAST},arp_spa={net} {meter}",
            f"{prio},arp,in_port={n},{MULTICAST},arp_spa=0.0.0.0 {meter}",
        ]
    return flows


def meter_spec(meter: int) -> str:
    """An ovs-ofctl meter: drop what exceeds BROADCAST_RATE packets/s."""
    return (f"meter={meter},pktps,burst,stats,bands=type=drop,rate={BROADCAST_RATE},"
            f"burst_size={BROADCAST_BURST}")  # fmt: skip


def plan_flows(ports: Iterable[PinnedPort]) -> list[str]:
    """Every pinning flow, sorted (the order does not matter to OVS, only to a diff)."""
    return sorted(flow for port in ports for flow in port_flows(port))


@dataclass(frozen=True)
class FlowPlan:
    flows: list[str]
    meters: list[int]


def plan_bridge(bridge: ObservedBridge, meters: bool) -> FlowPlan:
    """The flows (and meters, when the datapath has them) `bridge` needs now."""
    pinned = pinned_ports(bridge)
    flows = plan_flows(pinned)
    if not meters:
        return FlowPlan(flows, [])
    by_port = {p.ofport: p for p in pinned}
    tunnels = sorted(o for p in bridge.tunnels.values() if (o := _assigned(p.ofport)))
    for ofport in tunnels:
        flows += metered_flows(ofport, by_port.get(ofport))
    return FlowPlan(sorted(flows), [METER_ID] if tunnels else [])


def pinned_ports(bridge: ObservedBridge) -> list[PinnedPort]:
    """The ports of `bridge` that can be pinned now: a known subnet and an ofport vswitchd
    assigned (a port it refused, or has not applied yet, has none and gets no rules)."""
    pinned = []
    own = _network(bridge.external_ids.get(SUBNET_KEY))
    docker = bridge.docker_port
    if own is not None and docker is not None and (ofport := _assigned(docker.ofport)):
        pinned.append(PinnedPort(ofport, own, docker.name))
    for peer, port in sorted(bridge.tunnels.items()):
        subnet = _network(port.external_ids.get(PEER_SUBNET_KEY))
        if subnet is not None and (ofport := _assigned(port.ofport)):
            pinned.append(PinnedPort(ofport, subnet, f"tunnel to {peer}"))
    return pinned


def diff_flows(current: Iterable[str], wanted: Iterable[str]) -> bool:
    """Whether the installed ovsnet flows differ from the wanted ones."""
    return sorted(_normal(f) for f in current) != sorted(_normal(f) for f in wanted)


@dataclass(frozen=True)
class FlowChanges:
    """What turns the installed ovsnet flows into the wanted ones: flows to delete (as
    installed) and flows to add."""

    removed: list[str]
    added: list[str]

    def __bool__(self) -> bool:
        return bool(self.removed or self.added)


def flow_changes(current: Iterable[str], wanted: Iterable[str]) -> FlowChanges:
    """The flows to delete and add, compared in one field order (OVS prints its own).

    NOTE(perf): one tunnel more among 1,000 is 9 flows, not 9,000: sending only these keeps
    vswitchd from re-installing every flow on each change (the cluster agent's reconcile of one
    change at 1,000 hosts, bench/README.md)."""
    installed, target = set(current), set(wanted)
    # ovsnet writes flows as OVS prints them, so most are equal as they stand; only the rest
    # is compared in normal form (18,000 normalisations per change at 1,000 tunnels otherwise).
    removed = {_normal(flow): flow for flow in installed - target}
    added = {_normal(flow): flow for flow in target - installed}
    return FlowChanges(
        removed=sorted(removed[key] for key in removed.keys() - added.keys()),
        added=sorted(added[key] for key in added.keys() - removed.keys()),
    )


def match_of(flow: str) -> str:
    """A flow without its actions: what a strict delete names (priority and match)."""
    return _normal(flow).partition(" ")[0]


def parse_dump(text: str) -> list[str]:
    """`ovs-ofctl --no-stats dump-flows` output to flows without their cookie field."""
    flows = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("NXST_FLOW", "OFPST_FLOW")):
            continue
        fields = [f for f in line.split(", ") if not f.startswith("cookie=")]
        flows.append(", ".join(fields))
    return flows


def check_peer_subnet(
    subnet: IPv4Network, own: IPv4Network | None, supernet: IPv4Network | None
) -> None:
    """A peer's subnet must lie in the overlay and not be this host's own."""
    if supernet is not None and not subnet.subnet_of(supernet):
        raise InvalidInput(
            f"peer subnet {subnet} is not inside the overlay supernet {supernet}",
            "give the /24 the peer's `ovsnet init` chose (its `ovsnet status`)",
        )
    if own is not None and subnet.overlaps(own):
        raise InvalidInput(
            f"peer subnet {subnet} overlaps this host's subnet {own}",
            "give the peer's own subnet, not this host's",
        )


def parse_subnet(text: str, where: str = "--subnet") -> IPv4Network:
    try:
        if "/" not in text:  # a bare address is more likely a second peer than a /32
            raise ValueError(text)
        return IPv4Network(text, strict=True)
    except ValueError:
        raise InvalidInput(
            f"{where}: {text!r} is not an IPv4 network", "write it as CIDR, e.g. 10.0.2.0/24"
        ) from None


def _normal(flow: str) -> str:
    """A flow with its match fields in one order: OVS prints them in its own."""
    match, _, actions = " ".join(flow.replace(", ", ",").split()).partition(" ")
    return ",".join(sorted(match.split(","))) + " " + actions


def _network(text: str | None) -> IPv4Network | None:
    try:
        return IPv4Network(text) if text else None
    except ValueError:
        return None


def _assigned(ofport: int | None) -> int | None:
    """The ofport vswitchd assigned, or None (not applied yet, or refused: -1)."""
    return ofport if ofport is not None and ofport > 0 else None
