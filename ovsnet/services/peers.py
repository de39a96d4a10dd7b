"""`ovsnet peer add/remove/sync/list`: one tunnel port per peer, one transaction per call."""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network

from ovsnet.errors import InvalidInput
from ovsnet.model import SUPERNET_KEY, ObservedBridge, ObservedPort, TunnelSpec
from ovsnet.netlink import Netlink
from ovsnet.ovsdb import OvsDb
from ovsnet.plan import PeerPlan, plan_peers
from ovsnet.report import ChangeReport
from ovsnet.services.host import require_bridge
from ovsnet.tunnels import TUNNEL_TYPES, parse_peer, port_name


@dataclass(frozen=True)
class PeerRequest:
    bridge: str
    peers: tuple[str, ...]
    tunnel_type: str = "gre"
    extra_options: tuple[tuple[str, str], ...] = ()


def tunnel_specs(request: PeerRequest, bridge: ObservedBridge, own: set[IPv4Address]):
    if request.tunnel_type not in TUNNEL_TYPES:
        raise InvalidInput(
            f"unknown tunnel type {request.tunnel_type!r}", f"use one of {', '.join(TUNNEL_TYPES)}"
        )
    supernet = bridge.external_ids.get(SUPERNET_KEY)
    supernet_net = IPv4Network(supernet) if supernet else None
    specs: dict[IPv4Address, TunnelSpec] = {}
    for text in request.peers:
        ip = parse_peer(text, own, supernet_net)
        specs[ip] = TunnelSpec(
            remote_ip=ip,
            port=port_name(ip, request.tunnel_type),
            type=request.tunnel_type,
            extra_options=request.extra_options,
        )
    return list(specs.values())


def _report(command: str, plan: PeerPlan, dry_run: bool) -> ChangeReport:
    steps = [f"add tunnel to {ip}" for ip in plan.added]
    steps += [f"update tunnel to {ip}" for ip in plan.updated]
    steps += [f"remove tunnel to {ip}" for ip in plan.removed]
    return ChangeReport(
        command=command,
        steps=steps,
        dry_run=dry_run,
        details={
            "added": plan.added,
            "updated": plan.updated,
            "removed": plan.removed,
            "unchanged": plan.unchanged,
        },
    )


def add_peers(
    db: OvsDb, net: Netlink, request: PeerRequest, dry_run: bool = False, exact: bool = False
) -> ChangeReport:
    """Ensure a tunnel to each peer (with exact=True, also remove every other tunnel)."""
    bridge = require_bridge(db, request.bridge)
    specs = tunnel_specs(request, bridge, net.local_addresses())
    plan = plan_peers(bridge, specs, exact=exact)
    if plan and not dry_run:
        db.apply(plan.changes)
    return _report("peer sync" if exact else "peer add", plan, dry_run)


def remove_peers(
    db: OvsDb, bridge_name: str, peers: tuple[str, ...], dry_run: bool = False
) -> ChangeReport:
    bridge = require_bridge(db, bridge_name)
    addresses = [parse_peer(text, set(), None) for text in peers]
    plan = plan_peers(bridge, [], remove=addresses)
    if plan and not dry_run:
        db.apply(plan.changes)
    return _report("peer remove", plan, dry_run)


def peer_row(port: ObservedPort) -> dict:
    stats = port.statistics
    return {
        "remote_ip": port.peer,
        "port": port.name,
        "type": port.type,
        "ipsec": port.ipsec,
        "state": port.state(),
        "link_state": port.link_state,
        "bfd_state": port.bfd_status.get("state"),
        "rx_packets": stats.get("rx_packets", 0),
        "tx_packets": stats.get("tx_packets", 0),
        "rx_bytes": stats.get("rx_bytes", 0),
        "tx_bytes": stats.get("tx_bytes", 0),
        "error": port.error,
    }


def sorted_peers(bridge: ObservedBridge) -> list[dict]:
    ports = sorted(bridge.tunnels.values(), key=lambda p: IPv4Address(p.peer))
    return [peer_row(port) for port in ports]


@dataclass
class PeerList:
    peers: list[dict]

    def as_json(self) -> list[dict]:
        return self.peers

    def render(self, console) -> None:
        from ovsnet.views import peer_table

        console.print(peer_table(self.peers))


def list_peers(db: OvsDb, bridge_name: str) -> PeerList:
    return PeerList(sorted_peers(require_bridge(db, bridge_name)))
