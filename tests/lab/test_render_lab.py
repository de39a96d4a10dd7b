"""Rendered files drive a real dockerd and ovsnet on the netns lab.

daemon.json: dockerd started with a rendered daemon.json (and none of the lab's own bridge
flags) brings docker0 up with the bip, fixed-cidr and MTU ovsnet computed, and `ovsnet init`
then succeeds with only the prefix. CoreOS user-data rendered for 3 hosts from an
inventory, applied by hand (dockerd with the drop-in's DOCKER_OPTS, the init unit's commands as
written) gives a working 3-host mesh.

Applying "by hand" has two lab-only differences from a real host, both forced by the emulation:
the ovsnet commands run in the host's namespace against its own OVSDB rather than through
`docker exec` in the companion container (whose image tests/lab/test_container.py builds), and
`init` gets `--datapath netdev` (this kernel has no openvswitch module).
"""

from __future__ import annotations

import itertools
import json
import shlex
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest
import yaml

from ovsnet.batch import join_steps, split_steps
from ovsnet.cli import main
from ovsnet.render import build_host_config, render
from tests.lab.rendered_dockerd import restart_dockerd_as_rendered

pytestmark = [pytest.mark.lab, pytest.mark.slow]

COMPANION_EXEC = ["/usr/bin/docker", "exec", "ovsnet", "ovsnet"]
LAB_ONLY_INIT_FLAGS = ["--datapath", "netdev"]


def link(host, name: str) -> dict:
    (info,) = json.loads(host.run(["ip", "-j", "addr", "show", "dev", name]).stdout)
    return info


def ipv4_addresses(host, name: str) -> list[str]:
    return [f"{a['local']}/{a['prefixlen']}" for a in link(host, name)["addr_info"]
            if a["family"] == "inet"]  # fmt: skip


def container_mtu(container) -> int:
    return int(container.exec(["cat", "/sys/class/net/eth0/mtu"], check=True).stdout)


def bridge_network(host) -> dict:
    (info,) = json.loads(host.docker("network", "inspect", "bridge").stdout)
    return info


def test_rendered_daemon_json_configures_docker_and_init_needs_only_the_prefix(lab_factory):
    lab = lab_factory(hosts=1)
    (host,) = lab.hosts
    prefix = "10.0.77"  # not the lab's own 10.0.1: only the rendered file can put it there
    expected = build_host_config(prefix=prefix, underlay_mtu=host.underlay_mtu)
    daemon_json = render("daemon-json", expected)

    restart_dockerd_as_rendered(host, daemon_json=daemon_json)

    assert ipv4_addresses(host, "docker0") == ["10.0.77.1/8"]
    (ipam,) = bridge_network(host)["IPAM"]["Config"]
    assert ipam["Subnet"] == "10.0.0.0/8" and ipam["IPRange"] == "10.0.77.0/24"
    assert bridge_network(host)["Options"]["com.docker.network.driver.mtu"] == str(expected.mtu)
    container = host.start_container()
    assert IPv4Address(container.ip) in IPv4Network("10.0.77.0/24")
    assert container_mtu(container) == expected.mtu == 1462

    done = host.ovsnet("init", "--prefix", prefix, *LAB_ONLY_INIT_FLAGS)
    assert done.returncode == 0, done.stderr
    assert ipv4_addresses(host, "br0") == ["10.0.77.1/8"]
    assert ipv4_addresses(host, "docker0") == []
    mtu_request = host.vsctl("get", "Interface", "br0", "mtu_request").stdout.strip()
    assert int(mtu_request) == expected.mtu
    assert "docker0" in host.vsctl("list-ports", "br0").stdout.split()
    again = host.ovsnet("init", "--prefix", prefix, *LAB_ONLY_INIT_FLAGS)
    assert again.returncode == 0, again.stderr


def dropin_flags(user_data: dict) -> list[str]:
    """What docker.service's `$DOCKER_OPTS` expands to with the rendered drop-in."""
    (docker,) = [u for u in user_data["coreos"]["units"] if u["name"] == "docker.service"]
    (dropin,) = docker["drop-ins"]
    (line,) = [x for x in dropin["content"].splitlines() if x.startswith("Environment=")]
    (assignment,) = shlex.split(line.removeprefix("Environment="))
    name, _, value = assignment.partition("=")
    assert name == "DOCKER_OPTS"
    return value.split()  # an unbraced $VAR in ExecStart= splits on whitespace


def init_unit_command(user_data: dict) -> list[str]:
    """The ovsnet arguments of the init unit's one ExecStart= (continuation lines joined)."""
    (unit,) = [u for u in user_data["coreos"]["units"] if u["name"] == "ovsnet-init.service"]
    content = unit["content"].replace("\\\n", " ")
    (line,) = [x for x in content.splitlines() if x.startswith("ExecStart=")]
    argv = shlex.split(line.removeprefix("ExecStart="))
    assert argv[: len(COMPANION_EXEC)] == COMPANION_EXEC, line
    return argv[len(COMPANION_EXEC) :]


def with_lab_only_init_flags(argv: list[str]) -> list[str]:
    """The same batch with the netdev datapath given to its init (no kernel datapath here)."""
    steps = split_steps(argv[1:]) if argv[0] == "batch" else [argv]
    return join_steps([[*step, *LAB_ONLY_INIT_FLAGS] if step[0] == "init" else step
                       for step in steps])  # fmt: skip


def test_rendered_user_data_for_three_hosts_gives_a_working_mesh(lab_factory, tmp_path):
    lab = lab_factory(hosts=3)
    inventory = tmp_path / "hosts.yaml"
    hosts = [{"name": h.name, "ip": h.underlay_ip} for h in lab.hosts]
    hosts[1]["prefix"] = "10.0.200"  # one fixed prefix; the others allocated
    inventory.write_text(yaml.safe_dump({"hosts": hosts}))
    assert main(["inventory", "allocate", str(inventory)]) == 0
    out = tmp_path / "user-data"
    assert main(["render", "cloud-config", "--inventory", str(inventory), "--all",
                 "-o", str(out)]) == 0  # fmt: skip
    prefixes = {h["name"]: h["prefix"] for h in yaml.safe_load(inventory.read_text())["hosts"]}
    assert prefixes == {"h1": "10.0.1", "h2": "10.0.200", "h3": "10.0.2"}

    containers = {}
    for host in lab.hosts:
        user_data = yaml.safe_load(Path(out / f"{host.name}.coreos.yaml").read_text())
        restart_dockerd_as_rendered(host, flags=dropin_flags(user_data))
        assert ipv4_addresses(host, "docker0") == [f"{prefixes[host.name]}.1/8"]
        # init and peer add in one `ovsnet batch`, as the unit runs them
        argv = init_unit_command(user_data)
        assert argv[0] == "batch", argv
        done = host.ovsnet(*with_lab_only_init_flags(argv))
        assert done.returncode == 0, (argv, done.stderr)
        containers[host.name] = host.start_container()

    for host in lab.hosts:
        others = {h.underlay_ip for h in lab.hosts if h is not host}
        peers = json.loads(host.ovsnet("--json", "peer", "list", check=True).stdout)
        assert {p["remote_ip"] for p in peers} == others
        container = containers[host.name]
        assert IPv4Address(container.ip) in IPv4Network(f"{prefixes[host.name]}.0/24")
        assert container_mtu(container) == 1462
    for a, b in itertools.permutations(containers.values(), 2):
        assert a.ping(b.ip), f"{a} cannot reach {b}"
