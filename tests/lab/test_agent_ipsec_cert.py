"""Certificate IPsec built by cluster agents, with real strongSwan + ovs-monitor-ipsec per
netns lab host (tests/lab/ipsec_harness.py), etcd in the switch namespace (TLS, RBAC).

Each agent runs inside its host's network and private mount namespaces (where that host's
strongSwan lives), with `--ipsec --ipsec-cert`: it publishes its certificate's CN and
fingerprint, and names each peer's CN on the tunnel (options:remote_name); strongSwan then
accepts only that name, signed by the host's IKE CA. This kernel has no ESP: the IKE SA is
what can be established (test names say `ike_only`).
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from ovsnet.cluster.keys import ClusterKeys
from ovsnet.pki import cas as pki_cas
from ovsnet.pki import issue as pki_issue
from ovsnet.pki import store as pki_store
from ovsnet.tunnels import port_name
from tests.lab.agent_harness import etcd_in_switch
from tests.lab.etcd_harness import AgentProcess, wait_until
from tests.lab.ipsec_harness import describe, ike_host

pytestmark = [pytest.mark.lab, pytest.mark.slow]
KEYS = ClusterKeys()
TTL = 5
CLEAN_KEYS = ("certificate", "private_key", "ca_cert", "ipsec_skb_mark")


def _options(host) -> dict[str, str]:
    """remote_ip -> remote_name of the host's tunnel ports, read with ovs-vsctl."""
    out = host.vsctl("--format=json", "--columns=options", "list", "Interface").stdout
    names = {}
    for (options,) in json.loads(out)["data"]:
        opts = dict(options[1])
        if "remote_ip" in opts:
            names[opts["remote_ip"]] = opts.get("remote_name")
    return names


