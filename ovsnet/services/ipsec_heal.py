"""Repairing IPsec peers that stay not established: the healer's tick and `ovsnet ipsec repair`.

Reads OVSDB (which tunnels are ovsnet's) and ovs-monitor-ipsec's view (which of them are
established), lets the pure `ovsnet.ipsec_healing` decide, repairs through the strongSwan
facade, and keeps the history in `ovsnet.repair_history` for `ovsnet status`. Only ovsnet's
own tunnels (ports tagged with the peer key) are ever touched, and only behind the plaintext
guard: while a peer is re-negotiated its tunnel carries nothing instead of leaving in clear.

Place: docs/architecture.md, "Packages and what they own": the services layer.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from ipaddress import IPv4Address

from ovsnet import strongswan
from ovsnet.errors import InvalidInput, NotReady, OvsnetError
from ovsnet.ipsec import observed as ipsec_observed
from ovsnet.ipsec import tunnels_show
from ovsnet.ipsec_healing import (
    HealPolicy,
    PeerObservation,
    RepairRecord,
    plan_repairs,
    record_repair,
    wake_after,
)
from ovsnet.model import Snapshot
from ovsnet.ovsdb.client import OvsDb
from ovsnet.plaintext_guard import Guard, desired_guard, guard_for_tunnels
from ovsnet.repair_history import repair_history, save_history
from ovsnet.report import ChangeReport
from ovsnet.services.observed import observe_snapshot

log = logging.getLogger("ovsnet.ipsec.heal")

GRACE_ENV = "OVSNET_IPSEC_GRACE"  # seconds; the companion and the agent read it


@dataclass(frozen=True)
class OwnedPeer:
    """One IPsec tunnel ovsnet created, and ovs-monitor-ipsec's view of it (None: not seen)."""

    peer: IPv4Address
    tunnel: ipsec_observed.ObservedTunnel
    monitor: tunnels_show.MonitorTunnel | None

    @property
    def port(self) -> str:
        return self.tunnel.port

    @property
    def seen(self) -> tunnels_show.MonitorTunnel:
        """ovs-monitor-ipsec's view, for the peers `repairable` chose (they all have one)."""
        assert self.monitor is not None, f"{self.port}: not seen by ovs-monitor-ipsec"
        return self.monitor

    def observation(self) -> PeerObservation:
        seen = self.seen
        return PeerObservation(
            peer=str(self.peer),
            port=self.port,
            state=seen.summary(),
            ike_established=seen.ike_established,
            child_installed=seen.child_installed,
        )

    def connections(self) -> strongswan.PeerConnections:
        """The strongSwan connections and kernel policy filters of this peer only."""
        seen = self.seen
        tunnel_type = seen.config.get("Tunnel Type", self.tunnel.type)
        guard = guard_for_tunnels([self.tunnel])
        return strongswan.PeerConnections(
            peer=self.peer,
            connections=strongswan.connection_names(self.port, seen.version, tunnel_type),
            selectors=tuple(tuple(s) for s in strongswan.policy_selectors(guard)),
        )


def owned_peers(
    snapshot: Snapshot, monitor: list[tunnels_show.MonitorTunnel] | None
) -> list[OwnedPeer]:
    """ovsnet's IPsec tunnels (tagged with the peer key) of every bridge."""
    seen = {tunnel.name: tunnel for tunnel in monitor or ()}
    found = []
    for bridge in snapshot.bridges.values():
        for port in bridge.tunnels.values():
            tunnel = ipsec_observed.ObservedTunnel(port.name, port.type, dict(port.options))
            if tunnel.method is None:
                continue
            try:
                peer = IPv4Address(port.peer)
            except ValueError:
                continue
            found.append(OwnedPeer(peer, tunnel, seen.get(port.name)))
    return sorted(found, key=lambda p: p.peer)


def repairable(peers: list[OwnedPeer]) -> list[OwnedPeer]:
    """Peers strongSwan has connections for: a tunnel the monitor does not see, or judged
    invalid, is a configuration problem (status says which) that no re-negotiation fixes."""
    return [p for p in peers if p.monitor is not None and p.monitor.state == "CONFIGURED"]


