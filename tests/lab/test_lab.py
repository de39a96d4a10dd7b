"""The lab's own plumbing: hosts, underlay, OVS, dockerd, containers, teardown, CLI.

Nothing here needs ovsnet's product commands except the demo test at the end; everything is
checked through the system (namespaces, addresses, processes, mounts), not through the lab's
own report.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import secrets
import signal
import subprocess
import sys
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest

from ovsnet.errors import InvalidInput, NotReady
from ovsnet.lab import Lab, LabError, cleanup, netns
from ovsnet.lab.proc import cmdline, is_alive, start_time

pytestmark = pytest.mark.lab

MB = 1024 * 1024


def ovsnet_cli(
    *args: str, timeout: float = 180, user: str | None = None
) -> subprocess.CompletedProcess:
    prefix = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups"] if user else []
    return subprocess.run(
        [*prefix, sys.executable, "-m", "ovsnet", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def lab_processes(lab: Lab) -> set[int]:
    return cleanup.processes(lab._footprint(lab._container_ids()))


def addresses(host, device: str) -> list[str]:
    shown = json.loads(host.run(["ip", "-j", "-4", "addr", "show", "dev", device]).stdout)
    return [f"{a['local']}/{a['prefixlen']}" for link in shown for a in link["addr_info"]]


def root_links_into(namespaces: list[str]) -> list[str]:
    """Links of the root namespace whose peer sits in one of the given namespaces."""
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True)
    return [
        line
        for line in links.stdout.splitlines()
        if any(f"link-netns {name}" in line for name in namespaces)
    ]


def alive_with_start(pids) -> set[tuple[int, int | None]]:
    """(pid, start time) of the living ones: a recycled PID does not count as a survivor."""
    return {(pid, start_time(pid)) for pid in pids if is_alive(pid)}


def tcp_transfer(sender, receiver, nbytes: int, port: int = 5301) -> int:
    """Push nbytes over TCP from one lab host to another's underlay address."""
    listen = (
        "import socket\n"
        f"s=socket.create_server(('0.0.0.0',{port})); print('ready', flush=True)\n"
        "c,_=s.accept(); n=0\n"
        "while (b:=c.recv(1<<16)): n+=len(b)\n"
        "print(n)\n"
    )
    send = (
        "import socket\n"
        f"s=socket.create_connection(('{receiver.underlay_ip}',{port}), timeout=20)\n"
        f"s.sendall(b'x'*{nbytes}); s.close()\n"
    )
    argv = netns.exec_argv(receiver.netns, [sys.executable, "-c", listen])
    with subprocess.Popen(argv, stdout=subprocess.PIPE, text=True) as server:
        try:
            assert server.stdout.readline().strip() == "ready"
            sender.run([sys.executable, "-c", send], timeout=60)
            out, _ = server.communicate(timeout=60)
        finally:
            server.kill()
    return int(out.strip().splitlines()[-1])


# --- one shared 3-host lab ---------------------------------------------------------------------


def test_hosts_have_their_namespace_underlay_and_ovs(lab3):
    assert [h.name for h in lab3.hosts] == ["h1", "h2", "h3"]
    assert len({h.netns for h in lab3.hosts}) == 3
    for number, host in enumerate(lab3.hosts, start=1):
        assert netns.exists(host.netns)
        assert lab3.token in host.netns
        assert host.underlay_ip == f"198.51.100.{10 + number}"
        assert host.prefix == f"10.0.{number}"
        assert host.supernet == "10.0.0.0/8"
        assert host.underlay_mtu == 1500
        assert host.vsctl("get", "Bridge", "br-phy", "datapath_type").stdout.strip() == "netdev"
        assert host.vsctl("list-ports", "br-phy").stdout.split() == ["eth0"]
        assert addresses(host, "br-phy") == [f"{host.underlay_ip}/24"]
        assert host.run(["cat", "/sys/class/net/eth0/mtu"]).stdout.strip() == "1500"
        version = host.vsctl("get", "Open_vSwitch", ".", "ovs_version").stdout.strip('"\n')
        assert version[0].isdigit(), version


