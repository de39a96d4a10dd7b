"""`ovsnet init` and `ovsnet reset`: turn a Docker host into an overlay member and back.

Place: docs/architecture.md, "Packages and what they own": the services layer.
"""

from __future__ import annotations

import os
from contextlib import ExitStack
from dataclasses import dataclass, replace

from ovsnet import arp, firewall, nftables
from ovsnet.addressing import HostAddressing
from ovsnet.errors import InvalidInput, NotReady
from ovsnet.faults import checkpoint
from ovsnet.ipsec import plan as ipsec_plan
from ovsnet.model import (
    DEFAULT_BRIDGE,
    DEFAULT_DOCKER_BRIDGE,
    DOCKER_BRIDGE_KEY,
    BridgeSpec,
    Changes,
)
from ovsnet.netlink import Netlink
from ovsnet.ovsdb.client import OvsDb
from ovsnet.plaintext_guard import Guard
from ovsnet.plan import (
    HostPlan,
    docker_mismatches,
    docker_options_hint,
    plan_init,
    plan_reset,
    refuse_foreign_bridge,
)
from ovsnet.report import ChangeReport
from ovsnet.services.flows import sync_flows
from ovsnet.services.guard import reconcile_steps
from ovsnet.services.observed import observe_host, observe_snapshot
from ovsnet.tunnels import overlay_mtu

DEFAULT_UNDERLAY_MTU = 1500
DATAPATHS = ("system", "netdev")


@dataclass(frozen=True)
class InitRequest:
    addressing: HostAddressing
    bridge: str = DEFAULT_BRIDGE
    docker_bridge: str = DEFAULT_DOCKER_BRIDGE
    datapath: str = "system"
    underlay_mtu: int | None = None
    tunnel_type: str = "gre"
    ipsec: bool = False
    docker: DockerCheck | None = None


@dataclass(frozen=True)
class DockerCheck:
    """Ask the Docker daemon whether it runs with the options this host needs."""

    docker_host: str | None = None
    tls_dir: str | None = None
    required: bool = False  # the user named the daemon: failing to reach it is an error


def init_host(db: OvsDb, net: Netlink, request: InitRequest, dry_run: bool = False) -> ChangeReport:
    if request.datapath not in DATAPATHS:
        raise InvalidInput(f"unknown datapath {request.datapath!r}", "use system or netdev")
    ours = {request.bridge, request.docker_bridge}
    underlay_mtu = request.underlay_mtu or net.default_route_mtu(ours) or DEFAULT_UNDERLAY_MTU
    mtu = overlay_mtu(underlay_mtu, request.tunnel_type, request.ipsec)
    spec = BridgeSpec(
        name=request.bridge,
        datapath_type=request.datapath,
        mtu=mtu,
        docker_bridge=request.docker_bridge,
        subnet=request.addressing.subnet,
        supernet=request.addressing.supernet,
    )
    observed = db.bridge(request.bridge)
    refuse_foreign_bridge(request.bridge, observed)
    _refuse_underlay_overlap(net, request.addressing, ours)
    if request.docker is not None:
        _check_docker_options(request.docker, request.addressing, mtu)
    plan = plan_init(
        spec,
        request.addressing,
        observed,
        net.link(request.docker_bridge),
        net.link(request.bridge),
        db.port_owner(request.docker_bridge),
    )
    firewall_steps = firewall.plan_accept(request.docker_bridge)
    # After a reboot OVSDB still has the IPsec tunnels but the kernel lost the guard.
    guard, guard_steps = reconcile_steps(observe_host(db))
    steps = plan.steps + firewall_steps + guard_steps
    if not dry_run and (plan or firewall_steps or guard_steps):
        _apply_init(db, net, plan, spec, firewall_steps, guard if guard_steps else None)
    # Last, once the ports have their ofport numbers; also puts the flows back after an
    # ovs-vswitchd restart, which forgets them (OVSDB does not hold flows).
    steps += sync_flows(db, request.bridge, dry_run)
    return ChangeReport(
        command="init",
        steps=steps,
        dry_run=dry_run,
        details={
            "bridge": spec.name,
            "subnet": str(request.addressing.subnet),
            "gateway": str(request.addressing.gateway),
            "supernet": str(request.addressing.supernet),
            "mtu": mtu,
            "docker_options": request.addressing.docker_options(mtu),
        },
    )


def _check_docker_options(check: DockerCheck, addressing: HostAddressing, mtu: int) -> None:
    from ovsnet import docker

    target = docker.resolve_target(check.docker_host, check.tls_dir)
    if not check.required and target.url.startswith("unix://"):
        socket_path = target.url[len("unix://") :]
        if not os.path.exists(socket_path):
            return  # no local Docker API to ask (e.g. inside a container without the socket)
    try:
        with docker.DockerClient(target) as client:
            settings = client.bridge_settings()
    except NotReady:
        if check.required:
            raise
        return
    wrong = docker_mismatches(settings, addressing, mtu)
    if wrong:
        raise NotReady(
            "Docker's bridge network does not match this host: " + "; ".join(wrong),
            docker_options_hint(addressing, mtu),
        )


def _refuse_underlay_overlap(net: Netlink, addressing: HostAddressing, ours: set[str]) -> None:
    for network in net.underlay_networks(exclude=ours):
        if network.overlaps(addressing.supernet) and network.prefixlen > 0:
            raise InvalidInput(
                f"supernet {addressing.supernet} overlaps {network}, which this host already "
                "uses outside the overlay",
                "choose a --supernet that does not overlap the underlay",
            )


