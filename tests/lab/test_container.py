"""The companion container on the netns lab, with each lab host's dockerd.

One 2-host lab for the module. Each host runs the companion image as the rendered unit would
(companion_harness.lab_run_argv lists the lab's adaptations) with the userspace datapath, since
this kernel has no openvswitch module:
- h1 is configured by environment (OVSNET_PREFIX, OVSNET_PEERS): the container runs init and
  adds its peer itself;
- h2 is configured as the rendered ovsnet-init.service does it: `docker exec ovsnet ovsnet init`
  and `peer add` (the container only runs OVS and heals what OVSDB records).
The tests run in order on that lab; each leaves the overlay working for the next.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time

import pytest

from ovsnet.render import build_host_config
from ovsnet.render.host_layout import COMPANION_NAME
from tests.lab.companion_harness import (
    IMAGE,
    companion_state,
    ensure_image,
    image_info,
    in_companion,
    lab_run_argv,
    load_image,
    one_off_argv,
    stop_lab_ovs,
    volume_argv,
    write_underlay_hook,
)

pytestmark = [pytest.mark.lab, pytest.mark.slow]

HEAL_DEADLINE = 5.0  # re-attached and pinging within 5 s of a Docker restart
STOP_DEADLINE = 10.0  # `docker stop` ends it within 10 s (Docker's default grace)


class Fleet:
    def __init__(self, lab, image):
        self.lab = lab
        self.image = image
        self.h1, self.h2 = lab.hosts
        self.containers = {}

    def peer_of(self, host):
        return self.h2 if host is self.h1 else self.h1


@pytest.fixture(scope="module")
def fleet(lab_factory_module):
    lab = lab_factory_module(hosts=2, docker=True)
    fleet = Fleet(lab, ensure_image(lab.hosts[0]))
    for host in lab.hosts:
        load_image(host, fleet.image)
        stop_lab_ovs(host)
    h1, h2 = fleet.h1, fleet.h2
    start_companion(
        h1,
        {
            "OVSNET_DATAPATH": "netdev",
            "OVSNET_PREFIX": h1.prefix,
            "OVSNET_PEERS": h2.underlay_ip,
        },
    )
    start_companion(h2, {"OVSNET_DATAPATH": "netdev"})
    for args in config_of(h2).ovsnet_commands():
        if args[0] == "init":
            args = [*args, "--datapath", "netdev"]  # rendered units target the kernel datapath
        run_until_ready(h2, args)
    for host in lab.hosts:
        wait_attached(host, 30)
        fleet.containers[host.name] = host.start_container()
    return fleet


def config_of(host):
    others = [h.underlay_ip for h in host.lab.hosts if h is not host]
    return build_host_config(prefix=host.prefix, peers=others, image=IMAGE, name=host.name)


def start_companion(host, env):
    host.docker(*lab_run_argv(host, config_of(host), env, write_underlay_hook(host)))


def run_until_ready(host, args, timeout=30.0):
    """Like the init unit: retry while the companion's OVSDB is not up yet (exit 3)."""
    deadline = time.monotonic() + timeout
    while True:
        done = in_companion(host, "ovsnet", *args, check=False)
        if done.returncode == 0:
            return done
        assert done.returncode == 3 and time.monotonic() < deadline, done.stderr
        time.sleep(0.5)


# -- observations (through the system, not ovsnet's own output) ---------------------------------


def ipv4(host, device):
    out = host.run(["ip", "-4", "-o", "addr", "show", "dev", device], check=False).stdout
    return [line.split()[3] for line in out.splitlines()]


def gateway_cidr(host):
    return f"{host.gateway}/8"


def attached(host):
    gateway = gateway_cidr(host)
    return gateway in ipv4(host, "br0") and gateway not in ipv4(host, "docker0")


def wait_attached(host, timeout):
    wait_until(lambda: attached(host), timeout, f"{host.name}: gateway on br0, not on docker0")


def wait_until(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.1f} s waiting for {what}")
        time.sleep(0.05)


def pings_until(fleet, deadline):
    """Both directions answer one echo request before the monotonic deadline."""
    for host in (fleet.h1, fleet.h2):
        source = fleet.containers[host.name]
        target = fleet.containers[fleet.peer_of(host).name]
        while not source.ping(target.ip, count=1, timeout=1):
            if time.monotonic() > deadline:
                return False
    return True


