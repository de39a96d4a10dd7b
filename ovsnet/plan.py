"""Desired state vs observed state: pure planning, no I/O.

Each planner returns the OVSDB changes (one transaction) and the kernel steps to take, plus a
human sentence per step; an empty plan means "nothing to do".

Place: docs/architecture.md, "Layers": pure layer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from ipaddress import IPv4Address, IPv4Interface
from typing import Protocol

from ovsnet.addressing import HostAddressing
from ovsnet.errors import InvalidInput, NotReady
from ovsnet.model import (
    ROLE_DOCKER_BRIDGE,
    ROLE_KEY,
    SUBNET_KEY,
    BridgeSpec,
    Changes,
    LinkState,
    ObservedBridge,
    ObservedPort,
    TunnelSpec,
)


class DockerBridge(Protocol):
    """What the check needs of Docker's bridge network (ovsnet.docker.BridgeSettings)."""

    @property
    def bip(self) -> str | None: ...

    @property
    def ip_range(self) -> str | None: ...

    @property
    def mtu(self) -> int | None: ...


@dataclass
class HostPlan:
    """What `init` or `reset` will do."""

    changes: Changes = field(default_factory=Changes)
    move_address: tuple[IPv4Interface, str, str] | None = None  # (address, from, to)
    drop_addresses: list[tuple[str, IPv4Interface]] = field(default_factory=list)  # (link, addr)
    add_addresses: list[tuple[str, IPv4Interface]] = field(default_factory=list)  # (link, addr)
    bring_up: list[str] = field(default_factory=list)
    steps: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(
            self.changes
            or self.move_address
            or self.drop_addresses
            or self.add_addresses
            or self.bring_up
        )


def docker_options_hint(addressing: HostAddressing, mtu: int) -> str:
    flags = " ".join(addressing.docker_flags(mtu))
    return f"start Docker with {flags} (or set them in daemon.json), then run init again"


def plan_init(
    spec: BridgeSpec,
    addressing: HostAddressing,
    bridge: ObservedBridge | None,
    docker_link: LinkState,
    bridge_link: LinkState,
    docker_port_owner: str | None,
) -> HostPlan:
    """Plan `ovsnet init`: bridge, docker bridge as its port, the address move, links up."""
    refuse_foreign_bridge(spec.name, bridge)
    if not docker_link.exists:
        raise NotReady(
            f"docker bridge {spec.docker_bridge} does not exist",
            "start Docker first (or pass --docker-bridge)",
        )
    if docker_port_owner not in (None, spec.name):
        raise InvalidInput(
            f"{spec.docker_bridge} is already a port of OVS bridge {docker_port_owner}",
            "remove it there first or pass that bridge as --bridge",
        )
    plan = HostPlan()
    _plan_bridge(plan, spec, bridge)
    _plan_addresses(plan, spec, addressing, docker_link, bridge_link, bridge)
    if bridge_link.exists and not bridge_link.up or not bridge_link.exists:
        plan.bring_up.append(spec.name)
        plan.steps.append(f"bring {spec.name} up")
    if not docker_link.up:
        plan.bring_up.append(spec.docker_bridge)
        plan.steps.append(f"bring {spec.docker_bridge} up")
    return plan


def docker_mismatches(settings: DockerBridge, addressing: HostAddressing, mtu: int) -> list[str]:
    """How Docker's bridge network (as its API reports it) differs from what ovsnet needs."""
    wanted = addressing.docker_options(mtu)
    found = {
        "bip": settings.bip,
        "fixed-cidr": settings.ip_range,
        # Docker reports no MTU option when it runs with its default of 1500.
        "mtu": settings.mtu or 1500,
    }
    return [
        f"{key} is {found[key]} (wants {wanted[key]})"
        for key in ("bip", "fixed-cidr", "mtu")
        if str(found[key]) != str(wanted[key])
    ]


def refuse_foreign_bridge(name: str, bridge: ObservedBridge | None) -> None:
    if bridge is not None and not bridge.managed:
        raise InvalidInput(
            f"bridge {name} exists and was not created by ovsnet",
            "pick another --bridge, or remove that bridge first",
        )