def test_underlay_pings_between_every_pair_of_hosts(lab3):
    for a, b in itertools.permutations(lab3.hosts, 2):
        done = a.run(["ping", "-c", "1", "-W", "3", b.underlay_ip], check=False)
        assert done.returncode == 0, f"{a.name} -> {b.name}: {done.stdout}{done.stderr}"


def test_underlay_carries_tcp_between_hosts(lab3):
    h1, _, h3 = lab3.hosts
    assert tcp_transfer(h1, h3, 4 * MB) == 4 * MB


def test_lab_traffic_stays_out_of_the_root_namespace(lab3):
    root = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True).stdout
    assert not any(h.underlay_ip in root for h in lab3.hosts)
    namespaces = [h.netns for h in lab3.hosts] + [lab3.switch_netns]
    assert root_links_into(namespaces) == []
    for host in lab3.hosts:
        routes = host.run(["ip", "-4", "route"]).stdout
        assert "default" not in routes


def test_each_dockerd_serves_its_hosts_subnet(lab3):
    for host in lab3.hosts:
        info = json.loads(host.docker("info", "--format", "{{json .}}").stdout)
        assert info["DockerRootDir"].startswith(str(host.rundir))
        assert addresses(host, "docker0") == [f"{host.prefix}.1/8"]
        bridge = json.loads(host.docker("network", "inspect", "bridge").stdout)[0]
        assert bridge["Options"]["com.docker.network.driver.mtu"] == "1462"
        assert bridge["IPAM"]["Config"][0]["IPRange"] == f"{host.prefix}.0/24"
        images = host.docker("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
        assert "ovsnet-lab:busybox" in images
        assert host.dockerd_pid in lab_processes(lab3)


def test_containers_get_an_address_in_the_host_subnet_with_offload_off(lab3):
    host = lab3.hosts[1]
    first, second = host.start_container(), host.start_container()
    try:
        assert first.name != second.name
        for container in (first, second):
            assert IPv4Address(container.ip) in IPv4Network(f"{host.prefix}.0/24")
            assert container.tx_offload() is False
            routes = container.exec(["ip", "route"], check=True).stdout
            assert f"default via {host.prefix}.1" in routes
            mtu = container.exec(["cat", "/sys/class/net/eth0/mtu"], check=True).stdout
            assert mtu.strip() == "1462"
        assert first.ping(second.ip)
        assert first.ping(f"{host.prefix}.1")
    finally:
        first.remove()
        second.remove()
    assert host.docker("ps", "-aq").stdout.split() == []


def test_datapath_lookups_count_the_hosts_traffic(lab3):
    h1, h2, _ = lab3.hosts
    before = h1.datapath_lookups()
    h1.run(["ping", "-c", "3", "-i", "0.2", "-W", "2", h2.underlay_ip])
    assert h1.datapath_lookups() >= before + 3


def test_ovsnet_helper_runs_this_ovsnet_against_the_hosts_db(lab3):
    host = lab3.hosts[2]
    shown = host.run(["sh", "-c", 'echo "$OVSNET_DB $DOCKER_HOST $OVSNET_DOCKER_HOST"']).stdout
    assert shown.split() == [host.db, host.docker_host, host.docker_host]
    done = host.ovsnet("--help")
    assert done.returncode == 0 and "Usage" in done.stdout
    assert done.args[:4] == ["ip", "netns", "exec", host.netns]
    assert done.args[4:9] == [sys.executable, "-m", "ovsnet", "--db", host.db]


# --- labs of their own -------------------------------------------------------------------------


def test_restart_docker_brings_containers_back_with_offload_off(lab_factory):
    lab = lab_factory(hosts=1)
    host = lab.hosts[0]
    container = host.start_container()
    old_dockerd, old_pid = host.dockerd_pid, container.pid
    host.restart_docker()
    assert host.dockerd_pid not in (None, old_dockerd)
    assert container.pid != old_pid
    assert container.tx_offload() is False
    assert addresses(host, "docker0") == [f"{host.prefix}.1/8"]
    assert container.ping(f"{host.prefix}.1")
    assert not is_alive(old_dockerd) or host.docker_host not in cmdline(old_dockerd)


def test_down_leaves_no_namespace_process_mount_or_file(lab_factory):
    lab = lab_factory(hosts=2)
    for host in lab.hosts:
        host.start_container()
    namespaces = [h.netns for h in lab.hosts] + [lab.switch_netns]
    processes = alive_with_start(lab_processes(lab))
    # ovsdb-server, ovs-vswitchd, dockerd, containerd, shim, init, sleep on each host
    assert len(processes) >= 2 * 7
    assert cleanup.mounts_under(lab.directory)
    lab.down()
    assert not any(netns.exists(n) for n in namespaces)
    assert alive_with_start(pid for pid, _ in processes) & processes == set()
    assert cleanup.mounts_under(lab.directory) == []
    assert root_links_into(namespaces) == []
    assert not lab.directory.exists()
    assert lab.leftovers() == []
    lab.down()  # idempotent


def test_down_after_the_daemons_were_killed_still_removes_everything(lab_factory):
    lab = lab_factory(hosts=1)
    host = lab.hosts[0]
    container = host.start_container()
    os.kill(host.dockerd_pid, signal.SIGKILL)  # a crash: containerd, shim, container live on
    os.kill(int(Path(host.rundir / "ovs-vswitchd.pid").read_text()), signal.SIGKILL)
    assert is_alive(container.pid)
    again = Lab.load(lab.name)  # as a later `ovsnet lab down` would
    again.down()
    assert not is_alive(container.pid)  # may linger as a zombie until PID 1 reaps it
    assert again.leftovers() == []
    assert cleanup.leftover_cgroups([container.id]) == []


def test_a_failed_up_cleans_up_after_itself(lab_factory):
    with pytest.raises(LabError, match="dockerd of h1 exited") as failure:
        lab_factory(hosts=2, dockerd_args=["--no-such-option"])
    lab = failure.value.lab
    assert lab is not None
    assert not any(netns.exists(h.netns) for h in lab.hosts)
    assert lab.leftovers() == []


def test_up_refuses_a_name_in_use_and_changes_nothing(lab_factory):
    lab = lab_factory(hosts=1, docker=False)
    before = lab.status()
    with pytest.raises(InvalidInput, match="already exists"):
        Lab.up(1, docker=False, name=lab.name)
    assert lab.status() == before
    assert all(lab.hosts[0].pids().values())


# --- the CLI -----------------------------------------------------------------------------------


def test_cli_up_status_exec_down():
    name = f"pt-cli-{secrets.token_hex(2)}"
    try:
        up = ovsnet_cli("lab", "up", "--hosts", "2", "--name", name)
        assert up.returncode == 0, up.stderr
        status = json.loads(ovsnet_cli("--json", "lab", "status", "--name", name).stdout)
        assert [h["name"] for h in status["hosts"]] == ["h1", "h2"]
        assert status["kept"] is True
        assert all(all(h["pids"].values()) for h in status["hosts"])
        shown = ovsnet_cli(
            "lab",
            "exec",
            "--name",
            name,
            "h2",
            "--",
            "sh",
            "-c",
            'echo "$OVSNET_DB $DOCKER_HOST"; ip -4 -o addr show br-phy',
        )
        assert shown.returncode == 0, shown.stderr
        assert "198.51.100.12/24" in shown.stdout
        assert status["hosts"][1]["db"] in shown.stdout
        assert status["hosts"][1]["docker_host"] in shown.stdout
        assert ovsnet_cli("lab", "exec", "--name", name, "h1", "--", "docker", "ps").returncode == 0
        failing = ovsnet_cli("lab", "exec", "--name", name, "h1", "--", "sh", "-c", "exit 7")
        assert failing.returncode == 7
        listed = json.loads(ovsnet_cli("--json", "lab", "list").stdout)
        assert any(lab["name"] == name and lab["owner"] == "kept" for lab in listed)
        down = ovsnet_cli("--json", "lab", "down", "--name", name)
        assert down.returncode == 0, down.stderr
        assert json.loads(down.stdout) == {"removed": [name]}
        again = ovsnet_cli("lab", "down", "--name", name)
        assert again.returncode == 0 and "nothing to do" in again.stdout
        gone = ovsnet_cli("lab", "status", "--name", name)
        assert gone.returncode == 3
        assert not any(n.startswith(f"ovl-{status['token']}") for n in netns.list_names())
    finally:
        with contextlib.suppress(NotReady):  # already gone is the normal case
            Lab.load(name).down()


@pytest.mark.parametrize(
    "args, code, fragment",
    [
        (["lab", "up", "--hosts", "0"], 2, "1 to 40 hosts"),
        (["lab", "up", "--hosts", "2", "--name", "Bad Name"], 2, "lab name"),
        (["lab", "status", "--name", "pt-no-such-lab"], 3, "no lab named"),
        (["lab", "exec", "--name", "pt-no-such-lab", "h1", "--", "true"], 3, "no lab named"),
        (["lab", "exec", "--name", "{lab3}", "h9", "--", "true"], 2, "no host 'h9'"),
        (["lab", "exec", "--name", "{lab3}", "h1"], 2, "CMD"),
        (["lab", "demo", "--hosts", "1"], 2, "at least 2 hosts"),
    ],
)
def test_cli_refuses_bad_input_in_one_line(lab3, args, code, fragment):
    before = lab3.status()
    done = ovsnet_cli(*[a.replace("{lab3}", lab3.name) for a in args])
    assert done.returncode == code, done.stderr
    assert fragment in done.stderr
    assert "Traceback" not in done.stderr
    if "Usage" not in done.stderr:  # click's own usage errors come with the usage line
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert not (lab3.directory.parent / "pt-no-such-lab").exists()
    assert lab3.status() == before


def test_cli_without_root_says_so():
    done = ovsnet_cli("lab", "up", "--hosts", "1", "--name", "pt-nonroot", user="65534")
    assert done.returncode == 3, done.stderr
    assert done.stderr.strip().splitlines() == [
        "ovsnet: error: the lab needs root (network namespaces, OVS and Docker daemons); "
        "run it as root, e.g. with sudo"
    ]


def test_session_safety_net_reports_and_removes_a_leaked_lab(tmp_path):
    name = f"pt-leak-{secrets.token_hex(2)}"
    (tmp_path / "test_leak.py").write_text(
        "from ovsnet.lab import Lab\n\n\n"
        "def test_forgets_to_tear_down():\n"
        f"    Lab.up(1, docker=False, name={name!r})\n"
    )
    try:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "-p",
                "ovsnet.lab.pytest_plugin",
                "-p",
                "no:cacheprovider",
                "test_leak.py",
            ],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == pytest.ExitCode.TESTS_FAILED, done.stdout
        assert "1 passed" in done.stdout
        assert f"LEAK: this run left lab {name}" in done.stdout
        assert not (Path("/run/ovsnet-lab") / name).exists()
    finally:
        with contextlib.suppress(NotReady):
            Lab.load(name).down()


@pytest.mark.slow
def test_demo_pings_every_container_from_every_other_host():
    name = f"pt-demo-{secrets.token_hex(2)}"
    done = ovsnet_cli("--json", "lab", "demo", "--hosts", "3", "--name", name, timeout=300)
    result = json.loads(done.stdout)
    assert done.returncode == 0, (result, done.stderr)
    assert result["ok"] is True
    assert len(result["pings"]) == 6 and all(p["ok"] for p in result["pings"])
    assert [s["command"].split()[1] for s in result["steps"]] == (
        ["init"] * 3 + ["peer"] * 3 + ["status"] * 3
    )
    assert not (Path("/run/ovsnet-lab") / name).exists()
