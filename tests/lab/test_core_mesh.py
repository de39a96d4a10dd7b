"""The core on the netns lab: 3 hosts, real OVS (userspace datapath), real dockerd.

One lab for the module, built by `mesh`. Each test stands alone and can run in any order or by
itself: the tests that break the mesh on purpose (Docker restart, peer remove, reset) use
`restored_mesh`, which builds it back afterwards with the same idempotent commands. Each test
checks through the system (OVSDB, addresses, packets), not through ovsnet's own output.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import time

import pytest

pytestmark = [pytest.mark.lab, pytest.mark.slow]

TEN_MB = 10 * 1024 * 1024


@pytest.fixture(scope="module")
def mesh(lab3):
    """lab3 with `init` on every host, a full `peer add` mesh and one container per host."""
    build_mesh(lab3)
    containers = {host.name: host.start_container() for host in lab3.hosts}
    return lab3, containers


def build_mesh(lab) -> None:
    """`init` and a full `peer add` on every host (idempotent: a no-op on an intact mesh)."""
    for host in lab.hosts:
        host.ovsnet("init", "--prefix", host.prefix, "--datapath", "netdev", check=True)
    for host in lab.hosts:
        others = [h.underlay_ip for h in lab.hosts if h is not host]
        host.ovsnet("peer", "add", *others, check=True)


@pytest.fixture
def restored_mesh(mesh):
    """`mesh` for a test that breaks it: afterwards every host is back in the full mesh and
    every container's cached address is fresh."""
    yield mesh
    lab, containers = mesh
    build_mesh(lab)
    for container in containers.values():
        container.refresh()


def ovsdb_snapshot(host) -> str:
    """Every row ovsnet may touch, as ovs-vsctl sees it (independent of ovsnet's IDL)."""
    out = []
    for table in ("Bridge", "Port", "Interface"):
        columns = {
            "Bridge": "name,datapath_type,ports,external_ids",
            "Port": "name,interfaces,protected,external_ids",
            "Interface": "name,type,options,bfd,mtu_request,external_ids",
        }[table]
        out.append(host.vsctl("--format=json", f"--columns={columns}", "list", table).stdout)
    return "\n".join(sorted(out))


def addresses(host) -> str:
    return host.run(["ip", "-4", "-o", "addr"]).stdout


def ipv4(host, device: str) -> list[str]:
    """The IPv4 addresses (CIDR) on one device, read with iproute2."""
    out = host.run(["ip", "-4", "-o", "addr", "show", "dev", device]).stdout
    return [line.split()[3] for line in out.splitlines()]


def wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def tcp_transfer(sender, receiver, nbytes: int, port: int = 5201) -> int:
    """Send nbytes from one container's netns to another's; return bytes the receiver got."""
    listen = (
        "import socket,sys\n"
        "s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
        f"s.bind(('0.0.0.0',{port})); s.listen(1); print('ready', flush=True)\n"
        "c,_=s.accept(); n=0\n"
        "while True:\n"
        "    b=c.recv(1<<16)\n"
        "    if not b: break\n"
        "    n+=len(b)\n"
        "print(n)\n"
    )
    send = (
        "import socket\n"
        f"s=socket.create_connection(('{receiver.ip}',{port}), timeout=20)\n"
        f"s.sendall(b'x'*{nbytes}); s.close()\n"
    )
    nsenter = ["nsenter", "-t"]
    with subprocess.Popen(
        [*nsenter, str(receiver.pid), "-n", sys.executable, "-c", listen],
        stdout=subprocess.PIPE,
        text=True,
    ) as server:
        try:
            assert server.stdout.readline().strip() == "ready"
            subprocess.run(
                [*nsenter, str(sender.pid), "-n", sys.executable, "-c", send],
                check=True,
                timeout=60,
            )
            out, _ = server.communicate(timeout=60)
        finally:
            server.kill()
    return int(out.strip().splitlines()[-1])


def test_init_builds_the_bridge_in_ovsdb_and_moves_the_address(mesh):
    lab, _ = mesh
    for host in lab.hosts:
        bridge = host.vsctl("get", "Bridge", "br0", "datapath_type").stdout.strip()
        assert bridge == "netdev"
        assert "docker0" in host.vsctl("list-ports", "br0").stdout.split()
        assert host.vsctl("get", "Interface", "br0", "mtu_request").stdout.strip() == "1462"
        gateway = f"{host.prefix}.1/8"
        assert ipv4(host, "br0") == [gateway]
        assert ipv4(host, "docker0") == []


def test_tunnels_are_protected_with_bfd_and_tagged(mesh):
    lab, _ = mesh
    for host in lab.hosts:
        peers = [h.underlay_ip for h in lab.hosts if h is not host]
        listed = json.loads(host.ovsnet("--json", "peer", "list", check=True).stdout)
        assert sorted(p["remote_ip"] for p in listed) == sorted(peers)
        for peer in listed:
            port = peer["port"]
            assert len(port) <= 15
            assert host.vsctl("get", "Port", port, "protected").stdout.strip() == "true"
            assert host.vsctl("get", "Interface", port, "bfd:enable").stdout.strip() == '"true"'
            remote = host.vsctl("get", "Interface", port, "options:remote_ip").stdout.strip()
            assert remote.strip('"') == peer["remote_ip"]
            ids = host.vsctl("get", "Port", port, "external_ids:ovsnet-peer").stdout.strip()
            assert ids.strip('"') == peer["remote_ip"]