def _plan_bridge(plan: HostPlan, spec: BridgeSpec, bridge: ObservedBridge | None) -> None:
    if bridge is None:
        plan.changes.bridge = spec
        plan.steps.append(
            f"create OVS bridge {spec.name} (datapath {spec.datapath_type}, MTU {spec.mtu})"
        )
    else:
        internal = bridge.internal
        drift = []
        if bridge.datapath_type != spec.datapath_type:
            drift.append(f"datapath {bridge.datapath_type or 'system'} -> {spec.datapath_type}")
        if internal is None or internal.mtu_request != spec.mtu:
            current = internal.mtu_request if internal else None
            drift.append(f"MTU {current} -> {spec.mtu}")
        if any(bridge.external_ids.get(k) != v for k, v in spec.external_ids.items()):
            drift.append("overlay settings")
        if drift:
            plan.changes.bridge = spec
            plan.steps.append(f"update OVS bridge {spec.name}: " + ", ".join(drift))
    attached = bridge is not None and spec.docker_bridge in bridge.ports
    if not attached:
        plan.changes.tunnel_bridge = spec.name
        plan.changes.system_ports.append((spec.docker_bridge, {ROLE_KEY: ROLE_DOCKER_BRIDGE}))
        plan.steps.append(f"attach {spec.docker_bridge} as a port of {spec.name}")


def _plan_addresses(
    plan: HostPlan,
    spec: BridgeSpec,
    addressing: HostAddressing,
    docker_link: LinkState,
    bridge_link: LinkState,
    bridge: ObservedBridge | None,
) -> None:
    want = addressing.bridge_address
    if want in docker_link.addresses and want in bridge_link.addresses:
        # Docker restarted and put the address back on its bridge, or an earlier run was
        # killed halfway through the move (add first, remove second): finish it.
        plan.drop_addresses.append((spec.docker_bridge, want))
        plan.steps.append(f"remove {want} from {spec.docker_bridge} (it is on {spec.name} too)")
    elif want in docker_link.addresses:
        plan.move_address = (want, spec.docker_bridge, spec.name)
        plan.steps.append(f"move {want} from {spec.docker_bridge} to {spec.name}")
    elif want not in bridge_link.addresses:
        if not _records_subnet(bridge, addressing) or _other_docker_network(docker_link, want):
            found = ", ".join(map(str, docker_link.addresses)) or "no IPv4 address"
            raise NotReady(
                f"{spec.docker_bridge} has {found} but ovsnet expects {want} for subnet "
                f"{addressing.subnet}",
                docker_options_hint(addressing, spec.mtu),
            )
        # OVSDB says this host was set up for the subnet and the gateway is on neither link:
        # ovs-vswitchd recreated the bridge's interface (userspace datapath), or a process of an
        # older ovsnet died between removing and adding. Put it back where it belongs.
        plan.add_addresses.append((spec.name, want))
        plan.steps.append(f"put the gateway {want} back on {spec.name}")
    for stale in bridge_link.addresses:
        if stale != want:
            plan.drop_addresses.append((spec.name, stale))
            plan.steps.append(f"remove stale address {stale} from {spec.name}")


def _records_subnet(bridge: ObservedBridge | None, addressing: HostAddressing) -> bool:
    return (
        bridge is not None
        and bridge.managed
        and bridge.external_ids.get(SUBNET_KEY) == str(addressing.subnet)
    )


def _other_docker_network(docker_link: LinkState, want: IPv4Interface) -> bool:
    """Docker runs with another subnet: let the error explain that rather than hide it."""
    return any(address.network != want.network for address in docker_link.addresses)


