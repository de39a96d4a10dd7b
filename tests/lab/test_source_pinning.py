"""Source pinning on the netns lab: 2 hosts, real OVS (userspace datapath), real dockerd.

A container may send only from its host's subnet, and a tunnel carries only its peer's subnet:
a container (or a whole host) sending as another host's container is dropped, while the
legitimate traffic between containers keeps every reply. Checked through OVS's own flow table
and counters (`ovs-ofctl dump-flows`), not through ovsnet's output.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time

import pytest

from ovsnet.antispoof import ALLOW_PRIORITY, BROADCAST_BURST, COOKIE, DROP_PRIORITY, METER_ID

pytestmark = [pytest.mark.lab, pytest.mark.slow]

OURS = f"cookie={COOKIE:#x}/-1"
FOREIGN = "cookie=0x1234,priority=5,udp,tp_dst=9,actions=NORMAL"

# Sent from inside a container's network namespace: a gratuitous ARP and a UDP packet, both
# broadcast (so they flood toward every host) and both claiming another container's address.
SPOOF = r"""
import socket, struct, sys
mac, claimed, target, count = bytes.fromhex(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
spa, dst = socket.inet_aton(claimed), socket.inet_aton(target)
bcast = b"\xff" * 6
arp = bcast + mac + b"\x08\x06" + struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + mac + spa \
    + b"\x00" * 6 + spa
udp = struct.pack("!HHHH", 9999, 9, 8 + 4, 0) + b"spoo"
header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0, spa, dst)
words = struct.unpack("!10H", header)
total = sum(words)
total = (total & 0xFFFF) + (total >> 16)
total = (total & 0xFFFF) + (total >> 16)
header = header[:10] + struct.pack("!H", ~total & 0xFFFF) + header[12:]
ip = bcast + mac + b"\x08\x00" + header + udp
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("eth0", 0))
for _ in range(count):
    s.send(arp.ljust(60, b"\x00"))
    s.send(ip.ljust(60, b"\x00"))
"""


def ofctl(host, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """ovs-ofctl [-O VERSION] COMMAND <host's br0> ARGS."""
    version = list(args[:2]) if args[0] == "-O" else []
    command, *rest = args[len(version) :]
    target = f"unix:{host.rundir}/br0.mgmt"
    return subprocess.run(["ovs-ofctl", "--no-names", *version, command, target, *rest],
                          capture_output=True, text=True, check=check, timeout=30)  # fmt: skip


def drops(host, ofport: int) -> dict[str, int]:
    """Packets counted by ovsnet's drop flows for one port, per protocol."""
    counts = {}
    for line in ofctl(host, "dump-flows", OURS).stdout.splitlines():
        pattern = rf"n_packets=(\d+).*priority={DROP_PRIORITY},(ip|arp),in_port={ofport} "
        found = re.search(pattern, line)
        if found:
            counts[found.group(2)] = int(found.group(1))
    return counts


def dropped_at_least(host, ofport: int, before: dict[str, int], count: int) -> bool:
    """Whether both drop flows counted `count` more packets (datapath flow statistics reach
    the OpenFlow counters through the revalidators, within a second or so: poll)."""
    deadline = time.monotonic() + 10
    while True:
        now = drops(host, ofport)
        if all(now[proto] - before.get(proto, 0) >= count for proto in ("ip", "arp")):
            return True
        if time.monotonic() > deadline:
            print("drop counters", before, "->", now)
            return False
        time.sleep(0.3)


def ofport(host, name: str) -> int:
    return int(host.vsctl("get", "Interface", name, "ofport").stdout)


def tunnel_port(host, peer) -> str:
    peers = json.loads(host.ovsnet("--json", "peer", "list", check=True).stdout)
    return next(p["port"] for p in peers if p["remote_ip"] == peer.underlay_ip)


def spoof(container, claimed: str, target: str, count: int = 5) -> None:
    mac = container.mac.replace(":", "")
    argv = ["nsenter", "-t", str(container.pid), "-n", sys.executable, "-c", SPOOF,
            mac, claimed, target, str(count)]  # fmt: skip
    subprocess.run(argv, check=True, capture_output=True, timeout=30)


def warnings(host) -> list[str]:
    return json.loads(host.ovsnet("--json", "status", check=True).stdout)["warnings"]