def _set_certificate(ike, pki_dir: Path, name: str) -> Path:
    cert, key = pki_store.host_paths(pki_dir, name)
    done = ike.ovsnet(
        "ipsec", "cert", "--cert", str(cert), "--key", str(key),
        "--ca", str(pki_store.ca_cert_path(pki_dir, "ike")),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return cert


def _agent(etcd, lab_host, ike, workdir: Path, cert: Path) -> AgentProcess:
    argv = [
        "--json", "--db", ike.db, "agent", *etcd.cli_args(lab_host.name),
        "--name", lab_host.name, "--ttl", str(TTL), "--underlay-ip", lab_host.underlay_ip,
        "--no-init", "--ipsec", "--ipsec-cert", str(cert),
    ]  # fmt: skip
    wrap = ["nsenter", f"--target={ike.monitor.pid}", "--mount", "--net"]
    return AgentProcess(lab_host.name, argv, workdir, wrap=wrap).start()


@pytest.fixture
def ipsec_cluster(lab_factory, tmp_path):
    lab = lab_factory(3, docker=False)
    ours, foreign = tmp_path / "ours", tmp_path / "foreign"
    pki_cas.ensure_cas(ours)
    pki_cas.ensure_cas(foreign)  # the same CA subject, another key
    for name in ("h1", "h2"):
        pki_issue.ensure_host_cert(ours, name)
    pki_issue.ensure_host_cert(foreign, "h3")
    pki_issue.ensure_host_cert(ours, "h3")  # h3 also has a good one, which it does not use
    for host in lab.hosts:
        host.vsctl(
            "--may-exist", "add-br", "br0", "--", "set", "Bridge", "br0", "datapath_type=netdev"
        )
    agents: list[AgentProcess] = []
    try:
        with (
            etcd_in_switch(lab, tmp_path / "etcd") as etcd,
            contextlib.ExitStack() as stack,
        ):
            etcd.grant(*(h.name for h in lab.hosts))
            ikes = [stack.enter_context(ike_host(h)) for h in lab.hosts]
            yield lab, etcd, ikes, {"ours": ours, "foreign": foreign}, agents
            for agent in agents:
                agent.stop()
    finally:
        for agent in agents:
            agent.stop()
        for host in lab.hosts:
            host.vsctl("--if-exists", "del-br", "br0")
            for key in CLEAN_KEYS:
                host.vsctl("remove", "Open_vSwitch", ".", "other_config", key)


def test_agents_build_a_certificate_ipsec_mesh_and_a_foreign_ca_host_is_refused_ike_only(
    ipsec_cluster, tmp_path
):
    lab, etcd, ikes, pkis, agents = ipsec_cluster
    h1, h2, h3 = lab.hosts
    ike1, ike2, ike3 = ikes
    certs = [
        _set_certificate(ike1, pkis["ours"], "h1"),
        _set_certificate(ike2, pkis["ours"], "h2"),
        _set_certificate(ike3, pkis["foreign"], "h3"),
    ]
    for host, ike, cert in zip(lab.hosts, ikes, certs, strict=True):
        agents.append(_agent(etcd, host, ike, tmp_path, cert))
    for agent in agents:
        agent.wait_event("peers", timeout=60, where=lambda e: e["count"] == 2)

    # Each tunnel names the peer's certificate CN, as its record published it.
    wait_until(
        lambda: _options(h1) == {h2.underlay_ip: "h2", h3.underlay_ip: "h3"}, 20, "h1's tunnels"
    )
    assert _options(h2) == {h1.underlay_ip: "h1", h3.underlay_ip: "h3"}
    status = json.loads(etcd.ovsnet("--json", "cluster", "status", *etcd.cli_args("root")).stdout)
    published = {h["name"]: h for h in status["hosts"]}
    assert set(published) == {"h1", "h2", "h3"}

    # h1 <-> h2: IKE established with the certificates of the fleet's CA.
    port = port_name(IPv4Address(h2.underlay_ip))
    conn = ike1.wait_for_connection(port, "public key")
    ike2.wait_for_connection(port_name(IPv4Address(h1.underlay_ip)), "public key")
    up = ike1.up(conn)
    assert "established between 198.51.100.11[h1]...198.51.100.12[h2]" in up.stdout, (
        up.stdout + describe(ike2)
    )
    # h1 -> h3: h3's record looks right (CN, fingerprint), but its certificate is from another
    # CA: IKE refuses it, so no SA carries anything to or from h3.
    conn3 = ike1.wait_for_connection(port_name(IPv4Address(h3.underlay_ip)), "public key")
    refused = ike1.up(conn3)
    assert "established between" not in refused.stdout
    assert "AUTHENTICATION_FAILED" in refused.stdout or "AUTH_FAILED" in refused.stdout, (
        refused.stdout + describe(ike3)
    )
    assert not any(s.startswith(f"{conn3}[") and "ESTABLISHED" in s for s in ike1.ike_sas())


def test_a_record_without_a_certificate_identity_gets_no_tunnel_and_the_reason_is_logged(
    ipsec_cluster, tmp_path
):
    lab, etcd, ikes, pkis, agents = ipsec_cluster
    h1, h2, h3 = lab.hosts
    ike1, ike2, ike3 = ikes
    cert1 = _set_certificate(ike1, pkis["ours"], "h1")
    cert2 = _set_certificate(ike2, pkis["ours"], "h2")
    # h3 is set up with its own certificate but is told to publish h2's: its agent refuses
    # to start (a fingerprint OVS would not present), before publishing anything.
    _set_certificate(ike3, pkis["ours"], "h3")
    agents.append(_agent(etcd, h1, ike1, tmp_path, cert1))
    liar = _agent(etcd, h3, ike3, tmp_path, cert2)
    assert liar.process.wait(60) == 2, liar.log_tail()
    assert "not the one given with --ipsec-cert" in liar.log_tail()
    agents[0].wait_event("peers", timeout=60)  # h1 alone: no peers
    assert "h3" not in json.dumps(agents[0].events("peers"))
    # A record that says "cert" but names no certificate (written with h2's own etcd
    # credentials, as a broken or hostile h2 could): h1 leaves it out and says why.
    record = {
        "name": "h2",
        "underlay_ip": h2.underlay_ip,
        "subnet": "10.0.99.0/24",
        "tunnel_type": "gre",
        "ipsec": {"method": "cert"},
    }
    put = [
        "ip", "netns", "exec", etcd.netns, sys.executable, "-c",
        "import sys; from ovsnet.etcd.client import Etcd; "
        "from ovsnet.etcd.config import EtcdConfig; "
        "c = EtcdConfig(*sys.argv[1:5]); Etcd(c).put(sys.argv[5], sys.argv[6])",
        *etcd.cli_args("h2")[1::2], KEYS.host("h2"), json.dumps(record),
    ]  # fmt: skip
    subprocess.run(put, check=True, capture_output=True, timeout=60)
    skipped = agents[0].wait_event(
        "peer-skipped", timeout=30, where=lambda e: e["problem"].startswith("h2:")
    )
    assert "publishes no certificate name and fingerprint" in skipped["problem"]
    assert h2.underlay_ip not in _options(h1)
    # `cluster status` shows the record as it is: method cert, no name.
    status = json.loads(etcd.ovsnet("--json", "cluster", "status", *etcd.cli_args("root")).stdout)
    assert {h["name"] for h in status["hosts"]} == {"h1", "h2"}