def interfaces(host):
    """br0's interfaces as OVSDB records them (name, type, options, ofport), via ovs-vsctl."""
    out = in_companion(
        host, "ovs-vsctl", "--format=json", "--columns=name,type,options,ofport", "list",
        "Interface",
    ).stdout  # fmt: skip
    rows = json.loads(out)["data"]
    return sorted(json.dumps(row, sort_keys=True) for row in rows)


def vswitchd_pid(host):
    done = in_companion(host, "cat", "/run/openvswitch/ovs-vswitchd.pid", check=False)
    return done.stdout.strip() if done.returncode == 0 else None


def pinning_flows(host) -> int:
    """How many of ovsnet's source-pinning flows br0 has (ovsnet.antispoof's cookie)."""
    from ovsnet.antispoof import COOKIE

    done = in_companion(host, "ovs-ofctl", "dump-flows", "br0", f"cookie={COOKIE:#x}/-1",
                        check=False)  # fmt: skip
    return done.stdout.count("priority=") if done.returncode == 0 else 0


def logs_since(host, since):
    done = host.docker("logs", "--since", since, COMPANION_NAME)
    return done.stdout + done.stderr


# -- the image --------------------------------------------------------------------


def test_image_is_built_offline_on_the_debootstrapped_base(fleet):
    info = image_info(fleet.h1)
    # The base is the `docker import` of make-base.sh's debootstrap (no registry involved).
    assert info["Config"]["Labels"].get("ovsnet.base-key")
    # The probe is the built image's: `status --check`, killed before Docker stops waiting.
    probe = info["Config"]["Healthcheck"]
    assert probe["Test"] == ["CMD-SHELL", "timeout -s KILL 25 ovsnet status --check || exit 1"]
    assert probe["Timeout"] > 25 * 10**9, probe
    packages = fleet.h1.docker(
        *one_off_argv(
            "-W", "-f", "${Package} ${Status}\n", "openvswitch-switch", "openvswitch-ipsec",
            "strongswan", "libstrongswan-standard-plugins", entrypoint="dpkg-query",
        )
    ).stdout  # fmt: skip
    assert packages.count("install ok installed") == 4, packages
    # ovsnet is installed from a wheel, and the image carries no copy of the sources.
    listing = fleet.h1.docker(
        *one_off_argv(
            "-c", "ls /opt/ovsnet/lib/python3.11/site-packages/ovsnet-*.dist-info; "
            "find / -xdev -name pyproject.toml -path '*ovsnet*' | wc -l", entrypoint="sh",
        )
    ).stdout.split()  # fmt: skip
    assert "WHEEL" in listing and listing[-1] == "0", listing
    assert info["Size"] < 400 * 1024 * 1024, f"image is {info['Size']} bytes"


# -- OVS, init, peers, cross-host traffic -----------------------------------------


def test_companions_run_ovs_join_the_overlay_and_containers_ping(fleet):
    for host in (fleet.h1, fleet.h2):
        ports = in_companion(host, "ovs-vsctl", "list-ports", "br0").stdout.split()
        tunnels = [p for p in ports if p.startswith("gre-")]
        assert "docker0" in ports and len(tunnels) == 1, ports
        remote = in_companion(
            host, "ovs-vsctl", "get", "Interface", tunnels[0], "options:remote_ip"
        )
        assert fleet.peer_of(host).underlay_ip in remote.stdout
        assert attached(host)
        # The daemons are the container's, not the lab's.
        top = host.docker("top", COMPANION_NAME, "-o", "pid,args").stdout
        assert "ovsdb-server /var/lib/openvswitch/conf.db" in top and "ovs-vswitchd" in top
    assert pings_until(fleet, time.monotonic() + 20)


def test_healthcheck_is_healthy_and_names_a_down_peer(fleet):
    for host in (fleet.h1, fleet.h2):
        wait_until(
            lambda host=host: companion_state(host).get("Health", {}).get("Status") == "healthy",
            60,
            f"{host.name}: companion healthy",
        )
    fleet.h2.docker("stop", COMPANION_NAME, timeout=30)
    try:
        # BFD declares the tunnel down after 3 missed 1 s intervals.
        def check_fails():
            done = in_companion(fleet.h1, "ovsnet", "status", "--check-peers", check=False)
            return done.returncode == 1 and f"peer {fleet.h2.underlay_ip} is down" in done.stderr

        wait_until(check_fails, 20, "h1's status --check-peers to report h2 down")
        # A dead peer is not this host's problem: h1's companion stays healthy.
        assert in_companion(fleet.h1, "ovsnet", "status", "--check", check=False).returncode == 0
    finally:
        fleet.h2.docker("start", COMPANION_NAME)
    wait_attached(fleet.h2, 20)
    assert pings_until(fleet, time.monotonic() + 20)
    wait_until(
        lambda: (
            in_companion(fleet.h1, "ovsnet", "status", "--check-peers", check=False).returncode == 0
        ),
        20,
        "h1 healthy again",
    )


