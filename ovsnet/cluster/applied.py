"""What the agent last applied to its bridge, and when that copy can no longer be trusted. Pure.

The agent plans each change from the bridge and the source-pinning flows as its own last change
left them (`Applied`), not from a new read of every port and a dump of every flow: at 1,000
peers those two were most of a change's cost. The copy is dropped, and everything read again,
whenever something says it may be wrong:
- OVSDB reported a change this agent did not make (`foreign`): another writer, a reconnect that
  reloaded the database, vswitchd numbering a port anew;
- vswitchd is another process than the one the flows were installed in (it keeps flows in
  memory only);
- a change failed (it may have committed in part);
- the periodic resync (the backstop for anything the signals above miss).

Place: docs/architecture.md, "Packages and what they own": cluster mode.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, replace

from ovsnet.model import Changes, ObservedBridge, Snapshot
from ovsnet.ovsdb.watch import RowChange
from ovsnet.plan import bridge_after

# What vswitchd (or any waiting client) writes in answer to a change: not a configuration.
ANSWER_COLUMNS = {"Open_vSwitch": {"cur_cfg", "next_cfg"}, "Interface": {"error"}}


@dataclass(frozen=True)
class FlowState:
    """ovsnet's flows and meter as installed in one vswitchd, and whether its datapath has
    meters (None: not known yet, the bridge had no tunnel when the flows were read)."""

    flows: tuple[str, ...]
    meters: tuple[int, ...]
    metered: bool | None


@dataclass(frozen=True)
class Applied:
    """OVSDB as this agent's last change left it, the flows it left, and the vswitchd they
    live in (`vswitchd`: its control socket's identity; None when flows are not ovsnet's to
    keep, e.g. OVSDB over tcp:)."""

    snapshot: Snapshot
    flows: FlowState | None
    vswitchd: tuple[int, int] | None


@dataclass(frozen=True)
class Expected:
    """What OVSDB reports back for this agent's own transaction."""

    names: frozenset[str]  # ports (and their interfaces, same name) created, updated, deleted
    bridge: str | None  # the bridge whose port list changes
    other_config: bool  # Open_vSwitch:other_config changes (IPsec settings)


def expected_of(changes: Changes) -> Expected:
    """What a tunnel change makes OVSDB report."""
    names = {spec.port for spec in changes.add_tunnels + changes.update_tunnels}
    names |= set(changes.remove_ports)
    ports_change = bool(changes.add_tunnels or changes.remove_ports)
    return Expected(
        frozenset(names),
        changes.tunnel_bridge if ports_change else None,
        bool(changes.other_config),
    )


def foreign(change: RowChange, expected: Expected | None = None) -> bool:
    """Whether `change` may be someone else's (so the copy may be wrong): everything that is
    neither vswitchd's answer nor explained by `expected` (this agent's transaction)."""
    answer = ANSWER_COLUMNS.get(change.table, set())
    if change.kind == "update" and change.columns and change.columns <= answer:
        return False
    if expected is None:
        return True
    if change.table in ("Port", "Interface"):
        return change.name not in expected.names  # vswitchd's ofport for a new one included
    if change.kind != "update":
        return True  # a bridge or the Open_vSwitch row created or deleted
    if change.table == "Bridge":
        return change.name != expected.bridge or not change.columns <= {"ports"}
    if change.table == "Open_vSwitch":
        allowed = {"other_config", *ANSWER_COLUMNS["Open_vSwitch"]}
        return not expected.other_config or not change.columns <= allowed
    return True


def snapshot_after(
    snapshot: Snapshot, bridge: str, changes: Changes, ofports: Mapping[str, int | None]
) -> Snapshot | None:
    """OVSDB once a tunnel change of `bridge` is applied, from the snapshot before it, the
    change and the ofports vswitchd has assigned since. None when this cannot be known without
    reading (the change did more than tunnels, or a port's ofport is not what the copy says)."""
    after = bridge_after(snapshot.bridges[bridge], changes, ofports)
    if after is None or not ofports_agree(after, ofports):
        return None
    merged = {**snapshot.other_config, **changes.other_config}
    return replace(
        snapshot,
        other_config={key: value for key, value in merged.items() if value is not None},
        bridges={**snapshot.bridges, bridge: after},
    )


def ofports_agree(bridge: ObservedBridge, ofports: Mapping[str, int | None]) -> bool:
    """Whether every port of the copy has the ofport vswitchd reports now (the flows name
    ports by ofport: a port numbered anew would leave them pinning the wrong port)."""
    return all(ofports.get(name) == port.ofport for name, port in bridge.ports.items())


def stale_reason(
    applied: Applied | None, heard_foreign: bool, vswitchd: tuple[int, int] | None
) -> str | None:
    """Why the copy cannot be used for the next change (None: it can)."""
    if applied is None:
        return "no copy yet"
    if heard_foreign:
        return "OVSDB changed by another writer"
    if applied.flows is not None and vswitchd is None:
        return "ovs-vswitchd's control socket not found (a restart could not be told)"
    if applied.flows is not None and applied.vswitchd != vswitchd:
        return "ovs-vswitchd restarted"
    return None


def any_foreign(heard: Collection[RowChange], expected: Expected | None) -> bool:
    return any(foreign(change, expected) for change in heard)