def _apply_init(
    db: OvsDb,
    net: Netlink,
    plan: HostPlan,
    spec: BridgeSpec,
    firewall_steps: list[str],
    guard: Guard | None,
) -> None:
    """Apply the plan; if any step fails, undo the earlier ones so the host is as it was.

    Each step leaves a state the next `init` recognises and finishes, so a process killed
    anywhere in here (no undo runs then) is healed by running init again: OVSDB first (the
    bridge records the subnet, which lets a later run put a lost gateway back), then links,
    then the address (added to the bridge before it leaves docker0), the firewall, the guard.
    """
    created_bridge = plan.changes.bridge is not None and db.bridge(spec.name) is None
    with ExitStack() as undo:
        db.apply(plan.changes)
        if created_bridge:
            undo.callback(db.apply, Changes(delete_bridge=spec.name))
        elif plan.changes.system_ports:
            undo.callback(db.apply, Changes(remove_ports=[spec.docker_bridge]))
        checkpoint("init:after-bridge")
        for name in plan.bring_up:
            net.set_up(name)
        checkpoint("init:after-links-up")
        for link, address in plan.add_addresses:
            net.add_address(link, address)
            undo.callback(net.remove_address, link, address)
            arp.announce(spec.name, address.ip)
        for link, stale in plan.drop_addresses:
            net.remove_address(link, stale)
            if link == spec.docker_bridge:
                undo.callback(net.add_address, link, stale)
                arp.announce(spec.name, stale.ip)
        if plan.move_address:
            address, source, target = plan.move_address
            net.move_address(
                address, source, target, midway=lambda: checkpoint("init:after-address-added")
            )
            undo.callback(net.move_address, address, target, source)
            # Containers still map the gateway to docker0's MAC: announce the new owner.
            arp.announce(spec.name, address.ip)
        checkpoint("init:after-address-moved")
        if firewall_steps:
            firewall.ensure_accept(spec.docker_bridge)
        checkpoint("init:after-firewall")
        if guard is not None:
            nftables.write_guard(guard)
        undo.pop_all()


def reset_host(
    db: OvsDb, net: Netlink, bridge: str, docker_bridge: str | None, dry_run: bool = False
) -> ChangeReport:
    observed = db.bridge(bridge)
    if observed is not None and docker_bridge is None:
        docker_bridge = observed.external_ids.get(DOCKER_BRIDGE_KEY, DEFAULT_DOCKER_BRIDGE)
    docker_bridge = docker_bridge or DEFAULT_DOCKER_BRIDGE
    plan = plan_reset(bridge, observed, docker_bridge, net.link(docker_bridge), net.link(bridge))
    firewall_steps = firewall.plan_remove(docker_bridge)
    # The bridge's tunnels go with it; tunnels on other bridges keep their guard.
    snapshot = db.snapshot()
    others = replace(snapshot, bridges={k: v for k, v in snapshot.bridges.items() if k != bridge})
    remaining = observe_snapshot(others)
    plan.changes.other_config = ipsec_plan.settings_after_reset(remaining)
    settings = sorted(plan.changes.other_config)
    if settings:
        plan.steps.append("remove ovsnet's IPsec settings: " + ", ".join(settings))
    # Once those are gone, no tunnel left may need the guard: ask with the settings removed.
    after = replace(
        remaining,
        other_config={k: v for k, v in remaining.other_config.items() if k not in settings},
    )
    guard, guard_steps = reconcile_steps(after)
    steps = plan.steps + firewall_steps + guard_steps
    if not dry_run:
        _apply_reset(db, net, plan, docker_bridge, firewall_steps, guard if guard_steps else None)
    return ChangeReport(command="reset", steps=steps, dry_run=dry_run, details={"bridge": bridge})


def _apply_reset(
    db: OvsDb,
    net: Netlink,
    plan: HostPlan,
    docker_bridge: str,
    firewall_steps: list[str],
    guard: Guard | None,
) -> None:
    """Address back to docker0 (added there before it leaves the bridge), firewall rule out,
    bridge deleted, guard narrowed last: the bridge (which records the docker bridge's name)
    goes only once nothing else needs it, and IPsec tunnels are never left unguarded. A run
    killed anywhere here is finished by the next reset."""
    for link, stale in plan.drop_addresses:
        net.remove_address(link, stale)
    with ExitStack() as undo:
        if plan.move_address:
            address, source, target = plan.move_address
            net.move_address(
                address, source, target, midway=lambda: checkpoint("reset:after-address-added")
            )
            undo.callback(net.move_address, address, target, source)
            arp.announce(docker_bridge, address.ip)
        checkpoint("reset:after-address-moved")
        if firewall_steps:
            firewall.remove_accept(docker_bridge)
            undo.callback(firewall.ensure_accept, docker_bridge)
        checkpoint("reset:after-firewall")
        db.apply(plan.changes)
        undo.pop_all()
    checkpoint("reset:after-bridge-deleted")
    if guard is not None:
        nftables.write_guard(guard)


def require_bridge(db: OvsDb, bridge: str):
    observed = db.bridge(bridge)
    if observed is None:
        raise missing_bridge(db, bridge)
    return observed


def missing_bridge(db: OvsDb, bridge: str) -> NotReady:
    return NotReady(
        f"bridge {bridge} does not exist in OVSDB {db.db}",
        "run `ovsnet init` first, or pass the right --bridge / --db",
    )
