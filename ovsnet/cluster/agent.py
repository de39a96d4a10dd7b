"""`ovsnet agent`: lease a subnet, publish the host, keep the tunnels equal to the live peers.

One thread does all the work; the etcd client's watch thread only puts batches of changes (or
the error that ended the stream) on a queue. The loop waits on that queue, with a timeout only
for the lease keepalive, so an idle agent sleeps: there is no polling of etcd or OVSDB.

Sessions: connect, make sure the host's claim and record exist (keep the lease if it is alive,
else claim again, preferring the subnet in use), read the host records, watch from the next
revision, reconcile. When etcd goes away the session ends and the agent retries with backoff;
the data plane is left exactly as it is until etcd answers again.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from ipaddress import IPv4Address, IPv4Network
from typing import Protocol

from ovsnet.cluster import telemetry
from ovsnet.cluster.claims import ClaimView, displaced, plan_claim
from ovsnet.cluster.keys import ClusterKeys
from ovsnet.cluster.plan import backoff, backoff_cap, desired_peers, keepalive_interval
from ovsnet.cluster.records import BadRecord, HostRecord, claim_value, memory_value
from ovsnet.errors import InvalidInput, OperationFailed, OvsnetError
from ovsnet.etcd import Change, Etcd, EtcdDenied, SubnetClaim

log = logging.getLogger("ovsnet.agent")
MAX_CLAIM_ATTEMPTS = 64


@dataclass(frozen=True)
class AgentConfig:
    name: str
    underlay_ip: IPv4Address
    supernet: IPv4Network
    keys: ClusterKeys = field(default_factory=ClusterKeys)
    explicit_subnet: IPv4Network | None = None
    tunnel_type: str = "gre"
    ttl: int = 30
    ipsec_method: str | None = None
    ipsec_cn: str | None = None
    ipsec_fingerprint: str | None = None

    def record(self, subnet: IPv4Network, started_at: str) -> HostRecord:
        return HostRecord(
            name=self.name,
            underlay_ip=self.underlay_ip,
            subnet=subnet,
            tunnel_type=self.tunnel_type,
            ipsec_method=self.ipsec_method,
            ipsec_cn=self.ipsec_cn,
            ipsec_fingerprint=self.ipsec_fingerprint,
            started_at=started_at,
        )


class Dataplane(Protocol):
    """What the agent changes on the host (OVS, addresses); see ovsnet.cluster.dataplane."""

    def current_subnet(self) -> IPv4Network | None: ...

    def init(self, subnet: IPv4Network) -> dict: ...

    def apply_peers(self, peers: tuple[str, ...]) -> dict: ...


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
        self.records: dict[str, HostRecord] = {}
        self.applied: tuple[str, ...] | None = None
        self._skipped: tuple[str, ...] = ()
        self._queue: queue.Queue = queue.Queue()
        self._initialised: IPv4Network | None = None  # the subnet init last succeeded for

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
                self.stop_event.wait(delay)
            finally:
                etcd.close()

    # -- one session ------------------------------------------------------------------------

    def _session(self, etcd: Etcd) -> None:
        keys = self.config.keys
        self._ensure_lease(etcd)
        snapshot = etcd.read_prefix(keys.hosts)
        self._replace_records(snapshot.items)
        if self._own_record_missing():
            self._claim(etcd)
            snapshot = etcd.read_prefix(keys.hosts)
            self._replace_records(snapshot.items)
        self._drain_stale_queue()
        cancel = etcd.watch_prefix(
            keys.hosts, snapshot.revision + 1, self._on_changes, self._on_error
        )
        self._event("connected", revision=snapshot.revision, hosts=len(self.records))
        try:
            self._loop(etcd, healthy=self._reconcile())
        finally:
            cancel()

    def _loop(self, etcd: Etcd, healthy: bool) -> None:
        interval = keepalive_interval(self.config.ttl)
        next_keepalive = time.monotonic() + interval
        # A failed local step (init, tunnel sync) is retried on this timer; etcd is not polled.
        retry_at: float | None = None if healthy else time.monotonic() + interval
        while not self.stop_event.is_set():
            deadline = min(next_keepalive, retry_at or next_keepalive)
            changes = self._wait(max(0.0, deadline - time.monotonic()))
            if self.stop_event.is_set():
                return
            if time.monotonic() >= next_keepalive:
                self._keepalive(etcd)
                next_keepalive = time.monotonic() + interval
            if changes is None and not (retry_at and time.monotonic() >= retry_at):
                continue
            if changes and self._apply_changes(changes):
                self._claim(etcd)  # our own record vanished (released, or lease lost)
            retry_at = None if self._reconcile() else time.monotonic() + interval

    def _wait(self, timeout: float) -> list[Change] | None:
        """The next batch, merged with every batch already queued (one reconcile for all)."""
        try:
            first = self._queue.get(timeout=timeout)
        except queue.Empty:
            return None
        batch: list[Change] = []
        item = first
        while True:
            kind, payload = item
            if kind == "error":
                raise _SessionEnded(_one_line(payload))
            if kind == "changes":
                batch.extend(payload)
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return batch

    def _on_changes(self, changes: list[Change]) -> None:
        self._queue.put(("changes", changes))

    def _on_error(self, error: Exception) -> None:
        self._queue.put(("error", error))

    def _drain_stale_queue(self) -> None:
        # Leftovers of the previous session's watch: the fresh snapshot supersedes them.
        while True:
            try:
                kind, _ = self._queue.get_nowait()
            except queue.Empty:
                return
            if kind == "stop":
                self._queue.put(("stop", None))
                return

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
                SubnetClaim(
                    subnet_key=keys.subnet(target.subnet),
                    claim_value=claim_value(config.name),
                    lease=self.lease,
                    expected_revision=target.expected_revision,
                    puts=(
                        (keys.host(config.name), record.to_json(), True),
                        (keys.last_subnet(config.name), memory_value(target.subnet), False),
                    ),
                )
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

    def _replace_records(self, items) -> None:
        self.records = {}
        for key, item in items.items():
            self._store(key, item.value)

    def _store(self, key: str, value: bytes | None) -> None:
        name = self.config.keys.name_of(key)
        if name is None:
            return
        if value is None:
            self.records.pop(name, None)
            return
        try:
            record = HostRecord.from_json(value)
        except BadRecord as exc:
            self._event("bad-record", level=logging.WARNING, key=key, problem=str(exc))
            self.records.pop(name, None)
            return
        if record.name != name:
            self._event(
                "bad-record", level=logging.WARNING, key=key, problem=f"names {record.name}"
            )
            return
        self.records[name] = record
        telemetry.record_seen(str(record.underlay_ip))

    def _apply_changes(self, changes: list[Change]) -> bool:
        """Fold the changes into the view; True when our own record disappeared."""
        for change in changes:
            self._store(change.key, change.value)
        return self._own_record_missing()

    def _own_record_missing(self) -> bool:
        own = self.records.get(self.config.name)
        return own is None or own.subnet != self.subnet

    def _ensure_dataplane(self) -> bool:
        """`init` for the claimed subnet (once, and again whenever the subnet changes)."""
        if self._initialised == self.subnet:
            return True
        assert self.subnet is not None  # the dataplane follows a claim
        try:
            details = self.dataplane.init(self.subnet)
        except OvsnetError as exc:
            # Typically Docker still runs with another --bip: the hint says what it needs.
            self._event(
                "init-failed", level=logging.ERROR, subnet=str(self.subnet), reason=exc.one_line()
            )
            return False
        self._initialised = self.subnet
        self._event("initialised", subnet=str(self.subnet), **details)
        return True

    @telemetry.timed
    def _reconcile(self) -> bool:
        """Init if needed, then make the tunnels exactly the live peers; False if the data
        plane refused (the caller retries later)."""
        if not self._ensure_dataplane():
            return False
        plan = desired_peers(
            self.records,
            self.config.name,
            self.config.underlay_ip,
            self.config.tunnel_type,
            self.config.ipsec_method,
        )
        if plan.skipped != self._skipped:
            self._skipped = plan.skipped
            for line in plan.skipped:
                self._event("peer-skipped", level=logging.WARNING, problem=line)
        if plan.peers == self.applied:
            return True
        before = set(self.applied or ())
        started = time.monotonic()
        try:
            self.dataplane.apply_peers(plan.peers)
        except OvsnetError as exc:
            self._event("apply-failed", level=logging.ERROR, reason=exc.one_line())
            return False
        self.applied = plan.peers
        self._event(
            "peers",
            count=len(plan.peers),
            apply_ms=round(1000 * (time.monotonic() - started), 1),
            added=sorted(set(plan.peers) - before, key=IPv4Address),
            removed=sorted(before - set(plan.peers), key=IPv4Address),
        )
        return True

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
