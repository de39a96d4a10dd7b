"""`ovsnet agent`: lease a subnet, publish the host, keep the tunnels equal to the live peers.

One thread does all the work; the etcd client's watch thread only puts batches of changes (or
the error that ended the stream) on a queue. The loop waits on that queue, with a timeout only
for the lease keepalive, so an idle agent sleeps: there is no polling of etcd or OVSDB.

Sessions: connect, make sure the host's claim and record exist (keep the lease if it is alive,
else claim again, preferring the subnet in use), read the host records, watch from the next
revision, reconcile. When etcd goes away, or the watch ends for any reason (an error, a cancel
by etcd, a compaction, a stream that simply stops), the session ends and the agent retries with
backoff: every new session starts with a full read. A periodic full read within the session
(`resync_interval`) is the backstop for a watch that stays open but delivers nothing; it also
has the data plane read the host's state again and apply (what others changed there heals).
At each keepalive the data plane is asked whether its copy of what it applied may be wrong (a
flag and a stat, no I/O to OVSDB), and applies from a new read if so.

The host records as read and watched are `host_view`; what the agent is, `agent_config`; the
data plane it changes, `dataplane` (with its copy of what it applied, `peer_sync`).

While etcd is unreachable the data plane is kept as it is (`on_etcd_loss="keep"`, the default:
an etcd outage must not take the mesh down). Once the lease TTL has passed the agent says that
its peers have probably removed their tunnels to it; with `on_etcd_loss="drop"` it removes its
own tunnels then instead.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from ipaddress import IPv4Network

from ovsnet.cluster import telemetry
from ovsnet.cluster.agent_config import AgentConfig, claim_transaction
from ovsnet.cluster.claims import ClaimView, displaced, plan_claim
from ovsnet.cluster.host_view import HostView
from ovsnet.cluster.plan import backoff, backoff_cap, keepalive_interval
from ovsnet.cluster.reconcile import Dataplane, Reconciler
from ovsnet.cluster.records import HostRecord, claim_value
from ovsnet.errors import InvalidInput, OperationFailed, OvsnetError
from ovsnet.etcd.client import Etcd
from ovsnet.etcd.errors import EtcdDenied
from ovsnet.etcd.items import Change, Snapshot

log = logging.getLogger("ovsnet.agent")
MAX_CLAIM_ATTEMPTS = 64


class _SessionEnded(Exception):
    """The watch stream broke or the lease was lost: start a new session."""


class Agent:
    def __init__(
        self,
        config: AgentConfig,
        connect: Callable[[], Etcd],
        dataplane: Dataplane,
        emit: Callable[[dict], None] | None = None,
        rng: random.Random | None = None,
    ):
        self.config = config
        self.connect = connect
        self.dataplane = dataplane
        self.emit = emit or (lambda event: None)
        self.rng = rng or random.Random()
        self.stop_event = threading.Event()
        self.started_at = datetime.now(UTC).isoformat(timespec="seconds")
        self.lease: int | None = None
        self.lease_expires: float | None = None  # monotonic; for the metrics
        self.subnet: IPv4Network | None = None
        # What ended run() in its thread, for the main thread to report (ovsnet agent's runner).
        self.failure: BaseException | None = None
        self.view = HostView(config.keys, self._event)
        self.reconciler = Reconciler(config, dataplane, self._event)
        self._queue: queue.Queue = queue.Queue()
        self._watch_generation = 0  # queue items of an older watch are ignored
        self._cancel_watch: Callable[[], None] = lambda: None
        self._last_contact = time.monotonic()  # the last time etcd answered
        self._loss_reported = False

    @property
    def records(self) -> dict[str, HostRecord]:
        return self.view.records

    @property
    def bad(self) -> dict[str, str]:
        return self.view.bad

    @property
    def applied(self) -> tuple[str, ...] | None:
        """The peers the data plane last took (None: none yet)."""
        return self.reconciler.applied

    # -- life cycle -------------------------------------------------------------------------

    def stop(self) -> None:
        self.stop_event.set()
        self._queue.put(("stop", None))

    def run(self) -> None:
        """Run until stop(). Raises only what retrying cannot fix (bad input, denied)."""
        delays = backoff(cap=backoff_cap(self.config.ttl), rng=self.rng)
        while not self.stop_event.is_set():
            etcd = self.connect()
            try:
                self._session(etcd)
                delays = backoff(cap=backoff_cap(self.config.ttl), rng=self.rng)
            except (EtcdDenied, InvalidInput):
                raise
            except (_SessionEnded, OvsnetError) as exc:
                delay = next(delays)
                self._event(
                    "disconnected",
                    level=logging.WARNING,
                    reason=_one_line(exc),
                    retry_in=round(delay, 2),
                )
                self._on_etcd_loss()
                self.stop_event.wait(delay)
            finally:
                etcd.close()

    def _on_etcd_loss(self) -> None:
        """Say (once per outage) what happens to the data plane when etcd has been away for
        longer than the lease TTL: by then peers have seen this host's record expire."""
        away = time.monotonic() - self._last_contact
        if self._loss_reported or away < self.config.ttl:
            return
        self._loss_reported = True
        tunnels = len(self.applied or ())
        if self.config.on_etcd_loss == "drop" and tunnels:
            try:
                self.reconciler.drop_all()
            except OvsnetError as exc:
                self._event("apply-failed", level=logging.ERROR, reason=exc.one_line())
                return
            action = "removed every tunnel (--on-etcd-loss drop)"
        else:
            action = f"keeping the {tunnels} tunnels as they are (--on-etcd-loss keep)"
        self._event(
            "etcd-lost",
            level=logging.WARNING,
            away_s=round(away, 1),
            tunnels=tunnels,
            action=self.config.on_etcd_loss,
            message=f"etcd unreachable for {away:.0f} s, longer than the lease TTL: peers have "
            f"probably removed their tunnels to this host; {action}",
        )

    def _contact(self) -> None:
        self._last_contact = time.monotonic()
        self._loss_reported = False

    # -- one session ------------------------------------------------------------------------

    def _session(self, etcd: Etcd) -> None:
        self._ensure_lease(etcd)
        snapshot = self._read_and_watch(etcd)
        self._contact()
        self._event(
            "connected",
            revision=snapshot.revision,
            hosts=len(self.records),
            bad_records=len(self.bad),
        )
        try:
            self._loop(etcd, healthy=self._reconcile())
        finally:
            self._cancel_watch()

    def _read_and_watch(self, etcd: Etcd) -> Snapshot:
        """A full read of the host records, then a watch from the revision after it."""
        keys = self.config.keys
        self._cancel_watch()
        snapshot = etcd.read_prefix(keys.hosts)
        self._replace_records(snapshot)
        if self._own_record_missing():
            self._claim(etcd)
            snapshot = etcd.read_prefix(keys.hosts)
            self._replace_records(snapshot)
        self._watch_generation += 1
        generation = self._watch_generation
        self._cancel_watch = etcd.watch_prefix(
            keys.hosts,
            snapshot.revision + 1,
            lambda changes: self._queue.put(("changes", generation, changes)),
            lambda error: self._queue.put(("error", generation, error)),
        )
        return snapshot

    def _resync(self, etcd: Etcd) -> None:
        """The backstop for a watch that stays open but stops delivering: read everything
        again and watch anew from there. Says so when the read found what the watch missed."""
        before = (dict(self.records), dict(self.bad))
        snapshot = self._read_and_watch(etcd)
        drift = (self.records, self.bad) != before
        self._event(
            "resynced",
            level=logging.WARNING if drift else logging.DEBUG,
            revision=snapshot.revision,
            hosts=len(self.records),
            bad_records=len(self.bad),
            drift=drift,
        )

    def _loop(self, etcd: Etcd, healthy: bool) -> None:
        interval = keepalive_interval(self.config.ttl)
        now = time.monotonic()
        next_keepalive = now + interval
        next_resync = now + self.config.resync_interval
        # A failed local step (init, tunnel sync) is retried on this timer; etcd is not polled.
        retry_at: float | None = None if healthy else now + interval
        while not self.stop_event.is_set():
            deadline = min(next_keepalive, next_resync, retry_at or next_keepalive)
            changes = self._wait(max(0.0, deadline - time.monotonic()))
            if self.stop_event.is_set():
                return
            # Why the data plane is applied again though the peers may be the same: its copy
            # of what it applied may be wrong (checked at each keepalive: a stat and a flag),
            # or the periodic resync (reads the host's state again, heals what others changed).
            check: str | None = None
            if time.monotonic() >= next_keepalive:
                self._keepalive(etcd)
                next_keepalive = time.monotonic() + interval
                check = self.dataplane.stale()
            if time.monotonic() >= next_resync:
                self._resync(etcd)
                self.dataplane.forget()
                check = "resync"
                next_resync = time.monotonic() + self.config.resync_interval
            if changes is None and not check and not (retry_at and time.monotonic() >= retry_at):
                continue
            if changes and self._apply_changes(changes):
                self._claim(etcd)  # our own record vanished (released, or lease lost)
            healthy = self._reconcile(force=check is not None)
            retry_at = None if healthy else time.monotonic() + interval

    def _wait(self, timeout: float) -> list[Change] | None:
        """The next batch, merged with every batch already queued (one reconcile for all)."""
        try:
            first = self._queue.get(timeout=timeout)
        except queue.Empty:
            return None
        batch: list[Change] = []
        item = first
        while True:
            kind, *rest = item
            # Leftovers of a cancelled watch: the read that replaced it supersedes them.
            current = kind == "stop" or rest[0] == self._watch_generation
            if current and kind == "error":
                raise _SessionEnded(_one_line(rest[1]))
            if current and kind == "changes":
                batch.extend(rest[1])
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return batch

    # -- lease and claim --------------------------------------------------------------------

    def _ensure_lease(self, etcd: Etcd) -> None:
        if self.lease is not None and (ttl := etcd.keepalive(self.lease)) > 0:
            self.lease_expires = time.monotonic() + ttl
            return
        if self.lease is not None:
            self._event("lease-expired", level=logging.WARNING, lease=self.lease)
        self.lease = etcd.grant_lease(self.config.ttl)
        self.lease_expires = time.monotonic() + self.config.ttl
        self._claim(etcd)

    def _keepalive(self, etcd: Etcd) -> None:
        assert self.lease is not None  # a session starts with _ensure_lease
        ttl = etcd.keepalive(self.lease)
        if ttl <= 0:
            self._event("lease-expired", level=logging.WARNING, lease=self.lease)
            self.lease = None
            raise _SessionEnded("the lease expired")
        self.lease_expires = time.monotonic() + ttl
        self._contact()

    def _claim(self, etcd: Etcd) -> None:
        """Claim a subnet and publish the host record, in one transaction per attempt."""
        config, keys = self.config, self.config.keys
        assert self.lease is not None  # claims are bound to the lease granted just before
        in_use = self.subnet or self.dataplane.current_subnet()
        for _ in range(MAX_CLAIM_ATTEMPTS):
            snapshots = etcd.read_many(keys.subnets, keys.last_subnets)
            view = ClaimView.parse(
                keys, snapshots[keys.subnets].items, snapshots[keys.last_subnets].items
            )
            previous = in_use or view.memory.get(config.name)
            target = plan_claim(
                view, config.name, config.supernet, config.explicit_subnet, previous, self.rng
            )
            record = config.record(target.subnet, self.started_at)
            outcome = etcd.claim_subnet(
                claim_transaction(keys, record, self.lease, target.expected_revision)
            )
            if outcome.won:
                self._release_other_claims(etcd, view, target.subnet)
                warning = displaced(previous, target.subnet, view)
                if warning:
                    self._event("displaced", level=logging.WARNING, message=warning)
                self.subnet = target.subnet
                self._event(
                    "claimed",
                    subnet=str(target.subnet),
                    lease=self.lease,
                    revision=outcome.revision,
                )
                return
        raise OperationFailed(
            f"could not claim a subnet in {MAX_CLAIM_ATTEMPTS} attempts",
            "too many hosts are claiming at once; the agent will retry",
        )

    def _release_other_claims(self, etcd: Etcd, view: ClaimView, kept: IPv4Network) -> None:
        # A host holds one subnet; older claims of ours (e.g. before a --prefix change) go.
        for subnet in view.held_by(self.config.name):
            if subnet != kept:
                etcd.delete_if_value(
                    self.config.keys.subnet(subnet), claim_value(self.config.name).encode()
                )

    # -- host records and reconcile ---------------------------------------------------------

    def _replace_records(self, snapshot: Snapshot) -> None:
        self.view.replace(snapshot)

    def _apply_changes(self, changes: list[Change]) -> bool:
        """Fold the changes into the view; True when our own record disappeared."""
        self.view.apply(changes)
        return self._own_record_missing()

    def _own_record_missing(self) -> bool:
        own = self.records.get(self.config.name)
        return own is None or own.subnet != self.subnet

    @telemetry.timed
    def _reconcile(self, force: bool = False) -> bool:
        assert self.subnet is not None  # the data plane follows a claim
        return self.reconciler.reconcile(self.subnet, self.records, force)

    # -- reporting --------------------------------------------------------------------------

    def _event(self, kind: str, level: int = logging.INFO, **fields) -> None:
        event = {"ts": round(time.time(), 6), "host": self.config.name, "event": kind, **fields}
        log.log(
            level,
            "%s %s",
            kind,
            " ".join(f"{k}={v}" for k, v in fields.items()),
            extra={"event": kind, "fields": fields},
        )
        telemetry.observe(event)
        self.emit(event)


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, OvsnetError):
        return exc.one_line()
    return " ".join(str(exc).split()) or type(exc).__name__
