"""Cluster mode on the netns lab: agents build and keep the mesh through etcd.

Each lab host runs `ovsnet agent` in its own namespace against etcd in the switch namespace
(TLS, client-certificate auth, one etcd user per host). Containers are namespaces with a veth
into docker0 (docs/testing.md's fast stand-in; the path docker0 -> br0 -> tunnel is the
same). Checks go through the system: tunnel ports read with ovs-vsctl, pings between
containers, datapath lookup counters for loops.
"""

from __future__ import annotations

import base64
import itertools
import json
import secrets
import signal
import subprocess
import time
from ipaddress import IPv4Network

import pytest

from ovsnet.cluster.plan import keepalive_interval
from tests.lab.agent_harness import (
    NetnsContainer,
    add_docker_bridge,
    agent_argv,
    cluster_status,
    configure_docker_bridge,
    etcd_in_switch,
    tunnels,
)
from tests.lab.etcd_harness import AgentProcess, wait_until

pytestmark = [pytest.mark.lab, pytest.mark.slow]
TTL = 5
METRICS = "127.0.0.1:9476"


def start_agent(etcd, host, workdir, *extra: str) -> AgentProcess:
    add_docker_bridge(host)
    argv = agent_argv(etcd, host.name, "--datapath", "netdev", *extra, db=host.db, ttl=TTL)
    return AgentProcess(host.name, argv, workdir, netns=host.netns).start()


def configure_docker(agent: AgentProcess, host) -> str:
    """The operator's step after a first claim: Docker gets the subnet's --bip (the agent's
    init fails and says so until then), and the agent's init then succeeds on its own."""
    subnet = agent.wait_event("claimed", timeout=60)["subnet"]
    failed = agent.wait_event("init-failed", timeout=30)
    assert f"--bip={IPv4Network(subnet).network_address + 1}/8" in failed["reason"]
    configure_docker_bridge(host, subnet)
    agent.wait_event("initialised", timeout=30)
    return subnet


def wait_for_mesh(hosts, timeout: float = 60) -> None:
    for host in hosts:
        want = {h.underlay_ip for h in hosts if h is not host}
        wait_until(
            lambda host=host, want=want: tunnels(host) == want,
            timeout,
            f"{host.name}'s tunnels to be exactly {sorted(want)}",
        )


def all_pairs_ping(containers) -> list[str]:
    failures = []
    for a, b in itertools.permutations(containers, 2):
        if not a.ping(b.ip):
            failures.append(f"{a.host.name} -> {b.host.name} ({b.ip})")
    return failures


def no_storm(hosts, seconds: float = 3, limit: int = 3000) -> None:
    before = {h.name: h.datapath_lookups() for h in hosts}
    time.sleep(seconds)
    for h in hosts:
        grown = h.datapath_lookups() - before[h.name]
        assert grown < limit, f"{h.name}: {grown} datapath lookups in {seconds} s (a loop?)"


@pytest.fixture
def cluster_lab(lab_factory, tmp_path):
    lab = lab_factory(4, docker=False)
    agents: dict[str, AgentProcess] = {}
    containers: list[NetnsContainer] = []
    with etcd_in_switch(lab, tmp_path / "etcd") as etcd:
        etcd.grant(*(h.name for h in lab.hosts))
        try:
            yield lab, etcd, agents, containers
        finally:
            for agent in agents.values():
                agent.stop()
            for container in containers:
                container.remove()


