"""Keep the plaintext guard (ovsnet.plaintext_guard) in step with the tunnels in OVSDB.

Order matters: the guard is widened before an IPsec tunnel is created, so vswitchd's first
BFD packet to a new peer already meets it, and narrowed only after a tunnel is gone. If the
OVSDB change fails, the guard goes back to what it was.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from ovsnet import ipsec, nftables
from ovsnet.errors import OvsnetError
from ovsnet.faults import checkpoint
from ovsnet.ovsdb import Changes
from ovsnet.plaintext_guard import Guard, GuardState, desired_guard


def host_after(host: ipsec.ObservedHost, changes: Changes) -> ipsec.ObservedHost:
    """The IPsec view of the host once `changes` are applied (tunnel changes and other_config)."""
    replaced = set(changes.remove_ports) | {spec.port for spec in changes.update_tunnels}
    tunnels = [t for t in host.tunnels if t.port not in replaced]
    tunnels += [
        ipsec.ObservedTunnel(spec.port, spec.type, spec.options)
        for spec in [*changes.add_tunnels, *changes.update_tunnels]
    ]
    other_config = {**host.other_config, **changes.other_config}
    kept = {key: value for key, value in other_config.items() if value is not None}
    return ipsec.ObservedHost(host.ovs_version, kept, tuple(tunnels))


@dataclass(frozen=True)
class GuardChange:
    before: Guard
    after: Guard
    current: GuardState

    @property
    def widened(self) -> Guard:
        return self.before | self.after

    @property
    def steps(self) -> list[str]:
        if self.current.needs(self.widened) or self.current.needs(self.after):
            return [self.after.describe()]
        return []


def plan_guard(host: ipsec.ObservedHost, changes: Changes) -> GuardChange | None:
    """What `changes` do to the guard; None when neither side has IPsec peers to guard (nft is
    not even run, and a plaintext `peer add` of 1,000 peers builds no second view)."""
    if not changes:
        return None
    if not host.drops_plaintext and not changes.other_config.get(ipsec.SKB_MARK_KEY):
        return None  # no skb_mark before or after: nothing is guarded on either side
    wanted_before, wanted_after = desired_guard(host), desired_guard(host_after(host, changes))
    if not wanted_before and not wanted_after:
        return None
    return GuardChange(wanted_before, wanted_after, nftables.read_guard())


@contextmanager
def guarded(change: GuardChange | None) -> Iterator[None]:
    """Widen the guard, run the OVSDB change, then narrow it (or restore it on failure)."""
    if change is None:
        yield
        return
    if change.current.needs(change.widened):
        nftables.write_guard(change.widened)
    checkpoint("guard:after-widened")
    try:
        yield
    except BaseException:
        _restore(change)
        raise
    checkpoint("guard:after-ovsdb")
    if change.widened != change.after:
        nftables.write_guard(change.after)


def _restore(change: GuardChange) -> None:
    try:
        if change.widened != change.before:  # the kernel holds the widened guard by now
            nftables.write_guard(change.before)
    except OvsnetError:
        pass  # the OVSDB error is the one to report; status shows a guard left wider


def restore_guard(db, dry_run: bool = False) -> list[str]:
    """Make the kernel's guard what OVSDB's IPsec tunnels need (reads OVSDB only: vswitchd may
    not run yet). The steps taken (or, with dry_run, to take), if any."""
    from ovsnet.services.ipsec import observe_host

    wanted, steps = reconcile_steps(observe_host(db))
    if steps and not dry_run:
        nftables.write_guard(wanted)
    return steps


def reconcile_steps(host: ipsec.ObservedHost) -> tuple[Guard, list[str]]:
    """For `init`: the guard this host needs and the step to get there (none if in place)."""
    wanted = desired_guard(host)
    current = nftables.read_guard()
    return wanted, [wanted.describe()] if current.needs(wanted) else []
