"""Keep ovsnet's source-pinning flows what OVSDB's records say (ovsnet.antispoof).

Called under the host lock by every command that changes the bridge (init, peer add/sync/
remove, the companion's heal through init, the cluster agent through those): after OVSDB's
change, once vswitchd has assigned the ports their ofport numbers.
"""

from __future__ import annotations

from ovsnet import antispoof, openflow
from ovsnet.errors import NotReady
from ovsnet.model import Changes, ObservedBridge
from ovsnet.ovsdb.client import OvsDb


def sync_flows(
    db: OvsDb,
    bridge_name: str,
    dry_run: bool = False,
    unchanged: ObservedBridge | None = None,
    changed: tuple[ObservedBridge, Changes] | None = None,
    reading: openflow.FlowRead | None = None,
) -> list[str]:
    """Install the flows the bridge needs now, if they differ; the steps taken (or, in a dry
    run, that would be). `unchanged`: the bridge as just read, when the command changed nothing
    in OVSDB (its ofports are current, so no second read of every port is needed). `changed`:
    the bridge as read before a tunnel change, and that change (only the ofports are read).
    `reading`: the flows' read, started by start_flow_read on `unchanged` (only then)."""
    # NOTE(perf): after a change, a port just added has its ofport now: read the ofports only
    # (bridge_after), or the whole bridge when the change did more than tunnels; a no-op
    # `peer sync` of 1,000 peers reuses its read (~0.1 s of parsing saved).
    bridge = unchanged
    if bridge is None and changed is not None:
        from ovsnet.plan import bridge_after  # a change planned it already: loaded then

        bridge = bridge_after(*changed, db.ofports())
    if bridge is None:
        bridge = db.bridge(bridge_name, state=False)
    if bridge is None or not bridge.managed:
        return []
    if not openflow.reachable(db.db):
        return ["sources not pinned: vswitchd's OpenFlow socket is not local (--db tcp:/ssl:)"]
    try:
        current, meters, metered = read_flow_state(db, bridge, reading)
    except NotReady:
        if dry_run:  # a dry run may look at an OVSDB without vswitchd: say nothing of flows
            return []
        raise
    plan = antispoof.plan_bridge(bridge, meters=metered)
    changes = antispoof.flow_changes(current, plan.flows)
    if not changes and meters == plan.meters:
        return []
    if not dry_run:
        openflow.change_flows(db.db, bridge_name, changes, plan.meters, meters)
    steps = [f"pin sources from {port.what} to {port.subnet}"
             for port in antispoof.pinned_ports(bridge)]  # fmt: skip
    if plan.meters:
        steps.append(f"meter broadcast from the tunnels to {antispoof.BROADCAST_RATE} packets/s")
    return steps or ["remove ovsnet's source-pinning flows"]


def start_flow_read(db: OvsDb, bridge: ObservedBridge) -> openflow.FlowRead | None:
    """The read of ovsnet's flows on `bridge`, started now (None when sync_flows and status
    would not read them: a bridge ovsnet does not manage, or vswitchd not local)."""
    if not bridge.managed or not openflow.reachable(db.db):
        return None
    return openflow.FlowRead(db.db, bridge.name)


def read_flow_state(
    db: OvsDb, bridge: ObservedBridge, reading: openflow.FlowRead | None = None
) -> tuple[list[str], list[int], bool]:
    """ovsnet's flows on the bridge, its meter ([] or [id]) and whether the datapath meters.
    `reading`: those flows' read, already started (start_flow_read).

    NOTE(perf): one ovs-ofctl process in the usual case (~0.03 s each). A flow that uses
    ovsnet's meter proves the meter exists (OpenFlow deletes a meter's flows with the meter)
    and that the datapath has meters, so the meter is looked up only when no flow uses it.
    """
    current = reading.flows() if reading is not None else openflow.read_flows(db.db, bridge.name)
    if not bridge.tunnels:
        return current, [], False
    if any(f"meter:{antispoof.METER_ID}," in flow for flow in current):
        return current, [antispoof.METER_ID], True
    meters = openflow.read_meters(db.db, bridge.name)
    return current, meters, bool(meters) or openflow.has_meters(db.db, bridge.name)
