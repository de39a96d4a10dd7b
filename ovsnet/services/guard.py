"""Keep the plaintext guard (ovsnet.plaintext_guard) in step with the tunnels in OVSDB.

Order matters: the guard is widened before an IPsec tunnel is created, so vswitchd's first
BFD packet to a new peer already meets it, and narrowed only after a tunnel is gone. If the
OVSDB change fails, the guard is recomputed from OVSDB (the change may have committed).

Place: docs/architecture.md, "Packages and what they own": the services layer.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from ovsnet import nftables, plaintext_guard
from ovsnet.errors import OvsnetError
from ovsnet.faults import checkpoint
from ovsnet.ipsec import keys as ipsec_keys
from ovsnet.ipsec import observed as ipsec_observed
from ovsnet.model import Changes
from ovsnet.ovsdb.client import OvsDb
from ovsnet.plaintext_guard import Guard, GuardState, desired_guard
from ovsnet.services.observed import observe_host


def host_after(host: ipsec_observed.ObservedHost, changes: Changes) -> ipsec_observed.ObservedHost:
    """The IPsec view of the host once `changes` are applied (tunnel changes and other_config)."""
    replaced = set(changes.remove_ports) | {spec.port for spec in changes.update_tunnels}
    tunnels = [t for t in host.tunnels if t.port not in replaced]
    tunnels += [
        ipsec_observed.ObservedTunnel(spec.port, spec.type, spec.options)
        for spec in [*changes.add_tunnels, *changes.update_tunnels]
    ]
    other_config = {**host.other_config, **changes.other_config}
    kept = {key: value for key, value in other_config.items() if value is not None}
    return ipsec_observed.ObservedHost(host.ovs_version, kept, tuple(tunnels))


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


def plan_guard(host: ipsec_observed.ObservedHost, changes: Changes) -> GuardChange | None:
    """What `changes` do to the guard; None when neither side has IPsec peers to guard (nft is
    not even run, and a plaintext `peer add` of 1,000 peers builds no second view)."""
    if not changes:
        return None
    if not host.drops_plaintext and not changes.other_config.get(ipsec_keys.SKB_MARK_KEY):
        return None  # no skb_mark before or after: nothing is guarded on either side
    wanted_before, wanted_after = desired_guard(host), desired_guard(host_after(host, changes))
    if not wanted_before and not wanted_after:
        return None
    return GuardChange(wanted_before, wanted_after, nftables.read_guard())


@contextmanager
def guarded(change: GuardChange | None, db: OvsDb) -> Iterator[None]:
    """Widen the guard, run the OVSDB change, then narrow it.

    Fail closed: the guard is narrowed only once the change is committed and applied. If the
    change fails, the transaction may have committed all the same (vswitchd slow to confirm,
    an interrupt while waiting for it), so the guard is not put back to what it was: it is
    recomputed from what OVSDB holds now, and left wide if OVSDB cannot be read. A SIGKILL at
    any point leaves the widened guard, which covers both the old and the new tunnels.
    """
    if change is None:
        yield
        return
    if change.current.needs(change.widened):
        nftables.write_guard(change.widened)
    checkpoint("guard:after-widened")
    try:
        yield
    except BaseException:
        _recompute(db)
        raise
    checkpoint("guard:after-ovsdb")
    if change.widened != change.after:
        nftables.write_guard(change.after)


def _recompute(db: OvsDb) -> None:
    try:
        wanted = desired_guard(observe_host(db))
        if nftables.read_guard().needs(wanted):
            nftables.write_guard(wanted)
    except (OvsnetError, OSError, subprocess.SubprocessError):
        pass  # the command's own error is the one to report; the guard stays wide (closed)


def restore_guard(db: OvsDb, dry_run: bool = False) -> list[str]:
    """Make the kernel's guard what OVSDB's IPsec tunnels need (reads OVSDB only: vswitchd may
    not run yet). The steps taken (or, with dry_run, to take), if any."""
    wanted, steps = reconcile_steps(observe_host(db))
    if steps and not dry_run:
        nftables.write_guard(wanted)
    return steps


def reconcile_steps(host: ipsec_observed.ObservedHost) -> tuple[Guard, list[str]]:
    """For `init`: the guard this host needs and the step to get there (none if in place)."""
    wanted = desired_guard(host)
    current = nftables.read_guard()
    return wanted, [wanted.describe()] if current.needs(wanted) else []


def heal_guard(db: OvsDb) -> list[str]:
    """Put the guard back where something removed or cut it (a firewall reload flushing the
    ruleset), never narrowing it. The step taken, if any."""
    target = plaintext_guard.repaired(desired_guard(observe_host(db)), nftables.read_guard())
    if target is None:
        return []
    nftables.write_guard(target)
    return [target.describe()]