def neighbour_mac(host, ip: str) -> str | None:
    out = host.run(["ip", "neigh", "show", ip, "dev", "br0"]).stdout.split()
    return out[out.index("lladdr") + 1] if "lladdr" in out else None


@pytest.fixture(scope="module")
def pinned(lab_factory_module):
    """Two hosts, each `init`ed, peered with --subnet both ways, one container each."""
    lab = lab_factory_module(hosts=2)
    h1, h2 = lab.hosts
    for host in lab.hosts:
        host.ovsnet("init", "--prefix", host.prefix, "--datapath", "netdev", check=True)
    for host, other in ((h1, h2), (h2, h1)):
        host.ovsnet("peer", "add", other.underlay_ip, "--subnet", other.subnet, check=True)
    containers = [host.start_container() for host in lab.hosts]
    return lab, containers


def test_legitimate_traffic_keeps_every_reply(pinned):
    lab, (c1, c2) = pinned
    h1, h2 = lab.hosts
    assert c1.ping(c2.ip) and c2.ping(c1.ip)
    assert c1.ping(h2.gateway) and c2.ping(h1.gateway) and c1.ping(h1.gateway)


def test_status_says_which_peers_are_pinned(pinned):
    lab, _ = pinned
    h1, h2 = lab.hosts
    peers = json.loads(h1.ovsnet("--json", "status", check=True).stdout)["peers"]
    assert [(p["remote_ip"], p["sources_pinned"], p["subnet"]) for p in peers] == [
        (h2.underlay_ip, True, h2.subnet)
    ]


def test_container_sending_as_another_hosts_container_is_dropped_at_its_host(pinned):
    lab, (c1, c2) = pinned
    h1, h2 = lab.hosts
    docker = ofport(h1, "docker0")
    before = drops(h1, docker)
    spoof(c1, c2.ip, h2.gateway)
    assert dropped_at_least(h1, docker, before, 5)
    assert neighbour_mac(h2, c2.ip) != c1.mac
    assert c1.ping(c2.ip)


def test_compromised_host_cannot_send_as_another_hosts_container(pinned):
    """h1 without its own rules (as a compromised host would be): h2's tunnel rules drop it;
    `ovsnet init` on h1 puts h1's rules back (as after an ovs-vswitchd restart)."""
    lab, (c1, c2) = pinned
    h1, h2 = lab.hosts
    tunnel = ofport(h2, tunnel_port(h2, h1))
    ofctl(h1, "del-flows", OURS)
    assert any("source-pinning flows differ" in w for w in warnings(h1))
    try:
        before = drops(h2, tunnel)
        spoof(c1, c2.ip, h2.gateway)
        assert dropped_at_least(h2, tunnel, before, 5)
        assert neighbour_mac(h2, c2.ip) != c1.mac
        assert c1.ping(c2.ip) and c2.ping(c1.ip)
    finally:
        h1.ovsnet("init", "--prefix", h1.prefix, "--datapath", "netdev", check=True)
    assert drops(h1, ofport(h1, "docker0")) == {"ip": 0, "arp": 0}  # back, freshly installed
    assert not any("source-pinning" in w for w in warnings(h1))


def meter_drops(host, meter: int) -> int:
    """Packets the meter's drop band dropped."""
    out = ofctl(host, "-O", "OpenFlow13", "meter-stats", f"meter={meter}").stdout
    found = re.search(r"0: packet_count:(\d+)", out)
    assert found, out
    return int(found.group(1))


def test_a_broadcast_flood_from_a_peer_is_bounded_by_its_meter(pinned):
    """A container floods broadcasts from its own (allowed) address: its host lets them out,
    the receiving host's meter on that tunnel drops what exceeds the rate; unicast is not
    metered and every ping is still answered."""
    lab, (c1, c2) = pinned
    h1, h2 = lab.hosts
    meter = METER_ID
    before = meter_drops(h2, meter)
    spoof(c1, c1.ip, "255.255.255.255", count=3 * BROADCAST_BURST)
    deadline = time.monotonic() + 10
    while meter_drops(h2, meter) == before and time.monotonic() < deadline:
        time.sleep(0.3)
    assert meter_drops(h2, meter) > before
    assert c1.ping(c2.ip) and c2.ping(c1.ip)