def test_agents_build_the_mesh_and_follow_joins_and_departures(cluster_lab, tmp_path):
    lab, etcd, agents, containers = cluster_lab
    first3, h4 = lab.hosts[:3], lab.hosts[3]
    for host in first3:
        # h1's agent also serves metrics, in its namespace (loopback).
        extra = ("--metrics-listen", METRICS) if host is first3[0] else ()
        agents[host.name] = start_agent(etcd, host, tmp_path, *extra)
    subnets = {h.name: configure_docker(agents[h.name], h) for h in first3}
    assert len(set(subnets.values())) == 3
    wait_for_mesh(first3)

    # Containers on every host reach each other; broadcasts do not loop around the mesh.
    containers += [NetnsContainer(h, subnets[h.name]) for h in first3]
    assert all_pairs_ping(containers) == []
    no_storm(first3)

    # A 4th host joins: every other host gets a tunnel to it, and traffic flows.
    agents[h4.name] = start_agent(etcd, h4, tmp_path)
    subnets[h4.name] = configure_docker(agents[h4.name], h4)
    wait_for_mesh(lab.hosts)
    containers.append(NetnsContainer(h4, subnets[h4.name]))
    assert all_pairs_ping(containers) == []
    metrics = first3[0].run(["curl", "-sf", f"http://{METRICS}/metrics"]).stdout
    # Peers are named from their records; h4's record became a tunnel, and that was timed.
    assert f'name="{h4.name}",port="' in metrics and f'remote_ip="{h4.underlay_ip}"' in metrics
    assert "ovsnet_agent_hosts_seen 4.0" in metrics
    timed = [line for line in metrics.splitlines()
             if line.startswith("ovsnet_agent_record_to_tunnel_seconds_count")]  # fmt: skip
    assert timed and float(timed[0].split()[-1]) >= 1, timed

    # h2's agent stops: its record outlives it by the lease TTL, then its tunnels go elsewhere.
    h2 = lab.hosts[1]
    agents[h2.name].stop(signal.SIGKILL)
    stopped = time.monotonic()
    rest = [h for h in lab.hosts if h is not h2]
    for host in rest:
        wait_until(
            lambda host=host: h2.underlay_ip not in tunnels(host),
            TTL + 15,
            f"{host.name} to drop its tunnel to {h2.name}",
        )
    # Not before the lease ran out: at worst the last keepalive came one interval before.
    assert time.monotonic() - stopped >= TTL - keepalive_interval(TTL) - 0.5
    assert tunnels(h2) == {h.underlay_ip for h in rest}  # a dead agent's data plane stays
    assert all_pairs_ping([c for c in containers if c.host is not h2]) == []

    # h2's agent comes back: same subnet, and the mesh is whole again.
    agents[h2.name].start()
    back = agents[h2.name].wait_event("claimed", timeout=60, after=time.time() - 1)
    assert back["subnet"] == subnets[h2.name]
    wait_for_mesh(lab.hosts)
    assert all_pairs_ping(containers) == []
    status = {h["name"]: h for h in cluster_status(etcd)["hosts"]}
    assert {n: h["subnet"] for n, h in status.items()} == subnets
    assert all(h["state"] == "live" and 0 <= h["ttl_left"] <= TTL for h in status.values())


def test_etcd_outage_leaves_the_data_plane_alone_and_agents_resume(lab_factory, tmp_path):
    lab = lab_factory(3, docker=False)
    agents: dict[str, AgentProcess] = {}
    containers: list[NetnsContainer] = []
    with etcd_in_switch(lab, tmp_path / "etcd") as etcd:
        etcd.grant(*(h.name for h in lab.hosts))
        try:
            for host in lab.hosts:
                agents[host.name] = start_agent(etcd, host, tmp_path)
            subnets = {h.name: configure_docker(agents[h.name], h) for h in lab.hosts}
            wait_for_mesh(lab.hosts)
            containers += [NetnsContainer(h, subnets[h.name]) for h in lab.hosts]
            assert all_pairs_ping(containers) == []
            before = {h.name: tunnels(h) for h in lab.hosts}

            etcd.stop()
            down_at = time.time()
            for agent in agents.values():
                agent.wait_event("disconnected", timeout=30, after=down_at)
            # 30 s without etcd (6 lease TTLs): pings keep working, tunnels stay.
            while time.time() - down_at < 30:
                assert all_pairs_ping(containers[:2]) == []
                time.sleep(2)
            assert {h.name: tunnels(h) for h in lab.hosts} == before
            assert all_pairs_ping(containers) == []

            etcd.start()
            up_at = time.time()
            for agent in agents.values():
                agent.wait_event("connected", timeout=60, after=up_at)
                agent.check_alive()
            # No subnet changed hands: no new claim, the same records, the same tunnels.
            time.sleep(TTL + 1)
            for name, agent in agents.items():
                assert [e["subnet"] for e in agent.events("claimed")] == [subnets[name]]
                assert agent.events("lease-expired") == []
            status = {h["name"]: h["subnet"] for h in cluster_status(etcd)["hosts"]}
            assert status == subnets
            assert {h.name: tunnels(h) for h in lab.hosts} == before
            assert all_pairs_ping(containers) == []
        finally:
            for agent in agents.values():
                agent.stop()
            for container in containers:
                container.remove()


