"""The lab's helpers for what tests do across VMs (pure parts: no VM is started)."""

from __future__ import annotations

import threading

from ovsnet.vmlab.guest import failures_of_every_pair


def test_every_ordered_pair_is_checked_once_the_sources_at_once():
    vms = ["vm1", "vm2", "vm3"]
    seen, running = [], set()
    barrier = threading.Barrier(3, timeout=5)  # breaks (and fails) unless the 3 sources overlap

    def check(src, dst):
        assert src not in running, f"two checks from {src} at once"
        running.add(src)
        seen.append((src, dst))
        if dst == min(vm for vm in vms if vm != src):
            barrier.wait()
        running.discard(src)
        return f"{src} -> {dst} lost" if dst == "vm3" else None

    failures = failures_of_every_pair(vms, check)
    assert sorted(seen) == [(a, b) for a in vms for b in vms if a != b]
    assert failures == ["vm1 -> vm3 lost", "vm2 -> vm3 lost"]


def test_no_vms_no_pairs_no_failures():
    assert failures_of_every_pair([], lambda src, dst: "never called") == []
