"""The plaintext guard on real nftables in lab hosts: plain GRE to and from an IPsec peer is
dropped by the kernel whatever the IKE daemon does, and only while that peer is an IPsec peer.

This kernel has no GRE or ESP, but its netfilter sees raw IP protocol-47 packets exactly as it
sees the kernel datapath's GRE: the probes below are real packets between two lab hosts.
(The same guard against a stopped charon, with kernel GRE and ESP, is in tests/vm.)
"""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path

import pytest

from tests.lab.crash_harness import PSK, write_psk

pytestmark = pytest.mark.lab

PROBE = b"\x00\x00\x65\x58ovsnet-plaintext-probe"  # GRE header (Transparent Ethernet) + marker

_SEND = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, 47)
sent = 0
for _ in range(3):
    try:
        s.sendto(bytes.fromhex(sys.argv[2]), (sys.argv[1], 0))
        sent += 1
    except PermissionError:  # netfilter dropped it in OUTPUT
        pass
print(sent)
"""

_RECEIVE = """
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, 47)
s.settimeout(0.2)
print('ready', flush=True)
seen, deadline = 0, time.monotonic() + float(sys.argv[2])
while time.monotonic() < deadline:
    try:
        data, (src, _) = s.recvfrom(2048)
    except socket.timeout:
        continue
    if src == sys.argv[1] and bytes.fromhex(sys.argv[3]) in data:
        seen += 1
