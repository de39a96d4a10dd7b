"""`ovsnet peer add/remove/sync/list`: one tunnel port per peer, one transaction per call.

Place: docs/architecture.md, "Packages and what they own": the services layer.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

from ovsnet import antispoof, ipsec, nftables, openflow, strongswan
from ovsnet.errors import InvalidInput, OvsnetError
from ovsnet.model import (
    SUBNET_KEY,
    SUPERNET_KEY,
    Changes,
    ObservedBridge,
    Snapshot,
    TunnelSpec,
)
from ovsnet.netlink import Netlink
from ovsnet.ovsdb.client import OvsDb
from ovsnet.plaintext_guard import Guard, guard_for_tunnels
from ovsnet.plan import PeerPlan, plan_peers
from ovsnet.report import ChangeReport
from ovsnet.services.flows import start_flow_read, sync_flows
from ovsnet.services.guard import GuardChange, guarded, plan_guard, reconcile_steps
from ovsnet.services.host import missing_bridge, require_bridge
from ovsnet.services.observed import observe_snapshot
from ovsnet.services.peer_rows import sorted_peers
from ovsnet.tunnels import TUNNEL_TYPES, parse_peer, port_name


@dataclass(frozen=True)
class IpsecChoice:
    """`peer add --ipsec` as the user asked for it (the PSK stays in its file until needed)."""

    psk_file: Path | None = None
    remote_name: str | None = None
    remote_cert: str | None = None
    require_encryption: bool = True
    # Certificate auth for several peers at once (the cluster agent): peer IP -> the CN of
    # that peer's certificate. Every peer of the call must have one.
    remote_names: tuple[tuple[str, str], ...] = ()

    @property
    def method(self) -> str:
        certs = self.remote_name or self.remote_cert or self.remote_names
        return ipsec.METHOD_CERT if certs else ipsec.METHOD_PSK


@dataclass(frozen=True)
class PeerRequest:
    bridge: str
    peers: tuple[str, ...]
    tunnel_type: str = "gre"
    extra_options: tuple[tuple[str, str], ...] = ()
    ipsec: IpsecChoice | None = None
    # Turning an IPsec tunnel into a plaintext one (or certificates into a PSK) needs this.
    allow_downgrade: bool = False
    # Each peer's container subnet where known (its tunnel is then pinned to it), else None.
    subnets: tuple[IPv4Network | None, ...] = ()


def tunnel_specs(request: PeerRequest, bridge: ObservedBridge, own: set[IPv4Address]):
    if request.tunnel_type not in TUNNEL_TYPES:
        raise InvalidInput(
            f"unknown tunnel type {request.tunnel_type!r}", f"use one of {', '.join(TUNNEL_TYPES)}"
        )
    supernet = bridge.external_ids.get(SUPERNET_KEY)
    supernet_net = IPv4Network(supernet) if supernet else None
    recorded = bridge.external_ids.get(SUBNET_KEY)
    own_subnet = IPv4Network(recorded) if recorded else None
    subnets = request.subnets or (None,) * len(request.peers)
    specs: dict[IPv4Address, TunnelSpec] = {}
    for text, subnet in zip(request.peers, subnets, strict=True):
        ip = parse_peer(text, own, supernet_net)
        if subnet is not None:
            antispoof.check_peer_subnet(subnet, own_subnet, supernet_net)
        specs[ip] = TunnelSpec(
            remote_ip=ip,
            port=port_name(ip, request.tunnel_type),
            type=request.tunnel_type,
            extra_options=request.extra_options,
            subnet=subnet,
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
    snapshot = db.snapshot(state=False)  # planning needs no vswitchd counters
    change = change_peers(db, net, request, snapshot, dry_run, exact, read_flows=True)
    plan, bridge, report = change.plan, change.bridge, change.report
    try:
        # after a change, only the ofports are read again (the rest: this read and the change)
        changed = (bridge, plan.changes) if plan and not dry_run else None
        report.steps += sync_flows(db, request.bridge, dry_run, unchanged=None if plan else bridge,
                                   changed=changed, reading=change.flow_read)  # fmt: skip
    finally:
        if change.flow_read is not None:
            change.flow_read.close()
    return report


@dataclass(frozen=True)
class PeerChange:
    """What `change_peers` did: its report so far (the flows not yet synced), the bridge it
    planned from and its plan (the OVSDB change, applied unless a dry run)."""

    report: ChangeReport
    bridge: ObservedBridge
    plan: PeerPlan
    # ovs-ofctl's read of the flows, started early when asked and nothing changed (or None);
    # the caller takes it (sync_flows) and closes it
    flow_read: openflow.FlowRead | None = None


def change_peers(
    db: OvsDb,
    net: Netlink,
    request: PeerRequest,
    snapshot: Snapshot,
    dry_run: bool = False,
    exact: bool = False,
    read_flows: bool = False,
) -> PeerChange:
    """`add_peers` without its flow sync, planned from `snapshot`: OVSDB as just read, or as a
    caller that keeps it knows it (the cluster agent's cache, ovsnet.cluster.applied). Every
    check, the guard and the IPsec clean-up are the same whichever it is."""
    bridge = require_bridge_in(snapshot, db, request.bridge)
    specs = tunnel_specs(request, bridge, own=set())
    host = observe_snapshot(snapshot)
    other_config: dict[str, str | None] = {}
    if request.ipsec is not None:
        specs, other_config = _protect(specs, request, bridge, host)
    plan = plan_peers(bridge, specs, exact=exact)
    ipsec.check_no_downgrade(transitions(plan, bridge), request.allow_downgrade)
    if request.ipsec is None:
        ipsec.check_plaintext_allowed(host)
    if exact:
        removed = [bridge.tunnels[ip].name for ip in plan.removed]
        other_config |= ipsec.other_config_after_removal(host, removed)
    plan.changes.other_config = other_config
    db.refuse_secrets_in_clear(plan.changes)  # before the guard or anything else changes
    # Only a tunnel about to be created needs the kernel's view of this host's addresses: a
    # no-op sync then never loads pyroute2 (~0.17 s of CPU only to import it).
    if plan.changes.add_tunnels:
        _refuse_own_addresses(plan.changes.add_tunnels, net.local_addresses())
    guard_change = plan_guard(host, plan.changes)
    if plan and not dry_run:
        with guarded(guard_change, db):
            db.apply(plan.changes, undo=_undo(plan, bridge, host))
    # NOTE(perf): with nothing to change in OVSDB, ovs-ofctl reads the flows now, while the
    # report is built and nft reads the guard (~0.02 s of a no-op sync's wall time).
    flow_read = start_flow_read(db, bridge) if read_flows and not plan else None
    try:
        report = _report("peer sync" if exact else "peer add", plan, dry_run)
        report.steps += _forget_removed(plan, bridge, host, guard_change, dry_run)
        if other_config:
            report.steps.append("host IPsec settings: " + ", ".join(sorted(other_config)))
        if guard_change:
            report.steps += guard_change.steps
        if not plan:
            report.steps += _finish_guard(host, dry_run, narrows=exact)
    except BaseException:
        if flow_read is not None:
            flow_read.close()
        raise
    return PeerChange(report, bridge, plan, flow_read)


def _forget_removed(
    plan: PeerPlan,
    bridge: ObservedBridge,
    host: ipsec.ObservedHost,
    guard_change: GuardChange | None,
    dry_run: bool,
) -> list[str]:
    """Clear what the kernel still holds for IPsec peers whose last tunnel this command removed
    (strongswan.forget_peers says why). Best effort: the removal itself has succeeded, so a
    failure is reported as a step, not as the command's failure."""
    removed = {bridge.tunnels[ip].name for ip in plan.removed}
    gone = guard_for_tunnels(t for t in host.tunnels if t.port in removed)
    if guard_change is not None:  # a peer still reached by another tunnel keeps its state
        kept = guard_change.after
        gone = Guard(gone.gre - kept.gre, gone.udp - kept.udp)
    if not gone:
        return []
    step = f"clear the kernel's IPsec state for {', '.join(map(str, sorted(gone.peers)))}"
    if dry_run:
        return [step]
    try:
        strongswan.forget_peers(gone)
    except OvsnetError as exc:
        return [f"could not {step}: {exc.one_line()}"]
    return [step]


def _finish_guard(host: ipsec.ObservedHost, dry_run: bool, narrows: bool) -> list[str]:
    """With nothing left to change in OVSDB, make the guard what the tunnels need: a run killed
    after its OVSDB change but before narrowing the guard left it wider (fail closed), and
    this is the run that finishes it. A plaintext-only `peer add` skips it (no nft process)."""
    if not (narrows or host.drops_plaintext or any(t.method for t in host.tunnels)):
        return []
    wanted, steps = reconcile_steps(host)
    if steps and not dry_run:
        nftables.write_guard(wanted)
    return steps


def transitions(plan: PeerPlan, bridge: ObservedBridge) -> list[ipsec.Transition]:
    """Each existing tunnel the plan rewrites, before and after (a type change included)."""
    existing = bridge.tunnels
    return [
        ipsec.Transition(
            peer,
            ipsec.ObservedTunnel(current.name, current.type, current.options),
            ipsec.ObservedTunnel(spec.port, spec.type, spec.options),
        )
        for spec in [*plan.changes.add_tunnels, *plan.changes.update_tunnels]
        if (current := existing.get(peer := str(spec.remote_ip))) is not None
    ]


def _refuse_own_addresses(specs: list[TunnelSpec], own: set[IPv4Address]) -> None:
    for spec in specs:
        parse_peer(str(spec.remote_ip), own, None)  # raises the usual one-line error


def _undo(plan: PeerPlan, bridge: ObservedBridge, host: ipsec.ObservedHost) -> Changes:
    """What puts OVSDB back if vswitchd refuses a tunnel: drop the new ports, restore the rest."""

    previous = {p.name: p for p in bridge.ports.values()}
    restore = [
        TunnelSpec(
            remote_ip=IPv4Address(port.peer),
            port=port.name,
            type=port.type,
            extra_options=tuple((k, v) for k, v in port.options.items() if k != "remote_ip"),
            subnet=IPv4Network(port.peer_subnet) if port.peer_subnet else None,
        )
        for name in plan.changes.remove_ports + [t.port for t in plan.changes.update_tunnels]
        if (port := previous.get(name)) is not None
    ]
    updated = {t.port for t in plan.changes.update_tunnels}
    return Changes(
        tunnel_bridge=bridge.name,
        remove_ports=[t.port for t in plan.changes.add_tunnels],
        add_tunnels=[t for t in restore if t.port not in updated],
        update_tunnels=[t for t in restore if t.port in updated],
        other_config={k: host.other_config.get(k) for k in plan.changes.other_config},
    )


def require_bridge_in(snapshot: Snapshot, db: OvsDb, name: str) -> ObservedBridge:
    if name not in snapshot.bridges:
        raise missing_bridge(db, name)
    return snapshot.bridges[name]


def _protect(
    specs: list[TunnelSpec], request: PeerRequest, bridge: ObservedBridge, host
) -> tuple[list[TunnelSpec], dict[str, str | None]]:
    """Turn plain tunnel specs into IPsec ones (same options for every peer of the call)."""
    from ovsnet.services.ipsec import read_psk_file

    choice = request.ipsec
    assert choice is not None  # only IPsec requests come here
    names = dict(choice.remote_names)
    if choice.method == ipsec.METHOD_CERT and len(specs) > 1 and not names:
        raise InvalidInput(
            "--remote-name/--remote-cert name one peer's certificate",
            "add certificate-authenticated peers one per call",
        )
    psk_file = choice.psk_file or host.default_psk_file
    psk = read_psk_file(psk_file).psk if psk_file and choice.method == ipsec.METHOD_PSK else None
    wanted = ipsec.TunnelIpsecRequest(
        method=choice.method,
        tunnel_type=request.tunnel_type,
        psk=psk,
        remote_name=choice.remote_name,
        remote_cert=choice.remote_cert,
        require_encryption=choice.require_encryption,
    )
    protected: list[TunnelSpec] = []
    other_config: dict[str, str | None] = {}
    existing = bridge.tunnels
    for spec in specs:
        current = existing.get(str(spec.remote_ip))
        this = wanted
        if names:
            name = names.get(str(spec.remote_ip))
            if name is None:
                raise InvalidInput(f"no certificate name for peer {spec.remote_ip}")
            this = replace(wanted, remote_name=name)
        plan = ipsec.plan_tunnel_ipsec(this, host, port=current.name if current else None)
        protected.append(replace(spec, type=plan.port_type, extra_options=plan.options))
        other_config |= dict(plan.other_config)
    return protected, other_config


def remove_peers(
    db: OvsDb, bridge_name: str, peers: tuple[str, ...], dry_run: bool = False
) -> ChangeReport:
    addresses = [parse_peer(text, set(), None) for text in peers]
    snapshot = db.snapshot(state=False)  # planning needs no vswitchd counters
    bridge = require_bridge_in(snapshot, db, bridge_name)
    plan = plan_peers(bridge, [], remove=addresses)
    guard_change = None
    if plan:
        host = observe_snapshot(snapshot)
        removed = [bridge.tunnels[ip].name for ip in plan.removed]
        plan.changes.other_config = ipsec.other_config_after_removal(host, removed)
        guard_change = plan_guard(host, plan.changes)
    if plan and not dry_run:
        with guarded(guard_change, db):
            db.apply(plan.changes)
    report = _report("peer remove", plan, dry_run)
    report.steps += _forget_removed(plan, bridge, observe_snapshot(snapshot), guard_change, dry_run)
    if guard_change:
        report.steps += guard_change.steps
    if not plan:
        report.steps += _finish_guard(observe_snapshot(snapshot), dry_run, narrows=True)
    # after a change, only the ofports are read again (the rest: this read and the change)
    changed = (bridge, plan.changes) if plan and not dry_run else None
    report.steps += sync_flows(
        db, bridge_name, dry_run, unchanged=None if plan else bridge, changed=changed
    )
    return report


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