def test_every_container_pings_every_other(mesh):
    _, containers = mesh
    for a, b in itertools.permutations(containers.values(), 2):
        assert a.ping(b.ip, count=3), f"{a} cannot reach {b}"


def test_bfd_comes_up_on_every_tunnel(mesh):
    lab, _ = mesh

    def all_up():
        for host in lab.hosts:
            peers = json.loads(host.ovsnet("--json", "peer", "list", check=True).stdout)
            if any(p["bfd_state"] != "up" for p in peers):
                return False
        return True

    wait_until(all_up, 30, "BFD up on all tunnels")


def test_ten_megabytes_cross_hosts_without_an_mtu_black_hole(mesh):
    _, containers = mesh
    sender, receiver = containers["h1"], containers["h3"]
    assert tcp_transfer(sender, receiver, TEN_MB) == TEN_MB


def test_idle_mesh_does_not_loop(mesh):
    lab, _ = mesh
    before = [h.datapath_lookups() for h in lab.hosts]
    time.sleep(3)
    after = [h.datapath_lookups() for h in lab.hosts]
    rates = [(b - a) / 3 for a, b in zip(before, after, strict=True)]
    # An idle mesh sees BFD and the odd ARP; a broadcast storm is ~10^4-10^5 lookups/s.
    assert max(rates) < 200, f"datapath lookups per second per host: {rates}"


def test_second_init_and_peer_add_change_nothing(mesh):
    lab, _ = mesh
    for host in lab.hosts:
        snapshot, addrs = ovsdb_snapshot(host), addresses(host)
        init = host.ovsnet("--json", "init", "--prefix", host.prefix, "--datapath", "netdev")
        assert init.returncode == 0, init.stderr
        assert json.loads(init.stdout)["changed"] is False
        others = [h.underlay_ip for h in lab.hosts if h is not host]
        peer = host.ovsnet("--json", "peer", "add", *others)
        assert peer.returncode == 0, peer.stderr
        assert json.loads(peer.stdout)["changed"] is False
        assert ovsdb_snapshot(host) == snapshot
        assert addresses(host) == addrs
        text = host.ovsnet("init", "--prefix", host.prefix, "--datapath", "netdev")
        assert "nothing to do" in text.stdout


def test_docker_restart_is_healed_by_init(restored_mesh):
    lab, containers = restored_mesh
    host = lab.hosts[1]
    host.restart_docker()
    wait_until(
        lambda: f"{host.prefix}.1/8" in ipv4(host, "docker0"),
        30,
        "Docker to put the gateway back on docker0",
    )
    status = json.loads(host.ovsnet("--json", "status").stdout)
    assert any("Docker restarted" in problem for problem in status["problems"])
    healed = host.ovsnet("init", "--prefix", host.prefix, "--datapath", "netdev")
    assert healed.returncode == 0, healed.stderr
    moved = containers[host.name].refresh()
    for other in containers.values():
        if other is not moved:
            assert moved.ping(other.ip, count=3), f"{moved} cannot reach {other} after heal"
            assert other.ping(moved.ip, count=3), f"{other} cannot reach {moved} after heal"


def test_peer_remove_removes_exactly_that_tunnel(restored_mesh):
    lab, _ = restored_mesh
    host, gone, kept = lab.hosts[0], lab.hosts[1], lab.hosts[2]
    ports_before = set(host.vsctl("list-ports", "br0").stdout.split())
    done = host.ovsnet("peer", "remove", gone.underlay_ip)
    assert done.returncode == 0, done.stderr
    ports_after = set(host.vsctl("list-ports", "br0").stdout.split())
    assert len(ports_before - ports_after) == 1
    assert ports_after < ports_before
    listed = json.loads(host.ovsnet("--json", "peer", "list", check=True).stdout)
    assert [p["remote_ip"] for p in listed] == [kept.underlay_ip]
    again = host.ovsnet("--json", "peer", "remove", gone.underlay_ip)
    assert json.loads(again.stdout)["changed"] is False


def test_reset_gives_docker0_back_and_local_containers_still_talk(restored_mesh):
    lab, containers = restored_mesh
    host = lab.hosts[2]
    second = host.start_container()
    try:
        first = containers[host.name].refresh()
        done = host.ovsnet("reset")
        assert done.returncode == 0, done.stderr
        assert host.vsctl("list-br").stdout.split() == ["br-phy"]
        assert ipv4(host, "docker0") == [f"{host.prefix}.1/8"]
        assert host.run(["ip", "link", "show", "br0"], check=False).returncode != 0
        assert first.ping(second.ip, count=3)
        assert first.ping(f"{host.prefix}.1", count=3)
        again = host.ovsnet("--json", "reset")
        assert json.loads(again.stdout)["changed"] is False
    finally:
        second.remove()
