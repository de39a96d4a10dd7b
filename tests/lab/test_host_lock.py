"""One writer at a time per host, on real OVS and nftables in lab hosts: concurrent `init`s and
concurrent `peer add`s all land; a command that waits past the bound names the holder and
changes nothing. Also: IPsec on an OVS whose OVSDB has no ovs_version (not started by ovs-ctl),
and `status --check` that judges this host while `--check-peers` judges its peers."""

from __future__ import annotations

import json
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from ipaddress import IPv4Address

import pytest

from ovsnet.hostlock import host_lock
from ovsnet.lab import ovs
from tests.lab.crash_harness import (
    fake_docker0,
    guard_peers,
    host_problems,
    init_argv,
    ports,
    reset_host,
    write_psk,
)

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def pair(lab_factory_module, tmp_path_factory):
    lab = lab_factory_module(hosts=2, docker=False)
    psk = write_psk(tmp_path_factory.mktemp("psk"))
    for host in lab.hosts:
        fake_docker0(host)
        host.psk = psk
    return lab.hosts


@pytest.fixture
def a(pair):
    host = pair[0]
    reset_host(host)
    return host


def wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.3)


def test_concurrent_inits_all_succeed_and_leave_one_healthy_host(a):
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: a.ovsnet(*init_argv(a)), range(4)))
    assert [r.returncode for r in results] == [0] * 4, [r.stderr for r in results]
    assert a.vsctl("list-br").stdout.split().count("br0") == 1
    assert host_problems(a) == []


def test_concurrent_ipsec_peer_adds_all_land_in_ovsdb_and_in_the_guard(a):
    a.ovsnet(*init_argv(a), check=True)
    peers = [f"198.51.100.{70 + i}" for i in range(6)]

    def add(peer):
        return a.ovsnet("peer", "add", peer, "--ipsec", "--psk-file", str(a.psk))

    with ThreadPoolExecutor(len(peers)) as pool:
        results = list(pool.map(add, peers))
    assert [r.returncode for r in results] == [0] * len(peers), [r.stderr for r in results]
    assert guard_peers(a) == {IPv4Address(p) for p in peers}
    assert host_problems(a, set(peers)) == []


def test_a_command_waiting_past_the_bound_names_the_holder_and_changes_nothing(a):
    a.ovsnet(*init_argv(a), check=True)
    before = ports(a)
    with host_lock(a.db, holder="ovsnet test holder", wait=5):
        started = time.monotonic()
        done = a.ovsnet("--lock-wait", "1", "peer", "add", "198.51.100.90")
        waited = time.monotonic() - started
        # Read-only commands take no lock.
        assert a.ovsnet("peer", "list").returncode == 0
        assert a.ovsnet("status", "--check").returncode == 0
    assert done.returncode == 3, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert f"pid {os.getpid()} (ovsnet test holder" in line, line
    assert "another ovsnet process is changing this host" in line
    assert 1 <= waited < 15
    assert ports(a) == before
    # The holder is gone: the same command goes through.
    a.ovsnet("--lock-wait", "1", "peer", "add", "198.51.100.90", check=True)


def test_ipsec_works_on_an_ovs_whose_ovsdb_has_no_ovs_version(a):
    """ovs-ctl writes ovs_version, ovs-vswitchd does not: ovsnet asks the running daemon."""
    a.ovsnet(*init_argv(a), check=True)
    a.vsctl("clear", "Open_vSwitch", ".", "ovs_version")
    try:
        assert a.vsctl("get", "Open_vSwitch", ".", "ovs_version").stdout.strip() == "[]"
        done = a.ovsnet("peer", "add", "198.51.100.91", "--ipsec", "--psk-file", str(a.psk))
        assert done.returncode == 0, done.stderr
        assert a.ovsnet("ipsec", "psk", "set", "--file", str(a.psk)).returncode == 0
        status = json.loads(a.ovsnet("--json", "status", check=True).stdout)
        assert status["ovs_version"] == ovs.ovs_version()
    finally:
        a.vsctl("set", "Open_vSwitch", ".", f"ovs_version={ovs.ovs_version()}")
        a.ovsnet("ipsec", "psk", "unset", check=True)


def test_a_dead_peer_fails_check_peers_but_not_check(pair):
    """b's ovs-vswitchd dies: b is unhealthy and says why; a only sees a peer down. (Last test
    of the module: b stays without its vswitchd until the lab goes.)"""
    a, b = pair
    for host, other in ((a, b), (b, a)):
        reset_host(host)
        host.ovsnet(*init_argv(host), check=True)
        host.ovsnet("peer", "add", other.underlay_ip, check=True)

    def peer_state():
        return json.loads(a.ovsnet("--json", "peer", "list", check=True).stdout)[0]["state"]

    wait_until(lambda: peer_state() == "up", 30, "BFD up between the two hosts")
    assert a.ovsnet("status", "--check-peers").returncode == 0
    vswitchd = ovs.pids(b.layout)["ovs-vswitchd"]
    os.kill(vswitchd, signal.SIGTERM)  # a lab daemon this test's lab started
    wait_until(lambda: not os.path.exists(f"/proc/{vswitchd}"), 10, "b's vswitchd to exit")
    own = b.ovsnet("status", "--check")
    assert own.returncode == 1 and "ovs-vswitchd does not answer" in own.stderr, own.stderr
    wait_until(lambda: peer_state() == "down", 30, "a to see b down")
    check = a.ovsnet("status", "--check")
    assert check.returncode == 0, check.stderr
    peers = a.ovsnet("status", "--check-peers")
    assert peers.returncode == 1
    (line,) = peers.stderr.strip().splitlines()
    assert f"peer {b.underlay_ip} is down" in line