def plan_reset(
    bridge_name: str,
    bridge: ObservedBridge | None,
    docker_bridge: str,
    docker_link: LinkState,
    bridge_link: LinkState,
) -> HostPlan:
    """Plan `ovsnet reset`: give the address back to the docker bridge, delete the bridge."""
    plan = HostPlan()
    if bridge is None:
        return plan
    if not bridge.managed:
        raise InvalidInput(
            f"bridge {bridge_name} was not created by ovsnet; reset leaves it alone",
            "pass the bridge ovsnet created as --bridge",
        )
    for address in bridge_link.addresses:
        if address in docker_link.addresses or not docker_link.exists:
            plan.drop_addresses.append((bridge_name, address))
            plan.steps.append(f"remove {address} from {bridge_name}")
        elif plan.move_address is None:
            plan.move_address = (address, bridge_name, docker_bridge)
            plan.steps.append(f"move {address} from {bridge_name} back to {docker_bridge}")
    plan.changes.delete_bridge = bridge_name
    tunnels = len(bridge.tunnels)
    plan.steps.append(f"delete OVS bridge {bridge_name} and its {tunnels} tunnel port(s)")
    return plan


# -- peers ---------------------------------------------------------------------------------


@dataclass
class PeerPlan:
    changes: Changes
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.changes)


def plan_peers(
    bridge: ObservedBridge,
    desired: list[TunnelSpec],
    remove: Sequence[IPv4Address] = (),
    exact: bool = False,
) -> PeerPlan:
    """Tunnels to add/update/remove so the bridge has `desired` (and, if exact, only those)."""
    plan = PeerPlan(changes=Changes(tunnel_bridge=bridge.name))
    existing = bridge.tunnels  # remote ip -> observed port
    wanted = {str(spec.remote_ip) for spec in desired}
    for spec in desired:
        key = str(spec.remote_ip)
        current = existing.get(key)
        if current is None:
            _refuse_foreign_port(bridge, spec.port)
            plan.changes.add_tunnels.append(spec)
            plan.added.append(key)
        elif current.name != spec.port:  # tunnel type changed: the name follows the type
            _refuse_foreign_port(bridge, spec.port)
            plan.changes.remove_ports.append(current.name)
            plan.changes.add_tunnels.append(spec)
            plan.updated.append(key)
        elif _differs(current, spec):
            plan.changes.update_tunnels.append(spec)
            plan.updated.append(key)
        else:
            plan.unchanged.append(key)
    gone = {str(ip) for ip in remove}
    if exact:
        gone |= set(existing) - wanted
    for key in sorted(gone):
        if key in existing:
            plan.changes.remove_ports.append(existing[key].name)
            plan.removed.append(key)
    return plan


def _refuse_foreign_port(bridge: ObservedBridge, name: str) -> None:
    port = bridge.ports.get(name)
    if port is not None and not port.peer:
        raise InvalidInput(
            f"port {name} already exists on {bridge.name} and was not created by ovsnet",
            "remove or rename it first",
        )


def _differs(current: ObservedPort, spec: TunnelSpec) -> bool:
    return (
        current.type != spec.type
        or current.options != spec.options
        or current.bfd != spec.bfd
        or not current.protected
        or (spec.subnet is not None and current.peer_subnet != str(spec.subnet))
    )


def bridge_after(
    bridge: ObservedBridge, changes: Changes, ofports: Mapping[str, int | None]
) -> ObservedBridge | None:
    """The bridge as a tunnel-only change leaves it, from the bridge read before the change and
    the ofports vswitchd assigned since: each port's peer, subnet, type and ofport, which is
    what the flow plan needs. None when the change does more than tunnels (read it again then).

    NOTE(perf): saves reading every port again after each change (the cluster agent at 1,000
    hosts: one full OVSDB read per change instead of two, bench/README.md)."""
    if changes.bridge or changes.system_ports or changes.delete_bridge:
        return None
    removed = set(changes.remove_ports)
    ports = {name: port for name, port in bridge.ports.items() if name not in removed}
    for spec in changes.update_tunnels:
        old = ports.get(spec.port)
        if old is None:
            return None
        ports[spec.port] = replace(
            old,
            type=spec.type,
            options=spec.options,
            external_ids={**old.external_ids, **spec.external_ids},
            protected=True,
            ofport=ofports.get(spec.port),
        )
    for spec in changes.add_tunnels:
        ports[spec.port] = ObservedPort(
            name=spec.port,
            type=spec.type,
            options=spec.options,
            external_ids=spec.external_ids,
            protected=True,
            bfd=dict(spec.bfd),
            ofport=ofports.get(spec.port),
        )
    return replace(bridge, ports=ports)
