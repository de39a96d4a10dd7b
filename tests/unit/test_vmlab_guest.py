"""The lab's helpers for what tests do across VMs (pure parts: no VM is started)."""

from __future__ import annotations

import threading

from ovsnet.vmlab.guest import failures_of_every_pair


def test_every_ordered_pair_is_checked_once_and_at_once():
    vms = ["vm1", "vm2", "vm3"]
    seen, barrier = [], threading.Barrier(6, timeout=5)

    def check(src, dst):
        seen.append((src, dst))
        barrier.wait()  # breaks (and fails the test) unless all six checks run together
        return f"{src} -> {dst} lost" if dst == "vm3" else None

    failures = failures_of_every_pair(vms, check)
    assert sorted(seen) == [(a, b) for a in vms for b in vms if a != b]
    assert failures == ["vm1 -> vm3 lost", "vm2 -> vm3 lost"]


def test_no_vms_no_pairs_no_failures():
    assert failures_of_every_pair([], lambda src, dst: "never called") == []
