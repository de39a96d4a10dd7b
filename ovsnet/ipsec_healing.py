"""When to repair an IPsec peer that is not established, and how often (pure, no I/O).

When every host adds its IPsec tunnels at once, some pairs stay "configured but not
established" (seen on most VM runs with strongSwan 5.9 + ovs-monitor-ipsec 3.1). The healer
watches ovs-monitor-ipsec's per-tunnel view and repairs one peer at a time: a peer down for
longer than the grace period is repaired, and a peer that stays down after repairs is repaired
again after a delay that doubles each time (first_backoff .. max_backoff). A peer seen
established again starts afresh. One stuck state is repaired without waiting for the grace: an
IKE SA with the peer under ovs-monitor-ipsec's catch-all shunt connection (`misrouted`), which is
what a responder makes of a peer that initiated before the responder had loaded the tunnel's
own connection (certificates; docs/decisions.md). Nothing ever re-negotiates that on its own.
A peer down with nothing under way for it (no IKE SA, none being negotiated: `idle`) is first
only initiated, at once and at most every `initiate_every` seconds, not torn down: charon drops
the kernel's acquires that arrive before ovs-monitor-ipsec loaded the connection, and the
kernel raises no new one while the dropped acquire's larval state lives (docs/decisions.md,
"A host back from a restart initiates").
Everything here works on wall-clock seconds passed in by the caller, so the same records work
across processes (the state file under /run/ovsnet).

Place: docs/architecture.md, "Layers": pure layer.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from ovsnet.ipsec.tunnels_show import bfd_carrying

DEFAULT_GRACE = 60.0
DEFAULT_FIRST_BACKOFF = 60.0
DEFAULT_MAX_BACKOFF = 600.0


@dataclass(frozen=True)
class HealPolicy:
    grace: float = DEFAULT_GRACE  # seconds a peer may be not established before a repair
    first_backoff: float = DEFAULT_FIRST_BACKOFF  # delay after the first repair of a streak
    max_backoff: float = DEFAULT_MAX_BACKOFF
    # NOTE: a kernel without ESP (the netns lab) can never install a CHILD_SA; there an IKE SA
    # alone is what "established" can mean. Real hosts need both.
    require_child_sa: bool = True
    # While a peer is down, look again this often (a misrouted peer is repaired when seen, and
    # would otherwise wait until the next peer became due).
    recheck_down: float = 10.0
    # An idle peer (see the module doc) is initiated again at most this often until it is up.
    initiate_every: float = 30.0


@dataclass(frozen=True)
class PeerObservation:
    """One ovsnet IPsec peer as ovs-monitor-ipsec sees it now."""

    peer: str  # remote underlay address
    port: str  # tunnel port (ovs-monitor-ipsec names its strongSwan connections after it)
    state: str  # MonitorTunnel.summary(), or why the monitor has no view of it
    ike_established: bool = False
    child_installed: bool = False
    bfd_state: str | None = None  # the tunnel port's BFD state (None: BFD does not run on it)
    # An IKE SA with this peer is up under ovs-monitor-ipsec's shunt connection instead of the
    # tunnel's own: a wrong state, not a negotiation in progress.
    misrouted: bool = False
    # charon has no IKE SA for this peer under the tunnel's current connection, up or being
    # negotiated: nothing will happen until a packet raises an acquire that charon takes.
    idle: bool = False

    def healthy(self, policy: HealPolicy) -> bool:
        if policy.require_child_sa:
            return self.ike_established and self.child_installed and self.carrying
        return self.ike_established

    @property
    def carrying(self) -> bool:
        """BFD over the tunnel proves packets cross both ways: SAs keyed on both ends can still
        not match (the VM lab saw "established" pairs that carried no ping)."""
        return bfd_carrying(self.bfd_state)

    def silent(self, policy: HealPolicy) -> bool:
        """Established, but BFD does not see packets crossing. BFD needs a few seconds after
        the SAs come up, so this state gets a grace of its own (see next_repair_at)."""
        sas_up = self.ike_established and self.child_installed
        return policy.require_child_sa and sas_up and not self.carrying


@dataclass(frozen=True)
class RepairRecord:
    """What the healer remembers of one peer (the state file holds one per peer)."""

    port: str
    down_since: float | None = None  # first seen not established (None: established)
    repairs: int = 0  # every repair ever made (for status and metrics)
    streak: int = 0  # repairs since the peer was last seen established (drives the backoff)
    last_repair: float | None = None
    last_reason: str | None = None
    # First seen established with BFD down, in the current run of that state (None: not in it).
    silent_since: float | None = None
    # Last time the healer initiated this peer (a repair initiates too), in this down streak.
    initiated_at: float | None = None

    def as_json(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RepairRecord:
        def number(key: str) -> float | None:
            value = data.get(key)
            return float(value) if isinstance(value, (int, float)) else None

        return cls(
            port=str(data.get("port", "")),
            down_since=number("down_since"),
            repairs=int(data.get("repairs") or 0),
            streak=int(data.get("streak") or 0),
            last_repair=number("last_repair"),
            last_reason=str(data["last_reason"]) if data.get("last_reason") else None,
            silent_since=number("silent_since"),
            initiated_at=number("initiated_at"),
        )


@dataclass(frozen=True)
class Repair:
    peer: str
    port: str
    reason: str


@dataclass(frozen=True)
class Initiation:
    peer: str
    port: str


@dataclass(frozen=True)
class HealPlan:
    records: dict[str, RepairRecord]  # the records to keep, repairs below already counted
    repairs: tuple[Repair, ...]
    initiations: tuple[Initiation, ...] = ()


def backoff_delay(streak: int, policy: HealPolicy) -> float:
    """Seconds to wait after the streak-th repair before the next one (doubling, capped)."""
    if streak <= 0:
        return 0.0
    return min(policy.first_backoff * 2.0 ** min(streak - 1, 32), policy.max_backoff)


def next_repair_at(
    record: RepairRecord, policy: HealPolicy, misrouted: bool = False
) -> float | None:
    """When this peer may be repaired next; None while it is established. A misrouted peer
    skips the grace (not its backoff: a repair that did not help is not repeated at once)."""
    if record.down_since is None:
        return None
    due = record.down_since + (0.0 if misrouted else policy.grace)
    if record.last_repair is not None and record.streak:
        due = max(due, record.last_repair + backoff_delay(record.streak, policy))
    if record.silent_since is not None:
        # A pair that has just come up (its peer back from a reboot, say) is not repaired
        # before BFD had the grace to come up: in the VM lab a repair due from the outage
        # cut the fresh SAs and kept the pair down for minutes more.
        due = max(due, record.silent_since + policy.grace)
    return due


def plan_repairs(
    now: float,
    observed: Iterable[PeerObservation],
    records: Mapping[str, RepairRecord],
    policy: HealPolicy,
    may_repair: bool = True,
) -> HealPlan:
    """Which peers to repair now, which only to initiate, and the records afterwards. Peers no
    longer observed are forgotten (their tunnel is gone). With may_repair=False (the plaintext
    guard is missing) nothing is touched, but how long each peer has been down is tracked."""
    kept: dict[str, RepairRecord] = {}
    repairs: list[Repair] = []
    initiations: list[Initiation] = []
    for peer in sorted(observed, key=lambda p: p.peer):
        record = records.get(peer.peer) or RepairRecord(port=peer.port)
        record = replace(record, port=peer.port)
        if peer.healthy(policy):
            kept[peer.peer] = replace(
                record, down_since=None, streak=0, silent_since=None, initiated_at=None
            )
            continue
        down_since = now if record.down_since is None else record.down_since
        silent_since = None
        if peer.silent(policy):
            silent_since = now if record.silent_since is None else record.silent_since
        record = replace(record, down_since=down_since, silent_since=silent_since)
        due = next_repair_at(record, policy, peer.misrouted)
        if may_repair and due is not None and now >= due:
            since = down_since if silent_since is None else silent_since
            reason = f"{peer.state} for {now - since:.0f} s"
            if peer.misrouted:
                reason += ", its IKE SA under ovs-monitor-ipsec's shunt connection"
            repairs.append(Repair(peer.peer, peer.port, reason))
            record = replace(record_repair(record, reason, now), initiated_at=now)
        elif may_repair and peer.idle and not peer.misrouted and initiate_due(record, now, policy):
            initiations.append(Initiation(peer.peer, peer.port))
            record = replace(record, initiated_at=now)
        kept[peer.peer] = record
    return HealPlan(kept, tuple(repairs), tuple(initiations))


def initiate_due(record: RepairRecord, now: float, policy: HealPolicy) -> bool:
    return record.initiated_at is None or now >= record.initiated_at + policy.initiate_every


def record_repair(record: RepairRecord, reason: str, now: float | None = None) -> RepairRecord:
    """The record once a repair was made at `now` (None: keep the time already recorded, e.g.
    to replace the reason of a repair that failed). A manual repair counts like an automatic
    one, so the healer does not repeat it at once."""
    if now is None:
        return replace(record, last_reason=reason)
    return replace(
        record,
        repairs=record.repairs + 1,
        streak=record.streak + 1,
        last_repair=now,
        last_reason=reason,
    )


def wake_after(now: float, records: Mapping[str, RepairRecord], policy: HealPolicy) -> float:
    """Seconds until the next look: the next due peer, at most policy.recheck_down while any
    peer is down (it may turn out misrouted), policy.grace when none is down."""
    due = [at for r in records.values() if (at := next_repair_at(r, policy)) is not None]
    if not due:
        return policy.grace
    return max(0.0, min(min(due) - now, policy.recheck_down))