def guard_problem(snapshot: Snapshot) -> str | None:
    """Why a repair must not run now (the peers' plaintext would not be dropped), or None."""
    from ovsnet import nftables

    wanted = desired_guard(observe_snapshot(snapshot))
    if not wanted:
        return "no IPsec tunnel here drops plaintext, so a repair could expose traffic"
    if nftables.read_guard().needs(wanted):
        return "the plaintext guard is not in place: re-negotiating now could send plaintext"
    return None


def _monitor(run_dir: str | None) -> list[tunnels_show.MonitorTunnel]:
    from ovsnet.ipsec_monitor import monitor_tunnels

    return monitor_tunnels(run_dir)


def _repair(peer: OwnedPeer, reason: str) -> str | None:
    """Repair one peer and log one line; the error, if it failed."""
    try:
        strongswan.repair_peer(peer.connections())
    except OvsnetError as exc:
        log.error("IPsec repair of peer %s (%s) failed: %s", peer.peer, peer.port, exc.one_line())
        return exc.one_line()
    log.info("IPsec repair of peer %s (%s): %s", peer.peer, peer.port, reason)
    return None


# --- the healer ---------------------------------------------------------------------------------


@dataclass
class HealOptions:
    policy: HealPolicy = field(default_factory=HealPolicy)
    run_dir: str | None = None  # ovs-monitor-ipsec's run directory (OVS_RUNDIR)
    state_file: str | None = None  # the repair history (default /run/ovsnet/...)


def policy_from_env(**overrides) -> HealPolicy:
    """The default policy, with OVSNET_IPSEC_GRACE (seconds) if set and valid."""
    grace = os.environ.get(GRACE_ENV)
    try:
        if grace and float(grace) >= 0:
            overrides.setdefault("grace", float(grace))
    except ValueError:
        log.warning("ignoring %s=%r (not a number of seconds)", GRACE_ENV, grace)
    return HealPolicy(**overrides)


@dataclass
class HealTick:
    """One look at every peer: what was repaired, what was held back, when to look again."""

    repaired: list[dict] = field(default_factory=list)
    held_back: str | None = None
    next_in: float = 0.0
    peers: dict[str, dict] = field(default_factory=dict)

    def as_json(self) -> dict:
        return dict(self.__dict__)

    def render(self, console) -> None:
        for repair in self.repaired:
            console.print(f"repaired {repair['peer']} ({repair['port']}): {repair['reason']}")
        if self.held_back:
            console.print(f"no repair: {self.held_back}")
        if not self.repaired and not self.held_back:
            console.print(f"ipsec heal: nothing to repair ({len(self.peers)} IPsec peer(s))")


def heal_once(db: OvsDb, options: HealOptions, now: float | None = None) -> HealTick:
    """Look at every ovsnet IPsec peer once and repair those due (see ovsnet.ipsec_healing)."""
    now = time.time() if now is None else now
    snapshot = db.snapshot()
    peers = repairable(owned_peers(snapshot, _monitor(options.run_dir)))
    records = repair_history(options.state_file)
    observed = [p.observation() for p in peers]
    plan = plan_repairs(now, observed, records, options.policy)
    tick = HealTick()
    if plan.repairs:
        tick.held_back = guard_problem(snapshot)
        if tick.held_back:
            log.warning(
                "IPsec peer(s) %s not established, not repaired: %s",
                ", ".join(r.peer for r in plan.repairs),
                tick.held_back,
            )
            plan = plan_repairs(now, observed, records, options.policy, may_repair=False)
    by_peer = {str(p.peer): p for p in peers}
    kept = dict(plan.records)
    for repair in plan.repairs:
        error = _repair(by_peer[repair.peer], repair.reason)
        if error:
            failed = f"{repair.reason}; failed: {error}"
            kept[repair.peer] = record_repair(kept[repair.peer], failed)
        tick.repaired.append({**repair.__dict__, "error": error})
    if kept or records:
        save_history(kept, options.state_file)
    tick.peers = {peer: record.as_json() for peer, record in kept.items()}
    tick.next_in = wake_after(now, kept, options.policy)
    return tick