print(seen)
"""


def send_plain_gre(sender, receiver) -> tuple[int, int]:
    """(probes the sender's kernel let out, probes the receiver's sockets got)."""
    received: list[str] = []

    def listen():
        done = receiver.run([sys.executable, "-c", _RECEIVE, sender.underlay_ip, "2.5",
                             PROBE.hex()], timeout=30)  # fmt: skip
        received.append(done.stdout.split()[-1])

    listener = threading.Thread(target=listen)
    listener.start()
    threading.Event().wait(0.8)  # the listener's interpreter starts in well under that
    sent = sender.run([sys.executable, "-c", _SEND, receiver.underlay_ip,
                       PROBE.hex()], timeout=30).stdout.strip()  # fmt: skip
    listener.join()
    return int(sent), int(received[0])


@pytest.fixture(scope="module")
def pair(lab_factory_module):
    lab = lab_factory_module(hosts=2, docker=False)
    a, b = lab.hosts
    # No dockerd needed here: a bridge with Docker's address stands in for docker0.
    mask = a.supernet.split("/")[1]
    a.run(["ip", "link", "add", "docker0", "type", "bridge"])
    a.run(["ip", "address", "add", f"{a.gateway}/{mask}", "dev", "docker0"])
    a.ovsnet("init", "--prefix", a.prefix, "--datapath", "netdev", "--no-docker-check",
             check=True)  # fmt: skip
    return a, b


@pytest.fixture
def psk_file(tmp_path) -> Path:
    return write_psk(tmp_path)


@pytest.fixture
def clean(pair):
    yield pair
    a, _ = pair
    listed = json.loads(a.ovsnet("--json", "peer", "list", check=True).stdout)
    if listed:
        a.ovsnet("peer", "remove", *[p["remote_ip"] for p in listed], check=True)
    a.vsctl("remove", "Open_vSwitch", ".", "other_config", "ipsec_skb_mark")
    a.run(["nft", "delete", "table", "inet", "ovsnet"], check=False)


def guard_table(host) -> str | None:
    done = host.run(["nft", "list", "table", "inet", "ovsnet"], check=False)
    return done.stdout if done.returncode == 0 else None


def status(host) -> dict:
    return json.loads(host.ovsnet("--json", "status").stdout)


def test_ipsec_peer_is_guarded_both_ways_until_removed(clean, psk_file):
    a, b = clean
    assert send_plain_gre(a, b) == (3, 3), "without IPsec peers, plain GRE crosses"
    done = a.ovsnet("--json", "peer", "add", b.underlay_ip, "--ipsec", "--psk-file", str(psk_file))
    assert done.returncode == 0, done.stderr
    assert any("drop unencrypted tunnel traffic" in s for s in json.loads(done.stdout)["steps"])
    assert b.underlay_ip in guard_table(a)
    assert PSK not in guard_table(a)
    assert send_plain_gre(a, b) == (0, 0), "plain GRE to an IPsec peer must not leave"
    guard = status(a)["plaintext_guard"]
    assert guard == {"peers": 1, "in_place": True, "dropped_packets": 3}, guard
    again = a.ovsnet("--json", "peer", "add", b.underlay_ip, "--ipsec", "--psk-file",
                     str(psk_file), check=True)  # fmt: skip
    assert json.loads(again.stdout)["changed"] is False
    a.ovsnet("peer", "remove", b.underlay_ip, check=True)
    assert guard_table(a) is None
    assert send_plain_gre(a, b) == (3, 3)


def test_guard_drops_plain_gre_arriving_from_a_guarded_peer(pair):
    """Inbound, on a host whose OVS has no tunnel of its own to the sender (here OVS's userspace
    datapath would take the packet before the kernel; the kernel datapath hands it to the
    kernel's GRE, behind the guard): plaintext with an IPsec peer's address is dropped."""
    a, b = pair
    write = ("from ipaddress import IPv4Address as A; from ovsnet import nftables; "
             "from ovsnet.plaintext_guard import Guard; "
             f"nftables.write_guard(Guard(frozenset({{A('{a.underlay_ip}')}})))")  # fmt: skip
    b.run([sys.executable, "-c", write])
    try:
        assert send_plain_gre(a, b) == (3, 0)
        assert "counter packets 3 " in guard_table(b)
    finally:
        b.run(["nft", "delete", "table", "inet", "ovsnet"], check=False)
    assert send_plain_gre(a, b) == (3, 3)


def test_dry_run_and_allow_plaintext_install_no_guard(clean, psk_file):
    a, b = clean
    dry = a.ovsnet("--json", "peer", "add", b.underlay_ip, "--ipsec", "--psk-file",
                   str(psk_file), "--dry-run", check=True)  # fmt: skip
    assert any("drop unencrypted tunnel traffic" in s for s in json.loads(dry.stdout)["steps"])
    assert guard_table(a) is None
    a.ovsnet("peer", "add", b.underlay_ip, "--ipsec", "--psk-file", str(psk_file),
             "--allow-plaintext", check=True)  # fmt: skip
    assert guard_table(a) is None
    assert "plaintext_guard" not in status(a) or status(a)["plaintext_guard"] is None


def test_status_flags_a_lost_guard_and_init_restores_it(clean, psk_file):
    a, b = clean
    a.ovsnet("peer", "add", b.underlay_ip, "--ipsec", "--psk-file", str(psk_file), check=True)
    a.run(["nft", "delete", "table", "inet", "ovsnet"])  # as after a reboot or a flush
    check = a.ovsnet("status", "--check")
    assert check.returncode != 0
    assert "plaintext guard is missing" in check.stdout + check.stderr
    assert send_plain_gre(a, b)[1] == 3, "the lost guard really lets plaintext out"
    healed = a.ovsnet("--json", "init", "--prefix", a.prefix, "--datapath", "netdev",
                      "--no-docker-check", check=True)  # fmt: skip
    assert any("drop unencrypted" in s for s in json.loads(healed.stdout)["steps"])
    after = status(a)
    assert after["plaintext_guard"]["in_place"] is True
    assert not [p for p in after["problems"] if "guard" in p], after["problems"]
    assert send_plain_gre(a, b) == (0, 0)


def test_plaintext_restore_puts_back_exactly_the_guard_ovsdb_asks_for(clean, psk_file):
    """What the rendered ovs-vswitchd drop-in runs at boot (the VM lab runs it before vswitchd)."""
    a, b = clean
    quiet = json.loads(a.ovsnet("--json", "ipsec", "plaintext", "restore", check=True).stdout)
    assert quiet["changed"] is False and guard_table(a) is None, "no IPsec peer: nothing to do"
    a.ovsnet("peer", "add", b.underlay_ip, "--ipsec", "--psk-file", str(psk_file), check=True)
    a.run(["nft", "delete", "table", "inet", "ovsnet"])  # as after a reboot
    dry = json.loads(a.ovsnet("--json", "ipsec", "plaintext", "restore", "--dry-run",
                              check=True).stdout)  # fmt: skip
    assert dry["dry_run"] is True and dry["steps"] and guard_table(a) is None, dry
    done = json.loads(a.ovsnet("--json", "ipsec", "plaintext", "restore", check=True).stdout)
    assert done["changed"] is True, done
    assert b.underlay_ip in guard_table(a)
    assert send_plain_gre(a, b) == (0, 0)
    again = json.loads(a.ovsnet("--json", "ipsec", "plaintext", "restore", check=True).stdout)
    assert again["changed"] is False, again


def test_plaintext_allow_lifts_the_guard_and_drop_restores_it(clean, psk_file):
    a, b = clean
    a.ovsnet("peer", "add", b.underlay_ip, "--ipsec", "--psk-file", str(psk_file), check=True)
    a.ovsnet("ipsec", "plaintext", "allow", check=True)
    assert guard_table(a) is None
    a.ovsnet("ipsec", "plaintext", "drop", check=True)
    assert b.underlay_ip in guard_table(a)


def test_ipsec_repair_runs_only_behind_the_guard(clean, psk_file):
    a, b = clean
    refused = a.ovsnet("ipsec", "repair")
    assert refused.returncode == 3 and "no IPsec tunnel" in refused.stderr, refused.stderr
    a.ovsnet("peer", "add", b.underlay_ip, "--ipsec", "--psk-file", str(psk_file), check=True)
    # No ovs-monitor-ipsec here: the per-peer view is missing, the whole-daemon repair is not.
    dry = a.ovsnet("--json", "ipsec", "repair", "--restart-daemon", "--dry-run", check=True)
    dry = json.loads(dry.stdout)
    assert dry["peers"] == [b.underlay_ip] and dry["dry_run"] is True, dry
    refused = a.ovsnet("ipsec", "repair", b.underlay_ip)
    assert refused.returncode == 3 and "ovs-monitor-ipsec" in refused.stderr, refused.stderr
    a.run(["nft", "delete", "table", "inet", "ovsnet"])
    refused = a.ovsnet("ipsec", "repair")
    assert refused.returncode == 3, refused.stderr
    assert "guard is not in place" in refused.stderr and "Traceback" not in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1


def test_removing_an_ipsec_peer_clears_its_kernel_policies_and_no_others(clean, psk_file):
    """What charon leaves for a removed tunnel (a duplicate IKE SA's policies, seen in the VM
    lab) goes with the tunnel; a policy for other traffic to the same address stays. No charon
    runs here, so the leftover is put in place by hand."""
    a, b = clean
    a.ovsnet("peer", "add", b.underlay_ip, "--ipsec", "--psk-file", str(psk_file), check=True)
    selector = ["src", f"{a.underlay_ip}/32", "dst", f"{b.underlay_ip}/32"]
    template = ["tmpl", "proto", "esp", "mode", "transport"]
    a.run(["ip", "xfrm", "policy", "add", "dir", "out", *selector, "proto", "gre", *template],
          check=True)  # fmt: skip
    a.run(["ip", "xfrm", "policy", "add", "dir", "out", *selector, "proto", "tcp", *template],
          check=True)  # fmt: skip
    try:
        done = a.ovsnet("--json", "peer", "remove", b.underlay_ip, check=True)
        steps = json.loads(done.stdout)["steps"]
        assert f"clear the kernel's IPsec state for {b.underlay_ip}" in steps, steps
        left = a.run(["ip", "xfrm", "policy", "list", "dst", f"{b.underlay_ip}/32"]).stdout
        assert "proto gre" not in left and "proto tcp" in left, left
    finally:
        a.run(["ip", "xfrm", "policy", "deleteall", "dst", f"{b.underlay_ip}/32"], check=False)