# -- Docker restarts, a killed ovs-vswitchd ---------------------------------------


def restart_dockerd(host, live_restore: bool, refresh: bool) -> float:
    """Stop and start the host's dockerd with or without --live-restore; return when it is up.

    The lab starts every dockerd with the lab's dockerd_args; with --live-restore, containers
    (the companion too) keep running while dockerd restarts.
    """
    host.lab.state.dockerd_args = ["--live-restore"] if live_restore else []
    host.stop_docker()
    host.start_docker(refresh=refresh)
    return time.monotonic()


def test_docker_restart_with_live_restore_is_healed_by_the_running_companion(fleet):
    host = fleet.h1
    restart_dockerd(host, live_restore=True, refresh=True)  # now running with --live-restore
    wait_attached(host, 30)
    assert pings_until(fleet, time.monotonic() + 20)
    started = companion_state(host)["StartedAt"]

    ready = restart_dockerd(host, live_restore=True, refresh=False)
    wait_until(lambda: attached(host), HEAL_DEADLINE, "re-attach after the Docker restart")
    assert pings_until(fleet, ready + HEAL_DEADLINE), "no cross-host ping within 5 s"
    # The same container did it: it never stopped (the netlink watch, not a restart, healed).
    assert companion_state(host)["StartedAt"] == started
    assert "remove " + gateway_cidr(host) + " from docker0" in logs_since(host, started)


def test_docker_restart_restarts_the_companion_which_heals_from_ovsdb(fleet):
    """h2 has no configuration in its environment: it heals from what OVSDB records."""
    host = fleet.h2
    restart_dockerd(host, live_restore=False, refresh=True)  # make sure: no --live-restore
    wait_attached(host, 30)
    before = companion_state(host)["StartedAt"]

    ready = restart_dockerd(host, live_restore=False, refresh=False)
    wait_until(lambda: attached(host), HEAL_DEADLINE, "re-attach after the Docker restart")
    fleet.containers[host.name].refresh()  # restarted by its policy: offload off again
    assert pings_until(fleet, ready + HEAL_DEADLINE), "no cross-host ping within 5 s"
    assert companion_state(host)["StartedAt"] != before  # Docker's restart policy restarted it


def test_killed_vswitchd_is_restarted_with_the_same_ports(fleet):
    host = fleet.h1
    ports = interfaces(host)
    assert pinning_flows(host), "ovsnet's source-pinning flows before the kill"
    old = vswitchd_pid(host)
    in_companion(host, "kill", "-9", old)
    wait_until(lambda: vswitchd_pid(host) not in (None, old), 10, "a new ovs-vswitchd")
    assert companion_state(host)["Running"]
    assert pings_until(fleet, time.monotonic() + 15)
    assert interfaces(host) == ports
    # vswitchd keeps flows only in memory: the companion's heal puts ovsnet's back.
    wait_until(lambda: pinning_flows(host), 15, "ovsnet's flows back after the restart")
    assert "ovs-vswitchd was killed by signal 9: restarting it" in logs_since(host, "1m")


# -- docker stop, start again -----------------------------------------------------


def test_docker_stop_is_clean_and_a_restart_changes_nothing(fleet):
    host = fleet.h2
    ports = interfaces(host)
    began = time.monotonic()
    host.docker("stop", COMPANION_NAME, timeout=30)
    took = time.monotonic() - began
    state = companion_state(host)
    assert took < STOP_DEADLINE and state["ExitCode"] == 0, (took, state)
    assert "OVS stopped" in logs_since(host, "30s")
    # The database file replays cleanly and holds every port.
    host.docker(*volume_argv("show-log", "/var/lib/openvswitch/conf.db", entrypoint="ovsdb-tool"))
    query = '["Open_vSwitch",{"op":"select","table":"Interface","where":[],"columns":["name"]}]'
    rows = host.docker(
        *volume_argv("query", "/var/lib/openvswitch/conf.db", query, entrypoint="ovsdb-tool")
    ).stdout
    names = {row["name"] for row in json.loads(rows)[0]["rows"]}
    assert names == {json.loads(p)[0] for p in ports}

    host.docker("start", COMPANION_NAME)
    since = companion_state(host)["StartedAt"]
    wait_attached(host, 30)
    assert pings_until(fleet, time.monotonic() + 20)
    assert interfaces(host) == ports
    # Nothing to heal in OVSDB or the links, and re-running the init unit's commands changes
    # nothing. Only the source-pinning flows come back: vswitchd keeps flows in memory only.
    logs = logs_since(host, since)
    assert "peer add (" not in logs, logs
    for line in logs.splitlines():
        if "init (" in line:
            steps = line.split("): ", 1)[1].split("; ")
            assert all(s.startswith(("pin sources", "meter broadcast")) for s in steps), line
    for args in config_of(host).ovsnet_commands():
        if args[0] == "init":
            args = [*args, "--datapath", "netdev"]
        done = in_companion(host, "ovsnet", "--json", *args)
        assert json.loads(done.stdout)["changed"] is False, done.stdout