class Healer:
    """The healer inside a long-running process (companion, agent, `ipsec heal --watch`):
    call `tick(db)` whenever convenient; it acts only when a peer is due."""

    def __init__(self, options: HealOptions | None = None):
        self.options = options or HealOptions(policy=policy_from_env())
        self.due_at = 0.0

    def tick(self, db: OvsDb, now: float | None = None) -> HealTick | None:
        now = time.time() if now is None else now
        if now < self.due_at:
            return None
        try:
            result = heal_once(db, self.options, now)
        except NotReady as exc:  # e.g. ovs-monitor-ipsec restarting: look again later
            log.debug("IPsec healer: %s", exc.one_line())
            self.due_at = now + self.options.policy.grace
            return None
        except OvsnetError as exc:  # never stops the process it runs in
            log.warning("IPsec healer: %s", exc.one_line())
            self.due_at = now + self.options.policy.grace
            return None
        self.due_at = now + result.next_in
        return result


def healer_for(run_dir: str | None = None) -> Healer:
    """The healer of a long-running ovsnet process (policy from OVSNET_IPSEC_GRACE)."""
    return Healer(HealOptions(policy=policy_from_env(), run_dir=run_dir))


# --- `ovsnet ipsec repair` ----------------------------------------------------------------------


@dataclass
class RepairRequest:
    peers: tuple[str, ...] = ()  # none: every ovsnet IPsec peer that is not established
    restart_daemon: bool = False  # the old whole-daemon repair: every peer re-negotiates
    run_dir: str | None = None
    state_file: str | None = None
    dry_run: bool = False


def _selected(peers: list[OwnedPeer], wanted: tuple[str, ...]) -> list[OwnedPeer]:
    by_address = {str(p.peer): p for p in peers}
    chosen = []
    for text in wanted:
        try:
            address = str(IPv4Address(text))
        except ValueError:
            raise InvalidInput(f"{text!r} is not an IPv4 address", "name peers by IP") from None
        if address not in by_address:
            raise InvalidInput(
                f"{address} is not an IPsec peer of ovsnet here", "see `ovsnet peer list`"
            )
        chosen.append(by_address[address])
    return chosen


def repair_peers(db: OvsDb, request: RepairRequest) -> ChangeReport:
    """`ovsnet ipsec repair [PEER...] [--restart-daemon]`: re-negotiate the named peers (or every
    one not established) from a clean kernel state; only ovsnet's peers, only behind the guard."""
    snapshot = db.snapshot()
    if not owned_peers(snapshot, None):
        raise NotReady("no IPsec tunnel of ovsnet here to repair", "add peers with --ipsec first")
    problem = guard_problem(snapshot)
    if problem:
        raise NotReady(problem, "run `ovsnet init` first (it restores the guard)")
    try:
        monitor = _monitor(request.run_dir)
    except NotReady:
        if not request.restart_daemon:
            raise
        monitor = None  # the whole-daemon repair needs no per-tunnel view
    peers = owned_peers(snapshot, monitor)
    if request.restart_daemon:
        return _restart_daemon(_selected(peers, request.peers) or peers, request.dry_run)
    if request.peers:
        chosen = _selected(peers, request.peers)
        unknown = [str(p.peer) for p in chosen if p not in repairable(chosen)]
        if unknown:
            raise NotReady(
                f"ovs-monitor-ipsec has no valid connection for {', '.join(unknown)}",
                "see `ovsnet status` for why",
            )
    else:
        chosen = [p for p in repairable(peers) if p.seen.summary() != "established"]
    # every chosen peer is repairable (checked above), so ovs-monitor-ipsec sees it
    steps = [f"re-negotiate IPsec with {p.peer} ({p.port}: {p.seen.summary()})" for p in chosen]
    errors = []
    if not request.dry_run and chosen:
        records = repair_history(request.state_file)
        now = time.time()
        for peer in chosen:
            reason = f"manual (ovsnet ipsec repair): {peer.seen.summary()}"
            error = _repair(peer, reason)
            if error:
                errors.append(f"{peer.peer}: {error}")
            base = records.get(str(peer.peer)) or RepairRecord(port=peer.port)
            records[str(peer.peer)] = record_repair(base, reason, now)
        save_history(records, request.state_file)
    details = {"peers": [str(p.peer) for p in chosen]}
    if errors:
        from ovsnet.errors import OperationFailed

        raise OperationFailed("IPsec repair failed for " + "; ".join(errors))
    return ChangeReport("ipsec repair", steps, request.dry_run, details)


