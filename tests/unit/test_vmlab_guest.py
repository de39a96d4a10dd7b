"""The lab's helpers for what tests do across VMs (pure parts: no VM is started)."""

from __future__ import annotations

import threading

from ovsnet.vmlab.guest import failures_of_every_pair, parse_keyed_esp_pairs


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


LISTING = """\
src 198.51.100.11 dst 198.51.100.12
\tproto esp spi 0xc1a2b3c4 reqid 1 mode transport
\treplay-window 0 flag af-unspec
\taead rfc4106(gcm(aes)) 0x00 128
\tsel src 198.51.100.11/32 dst 198.51.100.12/32 proto gre
src 198.51.100.13 dst 198.51.100.11
\tproto esp spi 0xc5a6b7c8 reqid 2 mode tunnel
\treplay-window 32 flag af-unspec
\tenc cbc(aes) 0x00
src 198.51.100.12 dst 198.51.100.11
\tproto esp spi 0x00000000 reqid 1 mode transport
\treplay-window 0
\tsel src 198.51.100.12/32 dst 198.51.100.11/32 proto gre
"""


def test_only_keyed_transport_sas_count_as_the_tunnels():
    # The tunnel-mode SA is the monitor's shunt; the larval state (no algorithm) carries nothing.
    assert parse_keyed_esp_pairs(LISTING) == {("198.51.100.11", "198.51.100.12")}


def test_any_mode_counts_keyed_tunnel_mode_sas_too():
    assert parse_keyed_esp_pairs(LISTING, None) == {
        ("198.51.100.11", "198.51.100.12"),
        ("198.51.100.13", "198.51.100.11"),
    }
