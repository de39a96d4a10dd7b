"""Helpers for agent tests: etcd reachable from lab hosts, agent processes, netns containers.

A lab host is a network namespace with its own loopback, so etcd runs inside the lab's switch
namespace with an address on the switch bridge (ETCD_IP, on the underlay) and agents reach it
at https://ETCD_IP:2379, as real hosts would reach an etcd on their network.
"""

from __future__ import annotations

import contextlib
import json
import secrets
from collections.abc import Iterator
from pathlib import Path

from ovsnet.lab.container import answered
from ovsnet.lab.layout import PHY_BRIDGE, SWITCH_BRIDGE
from ovsnet.lab.proc import run
from tests.lab.etcd_harness import EtcdServer

ETCD_IP = "198.51.100.2"  # lab hosts are .11 and up


@contextlib.contextmanager
def etcd_in_switch(lab, workdir: Path) -> Iterator[EtcdServer]:
    """etcd with TLS + client-cert auth in the lab's switch namespace, on the underlay."""
    run(["ip", "-n", lab.switch_netns, "address", "add", f"{ETCD_IP}/24", "dev", SWITCH_BRIDGE])
    # OVS's userspace datapath forwards packets as it reads them: with transmit checksum
    # offload on, TCP between etcd (on the switch bridge) and an agent (behind br-phy) carries
    # unfinished checksums and is dropped. The lab's own traffic tests use ICMP or containers
    # (whose offload the lab turns off), so this only matters for the hosts' own TCP.
    run(["ip", "netns", "exec", lab.switch_netns, "ethtool", "-K", SWITCH_BRIDGE, "tx", "off"])
    for host in lab.hosts:
        host.run(["ethtool", "-K", PHY_BRIDGE, "tx", "off"])
    server = EtcdServer(workdir, listen_ip=ETCD_IP, netns=lab.switch_netns)
    try:
        server.start()
        yield server
    finally:
        server.close()


class NetnsContainer:
    """A 'container' that is a network namespace with a veth into the host's docker0.

    docs/testing.md allows this stand-in for speed: the path under test (docker0 -> br0
    -> tunnel) is the same as for a Docker container.
    """

    def __init__(self, host, subnet: str, number: int = 2, supernet_len: int = 8):
        from ipaddress import IPv4Network

        net = IPv4Network(subnet)
        self.host = host
        self.ip = str(net.network_address + number)
        self.gateway = str(net.network_address + 1)
        self.netns = f"ovl-c{secrets.token_hex(3)}"
        self.outer = f"vc{secrets.token_hex(4)}"  # name in the host (root of netns: unique)
        run(["ip", "netns", "add", self.netns])
        run(
            [
                "ip",
                "-n",
                host.netns,
                "link",
                "add",
                self.outer,
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                self.netns,
            ]
        )
        run(["ip", "-n", host.netns, "link", "set", self.outer, "master", "docker0", "up"])
        for argv in (
            ["link", "set", "lo", "up"],
            ["link", "set", "eth0", "up"],
            ["link", "set", "eth0", "mtu", "1462"],
            ["address", "add", f"{self.ip}/{supernet_len}", "dev", "eth0"],
            ["route", "add", "default", "via", self.gateway],
        ):
            run(["ip", "-n", self.netns, *argv])

    def ping(self, ip: str, count: int = 2, timeout: float = 3) -> bool:
        done = run(
            [
                "ip",
                "netns",
                "exec",
                self.netns,
                "ping",
                "-c",
                str(count),
                "-i",
                "0.2",
                "-W",
                str(int(timeout)),
                ip,
            ],
            check=False,
            timeout=timeout * count + 10,
        )
        # ping exits 0 on a single reply: every echo must come back.
        return done.returncode == 0 and answered(done.stdout) == count

    def remove(self) -> None:
        run(["ip", "netns", "delete", self.netns], check=False)


def add_docker_bridge(host) -> None:
    """What dockerd would create: docker0, a Linux bridge, before ovsnet attaches it."""
    host.run(["ip", "link", "add", "docker0", "type", "bridge"])
    host.run(["ip", "link", "set", "docker0", "up"])


def configure_docker_bridge(host, subnet: str, supernet_len: int = 8) -> None:
    """What dockerd does when started with the --bip the agent asked for (its init-failed
    event says which): the gateway address, with the supernet's mask, on docker0."""
    from ipaddress import IPv4Network

    gateway = IPv4Network(subnet).network_address + 1
    host.run(["ip", "address", "replace", f"{gateway}/{supernet_len}", "dev", "docker0"])


def agent_argv(
    etcd: EtcdServer, name: str, *extra: str, db: str | None = None, ttl: int = 5
) -> list[str]:
    args = ["--json"]
    if db:
        args += ["--db", db]
    return [*args, "agent", *etcd.cli_args(name), "--name", name, "--ttl", str(ttl), *extra]


def cluster_status(etcd: EtcdServer) -> dict:
    done = etcd.ovsnet("--json", "cluster", "status", *etcd.cli_args("root"))
    return json.loads(done.stdout)


def tunnels(host) -> set[str]:
    """Remote IPs of the host's tunnel ports, read with ovs-vsctl (not through ovsnet)."""
    out = host.vsctl("--format=json", "--columns=options,type", "list", "Interface").stdout
    rows = json.loads(out)["data"]
    remotes = set()
    for options, kind in rows:
        if kind in ("gre", "vxlan", "geneve"):
            remotes.update(v for k, v in options[1] if k == "remote_ip")
    return remotes