def _restart_daemon(peers: list[OwnedPeer], dry_run: bool) -> ChangeReport:
    guard = Guard()
    for peer in peers:
        guard |= guard_for_tunnels([peer.tunnel])
    steps = [
        "stop strongSwan (ipsec stop): every IPsec peer of this host re-negotiates",
        f"delete the kernel's SAs and tunnel policies of {len(guard.peers)} ovsnet IPsec peer(s)",
        "start strongSwan (ipsec start): it reloads ovs-monitor-ipsec's connections",
    ]
    if not dry_run:
        strongswan.restart_clean(guard)
    details = {"peers": [str(peer) for peer in sorted(guard.peers)], "restart_daemon": True}
    return ChangeReport("ipsec repair", steps, dry_run, details)


WATCH_RECHECK = 30.0  # seconds between looks when no peer is due sooner


def watch_forever(db_url: str, options: HealOptions) -> int:
    """`ovsnet ipsec heal --watch`: the healer for hosts without the companion (a systemd unit).
    Logs one line per repair on stderr (the journal); exits 0 on SIGTERM."""
    import signal
    import sys
    import threading

    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="ovsnet ipsec heal: %(message)s"
    )
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    log.info(
        "watching IPsec peers (grace %.0f s, backoff up to %.0f s)",
        options.policy.grace,
        options.policy.max_backoff,
    )
    watch(db_url, Healer(options), stop)
    return 0


def watch(db_url: str, healer: Healer, stop) -> None:
    """Tick the healer until `stop` (a threading.Event) is set; a fresh OVSDB connection each
    time, so an OVSDB restart costs one tick."""
    while not stop.is_set():
        try:
            with OvsDb(db_url) as db:
                healer.tick(db)
        except OvsnetError as exc:  # OVSDB restarting...: try again later
            log.warning("IPsec healer: %s", exc.one_line())
        stop.wait(min(WATCH_RECHECK, max(1.0, healer.due_at - time.time())))


class BackgroundHealer:
    """The healer on a thread of its own (the cluster agent's process)."""

    def __init__(self, db_url: str, run_dir: str | None = None):
        import threading

        self.stop_event = threading.Event()
        self.thread = threading.Thread(
            target=watch,
            args=(db_url, healer_for(run_dir), self.stop_event),
            name="ovsnet-ipsec-healer",
            daemon=True,
        )
        self.thread.start()

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(timeout=WATCH_RECHECK)


# --- what `ovsnet status` shows ---------------------------------------------------------------


def add_repair_history(peers: list[dict], state_file: str | None = None) -> None:
    """Put each IPsec peer's repairs into its status row (`ipsec_repairs`): count, last repair
    (UTC, ISO 8601) and why. Peers never repaired get nothing."""
    history = repair_history(state_file)
    for peer in peers:
        record = history.get(peer.get("remote_ip", ""))
        if peer.get("ipsec") and record is not None and record.repairs:
            peer["ipsec_repairs"] = {
                "count": record.repairs,
                "last": _utc(record.last_repair),
                "why": record.last_reason,
            }


def repair_lines(peers: list[dict]) -> list[str]:
    """One line per repaired peer, for the human status."""
    return [
        f"IPsec repairs of {p['remote_ip']}: {r['count']}, last {r['last']} ({r['why']})"
        for p in peers
        if (r := p.get("ipsec_repairs"))
    ]


def _utc(stamp: float | None) -> str | None:
    from datetime import UTC, datetime

    if stamp is None:
        return None
    return datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