def test_peer_commands_touch_only_ovsnets_flows_and_a_rerun_changes_nothing(pinned):
    lab, (c1, c2) = pinned
    h1, h2 = lab.hosts
    ofctl(h2, "add-flow", FOREIGN)
    try:
        h2.ovsnet("peer", "remove", h1.underlay_ip, check=True)
        pinned_ports = set(re.findall(r"in_port=(\d+)", ofctl(h2, "dump-flows", OURS).stdout))
        assert pinned_ports == {str(ofport(h2, "docker0"))}  # the tunnel's rules went with it
        h2.ovsnet("peer", "add", h1.underlay_ip, "--subnet", h1.subnet, check=True)
        again = h2.ovsnet("--json", "peer", "add", h1.underlay_ip, "--subnet", h1.subnet,
                          check=True)  # fmt: skip
        assert not any("pin" in step for step in json.loads(again.stdout)["steps"])
        foreign = ofctl(h2, "dump-flows", "cookie=0x1234/-1").stdout
        assert "tp_dst=9" in foreign
        assert c1.ping(c2.ip) and c2.ping(c1.ip)
    finally:
        ofctl(h2, "del-flows", "cookie=0x1234/-1", check=False)


def allowed(host, ofport: int) -> int:
    """Packets counted by ovsnet's flow allowing IPv4 from one port (0 if it is missing)."""
    pattern = rf"n_packets=(\d+).*priority={ALLOW_PRIORITY},ip,in_port={ofport},"
    for line in ofctl(host, "dump-flows", OURS).stdout.splitlines():
        if found := re.search(pattern, line):
            return int(found.group(1))
    return 0


def test_another_peers_change_leaves_the_other_flows_and_their_counters(pinned):
    """A change sends only the flows that differ: the flows of the tunnels it does not touch
    stay installed as they were (a re-installed flow would count from zero again)."""
    lab, (c1, c2) = pinned
    h1, h2 = lab.hosts
    port = ofport(h2, tunnel_port(h2, h1))
    assert c1.ping(c2.ip)
    deadline = time.monotonic() + 10  # the revalidators bring datapath counts to OpenFlow
    while (counted := allowed(h2, port)) == 0 and time.monotonic() < deadline:
        time.sleep(0.3)
    assert counted > 0
    h2.ovsnet("peer", "add", "203.0.113.77", "--subnet", "10.0.77.0/24", check=True)
    try:
        assert allowed(h2, port) >= counted
    finally:
        h2.ovsnet("peer", "remove", "203.0.113.77", check=True)
    assert allowed(h2, port) >= counted
    assert c1.ping(c2.ip) and c2.ping(c1.ip)


def test_several_peers_in_one_call_are_each_pinned_to_their_own_subnet(pinned):
    """`peer add A B --subnet SA --subnet SB` (what user-data rendered from an inventory runs):
    one transaction, and each tunnel's flows allow only its own peer's /24."""
    lab, _ = pinned
    _, h2 = lab.hosts
    far = {"203.0.113.77": "10.0.77.0/24", "203.0.113.78": "10.0.78.0/24"}
    h2.ovsnet("peer", "add", *far, *(arg for s in far.values() for arg in ("--subnet", s)),
              check=True)  # fmt: skip
    try:
        peers = json.loads(h2.ovsnet("--json", "status", check=True).stdout)["peers"]
        pinned_to = {p["remote_ip"]: (p["sources_pinned"], p["subnet"]) for p in peers}
        assert {ip: pinned_to[ip] for ip in far} == {ip: (True, s) for ip, s in far.items()}
        flows = ofctl(h2, "dump-flows", OURS).stdout
        for ip, subnet in far.items():
            port = ofport(h2, next(p["port"] for p in peers if p["remote_ip"] == ip))
            allowed_sources = {
                source
                for line in flows.splitlines()
                if f"in_port={port}," in line and "actions=NORMAL" in line
                for source in re.findall(r"(?:nw_src|arp_spa)=([\d./]+)", line)
            }
            assert allowed_sources and subnet in allowed_sources, (ip, allowed_sources)
            assert not allowed_sources - {subnet, "0.0.0.0"}, (ip, allowed_sources)
    finally:
        h2.ovsnet("peer", "remove", *far, check=True)


def test_reset_removes_the_flows_with_the_bridge(pinned):
    lab, _ = pinned
    _, h2 = lab.hosts
    h2.ovsnet("reset", check=True)
    assert ofctl(h2, "dump-flows", check=False).returncode != 0  # no bridge, no flows