def test_ipsec_configured_runs_strongswan_and_the_monitor(fleet):
    host = fleet.h2
    host.docker("rm", "-f", COMPANION_NAME)
    start_companion(host, {"OVSNET_DATAPATH": "netdev", "OVSNET_IPSEC": "yes"})

    def running():
        top = host.docker("top", COMPANION_NAME, "-o", "pid,args", check=False).stdout
        return "ovs-monitor-ipsec" in top and "charon" in top

    wait_until(running, 30, "ovs-monitor-ipsec and charon in the companion")
    began = time.monotonic()
    host.docker("stop", COMPANION_NAME, timeout=30)
    assert time.monotonic() - began < STOP_DEADLINE
    assert companion_state(host)["ExitCode"] == 0
    host.docker("rm", COMPANION_NAME)
    start_companion(host, {"OVSNET_DATAPATH": "netdev"})
    wait_attached(host, 30)
    assert pings_until(fleet, time.monotonic() + 20)


def test_restarted_companion_restores_the_plaintext_guard_before_vswitchd(fleet):
    """After a reboot the kernel has no guard: the companion installs it from OVSDB before
    vswitchd re-creates the IPsec tunnels, so their first packets cannot leave in clear."""
    host, port, peer = fleet.h2, "gre-guardtest", "198.51.100.99"
    # An IPsec tunnel as OVSDB keeps it (certificate method: no secret on this command line).
    in_companion(host, "ovs-vsctl", "add-port", "br0", port, "--", "set", "Interface", port,
                 "type=gre", f"options:remote_ip={peer}", "options:remote_name=h9", "--", "set",
                 "Open_vSwitch", ".", "other_config:ipsec_skb_mark=0/1")  # fmt: skip
    try:
        host.docker("stop", COMPANION_NAME, timeout=60)
        host.docker("rm", COMPANION_NAME)
        host.run(["nft", "delete", "table", "inet", "ovsnet"], check=False)  # as after a reboot
        start_companion(host, {"OVSNET_DATAPATH": "netdev"})

        def guarded():
            table = host.run(["nft", "list", "table", "inet", "ovsnet"], check=False).stdout
            return peer in table

        wait_until(guarded, 60, "the companion to restore the plaintext guard")
        wait_until(lambda: "ovs-vswitchd running" in logs_since(host, "0"), 60, "vswitchd")
        log = logs_since(host, "0")
        restored = log.find("drop unencrypted tunnel traffic to and from 1 IPsec peer")
        vswitchd = log.find("ovsdb-server and ovs-vswitchd running")
        assert 0 <= restored < vswitchd, log
        # The IKE daemon is up before vswitchd re-creates the stored IPsec tunnel.
        assert 0 <= log.find("strongSwan and ovs-monitor-ipsec running") < vswitchd, log
    finally:
        in_companion(host, "ovs-vsctl", "--if-exists", "del-port", port, "--", "remove",
                     "Open_vSwitch", ".", "other_config", "ipsec_skb_mark")  # fmt: skip
        host.run(["nft", "delete", "table", "inet", "ovsnet"], check=False)


# -- bad input ----------------------------------------------------------------------------------


