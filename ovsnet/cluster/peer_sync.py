"""The agent's `peer sync`: planned from what it last applied, reading again only when needed.

`peer sync` proper (ovsnet.services.peers.add_peers) reads every port and dumps every ovsnet
flow on each call; the agent makes the same change (`change_peers`: the same checks, guard and
IPsec clean-up) from its copy of the bridge and flows (ovsnet.cluster.applied), then sends
vswitchd only the flows that differ from the copy. What says the copy may be wrong is listed
there; OVSDB's reports come through the IDL connection's change feed (ovsnet.ovsdb.watch).

Fail closed: the copy is dropped before every change and kept again only once the change and
its flows are done and nothing foreign was heard meanwhile; any error leaves it dropped, so the
next change reads everything (as `peer sync` does).

Place: docs/architecture.md, "Packages and what they own": cluster mode.
"""

from __future__ import annotations

import os
import threading

from ovsnet import antispoof, openflow, ovs_daemons
from ovsnet.cluster.applied import (
    Applied,
    FlowState,
    any_foreign,
    expected_of,
    foreign,
    snapshot_after,
    stale_reason,
)
from ovsnet.model import ObservedBridge, Snapshot
from ovsnet.netlink import Netlink
from ovsnet.ovsdb.client import OvsDb
from ovsnet.ovsdb.watch import RowChange
from ovsnet.services.flows import read_flow_state
from ovsnet.services.peers import PeerRequest, change_peers


class CachedPeerSync:
    """`peer sync` (exact) for one long-lived OVSDB connection, with the copy it keeps."""

    def __init__(self, db: OvsDb, net: Netlink):
        self.db = db
        self.net = net
        self.applied: Applied | None = None
        self._lock = threading.Lock()  # the IDL's thread reports, the agent's thread reads
        self._heard_foreign = False
        self._window: list[RowChange] | None = None  # what OVSDB reported during a change
        self._watching = False
        self._forgotten: str | None = None  # why forget() dropped the copy, until the next sync

    def forget(self, why: str = "resync") -> None:
        """Read everything again at the next sync (the periodic resync, after an init)."""
        self.applied = None
        self._forgotten = why

    def stale(self) -> str | None:
        """Why the next sync would read everything (None: it would use the copy)."""
        with self._lock:
            heard = self._heard_foreign
        reason = stale_reason(self.applied, heard, vswitchd_instance(self.db.db))
        return self._forgotten if self.applied is None and self._forgotten else reason

    def sync(self, request: PeerRequest) -> dict:
        """Make the tunnels `request.peers` exactly; the steps, and what the plan came from
        (`read`: "cache", or why everything was read)."""
        if not self._watching:
            self.db.watch(self._hear)
            self._watching = True
        vswitchd = vswitchd_instance(self.db.db)
        with self._lock:
            reason = stale_reason(self.applied, self._heard_foreign, vswitchd)
            self._heard_foreign = False
            self._window = []
        if self.applied is None and self._forgotten:
            reason = self._forgotten
        self._forgotten = None
        copy, self.applied = self.applied, None  # kept again only if all goes well
        try:
            snapshot = copy.snapshot if reason is None and copy else self.db.snapshot(state=False)
            change = change_peers(self.db, self.net, request, snapshot, exact=True)
        finally:
            with self._lock:
                heard, self._window = self._window or [], None
        plan = change.plan
        after: Snapshot | None = snapshot
        if plan:
            after = snapshot_after(snapshot, request.bridge, plan.changes, self.db.ofports())
        if after is None:  # the copy does not hold: plan the flows from a new read, all of it
            reason = reason or "ofports moved"
            after = self.db.snapshot(state=False)
        installed = copy.flows if reason is None and copy else None
        flows = self._sync_flows(after.bridges[request.bridge], installed)
        if (
            any_foreign(heard, expected_of(plan.changes))
            or vswitchd_instance(self.db.db) != vswitchd
        ):
            return _result(change.report.steps, reason)  # the copy stays dropped
        self.applied = Applied(after, flows, vswitchd)
        return _result(change.report.steps, reason)

    def _sync_flows(self, bridge: ObservedBridge, installed: FlowState | None) -> FlowState | None:
        """Make ovsnet's flows what `bridge` needs: from the copy of what is installed, or
        (None) from a dump. The flows now installed; None when they are not ovsnet's to keep
        (an unmanaged bridge, or vswitchd not on this machine)."""
        if not bridge.managed or not openflow.reachable(self.db.db):
            return None
        if installed is None or (installed.metered is None and bridge.tunnels):
            current, meters, metered = read_flow_state(self.db, bridge)
            known = metered if bridge.tunnels else None
            installed = FlowState(tuple(current), tuple(meters), known)
        metered = bool(installed.metered)
        plan = antispoof.plan_bridge(bridge, meters=metered)
        changes = antispoof.flow_changes(installed.flows, plan.flows)
        if changes or list(installed.meters) != plan.meters:
            openflow.change_flows(
                self.db.db, bridge.name, changes, plan.meters, list(installed.meters)
            )
        return FlowState(tuple(plan.flows), tuple(plan.meters), installed.metered)

    def _hear(self, change: RowChange) -> None:
        """OVSDB reported a change (the IDL's thread): during a sync, kept to be weighed
        against the sync's own transaction; else anything but vswitchd's answers is foreign."""
        with self._lock:
            if self._window is not None:
                self._window.append(change)
            elif foreign(change):
                self._heard_foreign = True


def _result(steps: list[str], reason: str | None) -> dict:
    return {"steps": steps, "read": reason or "cache"}


def vswitchd_instance(db: str) -> tuple[int, int] | None:
    """Which ovs-vswitchd runs now: its control socket's (device, inode), new with every start
    (flows live in its memory only). None when it cannot be told (no socket, or OVSDB not on a
    local `unix:` socket)."""
    directory = ovs_daemons.run_dir(db)
    path = ovs_daemons.control_socket(directory, ovs_daemons.VSWITCHD) if directory else None
    if path is None:
        return None
    try:
        found = os.stat(path)
    except OSError:
        return None
    return found.st_dev, found.st_ino
