"""The agent's data-plane job: init for the claimed subnet, then the tunnels exactly the live
peers. The plan is recomputed from the whole view of records (ovsnet.cluster.plan), so a missed
or repeated watch event never leaves a stale tunnel; the data plane is only asked to change when
the plan differs from what it last applied, or when it must check (`force`: the periodic resync,
or the data plane saying its copy of what it applied may be wrong).

Place: docs/architecture.md, "Packages and what they own": cluster mode.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from ipaddress import IPv4Address, IPv4Network
from typing import Protocol

from ovsnet.cluster.agent_config import AgentConfig
from ovsnet.cluster.plan import desired_peers
from ovsnet.cluster.records import HostRecord
from ovsnet.errors import OvsnetError

Event = Callable[..., None]  # Agent._event: (kind, level=..., **fields)


class Dataplane(Protocol):
    """What the agent changes on the host (OVS, addresses); see ovsnet.cluster.dataplane."""

    def current_subnet(self) -> IPv4Network | None: ...

    def init(self, subnet: IPv4Network) -> dict: ...

    def apply_peers(
        self,
        peers: tuple[str, ...],
        names: tuple[tuple[str, str], ...] = (),
        subnets: Mapping[str, IPv4Network] | None = None,
    ) -> dict: ...

    def local_addresses(self) -> set[IPv4Address]: ...

    def forget(self) -> None:
        """Read the host's state again at the next apply_peers (the periodic resync)."""

    def stale(self) -> str | None:
        """Why what the data plane last applied may no longer hold (None: nothing says so)."""


class Reconciler:
    def __init__(self, config: AgentConfig, dataplane: Dataplane, event: Event):
        self.config = config
        self.dataplane = dataplane
        self._event = event
        self.applied: tuple[str, ...] | None = None  # the peers the data plane last took
        self.applied_names: tuple[tuple[str, str], ...] = ()
        self.initialised: IPv4Network | None = None  # the subnet init last succeeded for
        self._skipped: tuple[str, ...] = ()

    def reconcile(
        self, subnet: IPv4Network, records: Mapping[str, HostRecord], force: bool = False
    ) -> bool:
        """Init if needed, then make the tunnels exactly the live peers; False if the data
        plane refused (the caller retries later). `force`: apply even if nothing changed."""
        started = time.monotonic()
        if not self._ensure_dataplane(subnet):
            return False
        config = self.config
        plan = desired_peers(
            records,
            config.name,
            config.underlay_ip,
            config.tunnel_type,
            config.ipsec_method,
            config.supernet,
            self._local_addresses(),
        )
        if plan.skipped != self._skipped:
            self._skipped = plan.skipped
            for line in plan.skipped:
                self._event("peer-skipped", level=logging.WARNING, problem=line)
        same = plan.peers == self.applied and plan.names == self.applied_names
        if same and not force:
            return True
        before = set(self.applied or ())
        applying = time.monotonic()
        try:
            subnets = {str(r.underlay_ip): r.subnet for r in records.values()}
            # names: certificate IPsec, each tunnel names its peer's certificate (else empty)
            details = self.dataplane.apply_peers(plan.peers, plan.names, subnets)
        except OvsnetError as exc:
            self._event("apply-failed", level=logging.ERROR, reason=exc.one_line())
            return False
        self.applied = plan.peers
        self.applied_names = plan.names
        self._event(
            "peers-checked" if same else "peers",
            level=logging.DEBUG if same else logging.INFO,
            count=len(plan.peers),
            apply_ms=round(1000 * (time.monotonic() - applying), 1),
            # the whole reconcile: planning from every record, then the apply above
            reconcile_ms=round(1000 * (time.monotonic() - started), 1),
            added=sorted(set(plan.peers) - before, key=IPv4Address),
            removed=sorted(before - set(plan.peers), key=IPv4Address),
            # "cache": planned from what the data plane last applied; else why it read all
            **({"read": details["read"]} if "read" in details else {}),
        )
        return True

    def drop_all(self) -> None:
        """Remove every tunnel (`--on-etcd-loss drop`); raises what the data plane raised."""
        self.dataplane.apply_peers(())
        self.applied = ()

    def _ensure_dataplane(self, subnet: IPv4Network) -> bool:
        """`init` for the claimed subnet (once, and again whenever the subnet changes)."""
        if self.initialised == subnet:
            return True
        try:
            details = self.dataplane.init(subnet)
        except OvsnetError as exc:
            # Typically Docker still runs with another --bip: the hint says what it needs.
            self._event(
                "init-failed", level=logging.ERROR, subnet=str(subnet), reason=exc.one_line()
            )
            return False
        self.initialised = subnet
        self._event("initialised", subnet=str(subnet), **details)
        return True

    def _local_addresses(self) -> set[IPv4Address]:
        try:
            return self.dataplane.local_addresses()
        except OvsnetError as exc:
            self._event("local-addresses-failed", level=logging.WARNING, reason=exc.one_line())
            return set()