def test_bad_configuration_exits_2_with_one_line(fleet):
    done = fleet.h1.docker(
        "run", "--rm", "--env", "OVSNET_DATAPATH=netdev", "--env", "OVSNET_PREFIX=10.0.999",
        IMAGE, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert lines == [
        "ovsnet: error: prefix '10.0.999' is malformed; give the first three "
        "octets of the host's /24, e.g. --prefix 10.0.42"
    ], lines


# -- IKE between two companions, with nothing but the rendered capabilities --------------------

PSK = "Cp7Tn2Wq9Lx4Hd8Rk3Vb6Ms1Zf5Gy0Ej"  # a test value, on no command line (stdin, then a file)


def psk_connection(host) -> str | None:
    """The strongSwan connection ovs-monitor-ipsec made for the tunnel, once it has the PSK."""
    out = in_companion(host, "ipsec", "statusall", check=False).stdout
    section = out.split("Connections:", 1)[-1].split("Routed Connections:", 1)[0]
    for line in section.splitlines():
        match = re.match(r"^\s*(gre-[^:\s]+):\s.*pre-shared key", line)
        if match:
            return match[1]
    return None


def test_companions_negotiate_ike_with_only_the_rendered_capabilities(fleet):
    """strongSwan inside the companion as rendered (NET_ADMIN, NET_RAW, NET_BIND_SERVICE and no
    other capability): it listens on UDP 500 and 4500, installs its xfrm policies, and the two
    companions complete IKE with a PSK. The CHILD_SA needs the kernel's ESP, which this kernel
    lacks (the VM tier has it). Last of the fleet tests: the tunnels are IPsec-only afterwards,
    so the overlay stays down until the module's lab is torn down."""
    for host in (fleet.h1, fleet.h2):
        host.docker("exec", "-i", COMPANION_NAME, "sh", "-c",
                    "umask 077; cat > /run/ike-test.psk", input=PSK + "\n")  # fmt: skip
        in_companion(host, "ovsnet", "ipsec", "psk", "set", "--file", "/run/ike-test.psk")
        peer = fleet.peer_of(host).underlay_ip
        in_companion(host, "ovsnet", "peer", "remove", peer)  # plain GRE does not become IPsec
        in_companion(host, "ovsnet", "peer", "add", peer, "--ipsec")
    for host in (fleet.h1, fleet.h2):
        # the supervisor starts strongSwan at its next heal (at most its 30 s re-check)
        wait_until(lambda host=host: psk_connection(host), 60, f"{host.name}: IKE connection")
        listening = host.run(["ss", "-Hnlu", "( sport = :500 or sport = :4500 )"]).stdout
        assert len(listening.splitlines()) >= 2, listening
        peer = fleet.peer_of(host).underlay_ip
        assert peer in host.run(["ip", "xfrm", "policy"]).stdout  # charon's trap policies
    conn = psk_connection(fleet.h1)
    up = in_companion(fleet.h1, "ipsec", "up", conn, check=False, timeout=60)
    assert f"established between {fleet.h1.underlay_ip}" in up.stdout, up.stdout
    status = in_companion(fleet.h2, "ipsec", "status").stdout
    assert "ESTABLISHED" in status, status
    # Stopping a companion tells its peer nothing: no IKE DELETE, so h2 keeps its IKE SA rather
    # than negotiate with a host that is restarting (the next charon's IKE SA replaces it). And
    # the stop fits in docker stop's 10 s: exit 0, not SIGKILLed halfway.
    fleet.h1.docker("stop", COMPANION_NAME)
    code = fleet.h1.docker("inspect", "-f", "{{.State.ExitCode}}", COMPANION_NAME).stdout
    assert code.strip() == "0", code
    time.sleep(2)  # a DELETE sent during the stop has arrived by now
    status = in_companion(fleet.h2, "ipsec", "status").stdout
    assert "ESTABLISHED" in status, status


# -- the netlink watch, on a real kernel --------------------------------------------------------

WATCH_SCRIPT = """
import select, subprocess
from ovsnet.netlink import LinkWatcher
with LinkWatcher() as watcher:
    assert watcher.changed_links() == set()
    subprocess.run(["ip", "link", "add", "wbr0", "type", "bridge"], check=True)
    subprocess.run(["ip", "address", "add", "10.99.0.1/24", "dev", "wbr0"], check=True)
    subprocess.run(["ip", "address", "add", "10.99.1.1/24", "dev", "wbr0", "label", "wbr0:1"],
                   check=True)
    assert select.select([watcher], [], [], 5)[0], "no notification"
    print(sorted(watcher.changed_links()))
    print(select.select([watcher], [], [], 0)[0] == [])
"""


def test_link_watcher_names_links_whose_addresses_change():
    name = f"ovsnet-watch-{os.urandom(3).hex()}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        done = subprocess.run(
            ["ip", "netns", "exec", name, sys.executable, "-c", WATCH_SCRIPT],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == ["['wbr0']", "True"], done.stdout