def test_ipsec_agents_configure_psk_tunnels_behind_the_guard_and_keep_the_psk_out_of_etcd(
    lab_factory, tmp_path
):
    """What the agents set up for encryption, short of IKE and ESP (no IKE daemon runs here;
    IKE is tests/lab/test_ike_netns.py's, ESP the VM lab's): the PSK on every tunnel, the
    fail-closed skb_mark, and the plaintext guard in the kernel covering the peer."""
    lab = lab_factory(2, docker=False)
    psk = "agent-test-psk-" + secrets.token_hex(16)
    psk_file = tmp_path / "psk"
    psk_file.write_text(psk + "\n")
    psk_file.chmod(0o600)
    agents: dict[str, AgentProcess] = {}
    with etcd_in_switch(lab, tmp_path / "etcd") as etcd:
        etcd.grant(*(h.name for h in lab.hosts))
        try:
            for host in lab.hosts:
                agents[host.name] = start_agent(
                    etcd, host, tmp_path, "--ipsec", "--ipsec-psk-file", str(psk_file)
                )
            for host in lab.hosts:
                configure_docker(agents[host.name], host)
            wait_for_mesh(lab.hosts)
            for host in lab.hosts:
                out = host.vsctl(
                    "--format=json", "--columns=name,options", "list", "Interface"
                ).stdout
                rows = {name: dict(options[1]) for name, options in json.loads(out)["data"]}
                tunnel_rows = [o for o in rows.values() if "remote_ip" in o]
                assert tunnel_rows and all(o.get("psk") == psk for o in tunnel_rows)
                # Fail closed: unprotected tunnel traffic is dropped (docs/facts.md, IPsec).
                assert (
                    "ipsec_skb_mark"
                    in host.vsctl("get", "Open_vSwitch", ".", "other_config").stdout
                )
                guard = json.loads(host.ovsnet("--json", "status").stdout)["plaintext_guard"]
                assert guard["in_place"] and guard["peers"] == 1, guard
                peer = next(h for h in lab.hosts if h is not host)
                table = host.run(["nft", "list", "table", "inet", "ovsnet"]).stdout
                assert peer.underlay_ip in table
            dump = etcd.ovsnet("--json", "cluster", "status", *etcd.cli_args()).stdout
            assert all(h["ipsec"]["method"] == "psk" for h in json.loads(dump)["hosts"])
            for agent in agents.values():
                text = agent.events_path.read_text() + agent.log_path.read_text()
                assert psk not in text
            assert psk not in etcd_dump(etcd)
        finally:
            for agent in agents.values():
                agent.stop()


def etcd_dump(etcd) -> str:
    """Every key and value in etcd, read as root with etcdctl (not through ovsnet)."""
    creds = etcd.credentials("root")
    done = subprocess.run(
        [
            "ip",
            "netns",
            "exec",
            etcd.netns,
            "etcdctl",
            "--endpoints",
            etcd.url,
            "--cacert",
            creds.ca,
            "--cert",
            creds.cert,
            "--key",
            creds.key,
            "get",
            "",
            "--prefix",
            "--write-out",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    kvs = json.loads(done.stdout).get("kvs", [])
    assert kvs, "etcd holds no keys at all?"
    return "\n".join(
        base64.b64decode(kv["key"]).decode() + "=" + base64.b64decode(kv.get("value", "")).decode()
        for kv in kvs
    )


def test_agents_with_real_docker_and_reserved_prefixes(lab_factory, tmp_path):
    """Hosts whose Docker was configured first (the lab starts each dockerd with its /24):
    each agent reserves that /24 with --prefix, init succeeds at once, real containers ping."""
    lab = lab_factory(3, docker=True)
    agents: dict[str, AgentProcess] = {}
    with etcd_in_switch(lab, tmp_path / "etcd") as etcd:
        etcd.grant(*(h.name for h in lab.hosts))
        try:
            for host in lab.hosts:
                argv = agent_argv(
                    etcd,
                    host.name,
                    "--datapath",
                    "netdev",
                    "--prefix",
                    host.prefix,
                    db=host.db,
                    ttl=TTL,
                )
                agents[host.name] = AgentProcess(
                    host.name, argv, tmp_path, netns=host.netns
                ).start()
            for host in lab.hosts:
                assert agents[host.name].wait_event("claimed", timeout=60)["subnet"] == host.subnet
                agents[host.name].wait_event("initialised", timeout=60)
                assert agents[host.name].events("init-failed") == []
            wait_for_mesh(lab.hosts)
            containers = [host.start_container() for host in lab.hosts]
            failures = [
                f"{a.host.name} -> {b.host.name}"
                for a, b in itertools.permutations(containers, 2)
                if not a.ping(b.ip)
            ]
            assert failures == []
            no_storm(lab.hosts)
        finally:
            for agent in agents.values():
                agent.stop()
