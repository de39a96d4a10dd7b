"""The IPsec healer: repairs the IPsec peers that stay not established, on its own.

One look at every peer (`heal_once`) lets the pure `ovsnet.ipsec_healing` decide which are due
(after a grace period, with backoff), repairs them through `ipsec_owned_peers` (only ovsnet's
own tunnels, only behind the plaintext guard: while a peer is re-negotiated its tunnel carries
nothing instead of leaving in clear) and keeps the history in `ovsnet.repair_history` for
`ovsnet status`. `Healer` runs it inside a long-running process (the companion),
`BackgroundHealer` on a thread of its own (the cluster agent), `watch_forever` as
`ovsnet ipsec heal --watch`.

Place: docs/architecture.md, "Packages and what they own": the services layer.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field

from ovsnet import strongswan
from ovsnet.errors import NotReady, OvsnetError
from ovsnet.ipsec_healing import HealPolicy, plan_repairs, record_repair, wake_after
from ovsnet.ovsdb.client import OvsDb
from ovsnet.repair_history import repair_history, save_history
from ovsnet.services.ipsec_owned_peers import (
    guard_problem,
    initiate_and_log,
    owned_peers,
    read_monitor,
    repair_and_log,
    repairable,
)

log = logging.getLogger("ovsnet.ipsec.heal")

GRACE_ENV = "OVSNET_IPSEC_GRACE"  # seconds; the companion and the agent read it


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
class HealResult:
    """One look at every peer: what was repaired, what was held back, when to look again."""

    repaired: list[dict] = field(default_factory=list)
    initiated: list[str] = field(default_factory=list)  # idle peers only initiated
    held_back: str | None = None
    next_in: float = 0.0
    peers: dict[str, dict] = field(default_factory=dict)

    def as_json(self) -> dict:
        return dict(self.__dict__)

    def render(self, console) -> None:
        for repair in self.repaired:
            console.print(f"repaired {repair['peer']} ({repair['port']}): {repair['reason']}")
        for peer in self.initiated:
            console.print(f"initiated {peer}: no IKE SA was under way")
        if self.held_back:
            console.print(f"no repair: {self.held_back}")
        if not self.repaired and not self.initiated and not self.held_back:
            console.print(f"ipsec heal: nothing to repair ({len(self.peers)} IPsec peer(s))")


def heal_once(db: OvsDb, options: HealOptions, now: float | None = None) -> HealResult:
    """Look at every ovsnet IPsec peer once and repair those due (see ovsnet.ipsec_healing)."""
    now = time.time() if now is None else now
    snapshot = db.snapshot()
    peers = repairable(owned_peers(snapshot, read_monitor(options.run_dir)))
    records = repair_history(options.state_file)
    observed = [p.observation() for p in peers]
    if any(not p.healthy(options.policy) for p in observed):
        # Only then: one `ipsec statusall` tells which of them are stuck under a shunt.
        shunted = strongswan.shunt_ike_peers()
        observed = [p.observation(misrouted=str(p.peer) in shunted) for p in peers]
    plan = plan_repairs(now, observed, records, options.policy)
    tick = HealResult()
    if plan.repairs or plan.initiations:
        tick.held_back = guard_problem(snapshot)
        if tick.held_back:
            log.warning(
                "IPsec peer(s) %s not established, not repaired: %s",
                ", ".join(
                    sorted({r.peer for r in plan.repairs} | {i.peer for i in plan.initiations})
                ),
                tick.held_back,
            )
            plan = plan_repairs(now, observed, records, options.policy, may_repair=False)
    by_peer = {str(p.peer): p for p in peers}
    kept = dict(plan.records)
    for initiation in plan.initiations:
        initiate_and_log(by_peer[initiation.peer])
        tick.initiated.append(initiation.peer)
    for repair in plan.repairs:
        error = repair_and_log(by_peer[repair.peer], repair.reason)
        if error:
            failed = f"{repair.reason}; failed: {error}"
            kept[repair.peer] = record_repair(kept[repair.peer], failed)
        tick.repaired.append({**repair.__dict__, "error": error})
    if kept or records:
        save_history(kept, options.state_file)
    tick.peers = {peer: record.as_json() for peer, record in kept.items()}
    tick.next_in = wake_after(now, kept, options.policy)
    if tick.held_back:  # nothing changes until the guard is back: look again in a while
        tick.next_in = max(tick.next_in, options.policy.recheck_down)
    return tick


MIN_LOOK = 1.0  # seconds: the soonest the healer looks again after a look


class Healer:
    """The healer inside a long-running process (companion, agent, `ipsec heal --watch`):
    call `tick(db)` whenever convenient; it acts only when a peer is due."""

    def __init__(self, options: HealOptions | None = None):
        self.options = options or HealOptions(policy=policy_from_env())
        self.due_at = 0.0

    def tick(self, db: OvsDb, now: float | None = None) -> HealResult | None:
        now = time.time() if now is None else now
        if now < self.due_at:
            return None
        try:
            result = heal_once(db, self.options, now)
        except NotReady as exc:  # e.g. ovs-monitor-ipsec (re)starting: look again soon
            # Soon, not after the grace: at a companion's start the first look finds the
            # monitor not up yet, and its idle peers wait for that look to be initiated.
            log.debug("IPsec healer: %s", exc.one_line())
            self.due_at = now + self.options.policy.recheck_down
            return None
        except OvsnetError as exc:  # never stops the process it runs in
            log.warning("IPsec healer: %s", exc.one_line())
            self.due_at = now + self.options.policy.grace
            return None
        # Never sooner than MIN_LOOK: a peer due but held back (no guard) would otherwise be
        # due again at once, and a process that ticks when due would spin.
        self.due_at = now + max(result.next_in, MIN_LOOK)
        return result


def healer_for(run_dir: str | None = None) -> Healer:
    """The healer of a long-running ovsnet process (policy from OVSNET_IPSEC_GRACE)."""
    return Healer(HealOptions(policy=policy_from_env(), run_dir=run_dir))


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
