"""The agent's Prometheus series: module-level metrics the agent feeds, and a collector that
reads the agent's state (lease, hosts) at scrape time.

The metrics are not registered anywhere by default: `ovsnet agent --metrics-listen` registers
them with its server's registry, so importing this module has no side effect.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Iterator

from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily

BAD_RECORDS = Counter(
    "ovsnet_agent_bad_records_skipped",
    "Host records in etcd the agent could not use and skipped",
    registry=None,
)
RECONCILE_SECONDS = Histogram(
    "ovsnet_agent_reconcile_duration_seconds",
    "Time to make the tunnels equal to the live peers (one reconcile)",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=None,
)
RECORD_TO_TUNNEL_SECONDS = Histogram(
    "ovsnet_agent_record_to_tunnel_seconds",
    "From the agent seeing a peer's host record to that peer's tunnel being applied",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
    registry=None,
)
METRICS = (BAD_RECORDS, RECONCILE_SECONDS, RECORD_TO_TUNNEL_SECONDS)

_seen_lock = threading.Lock()
_first_seen: dict[str, float] = {}  # peer underlay IP -> when its record was first seen


def record_seen(underlay_ip: str) -> None:
    """The agent stored a peer's record (the clock of record-to-tunnel starts, once)."""
    with _seen_lock:
        _first_seen.setdefault(underlay_ip, time.monotonic())


def observe(event: dict) -> None:
    """Feed one agent event (the dicts `Agent._event` emits) into the metrics."""
    kind = event.get("event")
    if kind == "bad-record":
        BAD_RECORDS.inc()
    elif kind == "peers":
        now = time.monotonic()
        with _seen_lock:
            for ip in event.get("added", ()):
                seen = _first_seen.get(str(ip))
                if seen is not None:
                    RECORD_TO_TUNNEL_SECONDS.observe(now - seen)
            # Peers already tunnelled, or left out, start afresh when their record changes.
            _first_seen.clear()


def timed(method):
    """Decorate Agent._reconcile: its duration goes into RECONCILE_SECONDS."""

    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        with RECONCILE_SECONDS.time():
            return method(*args, **kwargs)

    return wrapper


class AgentCollector:
    """Lease TTL left and hosts seen, read from the running agent when scraped."""

    def __init__(self, agent):
        self.agent = agent

    def collect(self) -> Iterator:
        lease = GaugeMetricFamily(
            "ovsnet_agent_lease_ttl_seconds",
            "Seconds left on the agent's etcd lease at its last renewal's pace (0: no lease)",
        )
        expires = getattr(self.agent, "lease_expires", None)
        left = max(0.0, expires - time.monotonic()) if expires and self.agent.lease else 0.0
        lease.add_metric([], left)
        yield lease
        hosts = GaugeMetricFamily(
            "ovsnet_agent_hosts_seen", "Host records the agent currently holds (itself included)"
        )
        hosts.add_metric([], len(self.agent.records))
        yield hosts
        for metric in METRICS:
            yield from metric.collect()
