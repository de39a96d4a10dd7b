"""Cluster mode against a real etcd (TLS, client-certificate auth, per-host RBAC).

No data plane here (`agent --no-dataplane`, which runs the same claim/publish/watch code);
the mesh itself is tested in test_agent_mesh.py.
"""

from __future__ import annotations

import json
import signal
import time

import pytest

from ovsnet.cluster.keys import ClusterKeys
from ovsnet.cluster.records import HostRecord, claim_value
from ovsnet.etcd.client import Etcd
from ovsnet.etcd.config import EtcdConfig
from ovsnet.etcd.errors import EtcdDenied, EtcdUnavailable
from tests.lab.agent_harness import agent_argv, cluster_status
from tests.lab.etcd_harness import AgentProcess, EtcdServer, etcd_server, wait_until  # noqa: F401 - pytest fixture

pytestmark = pytest.mark.lab
KEYS = ClusterKeys()


def no_dataplane_agent(etcd, tmp_path, name: str, index: int, *extra: str, ttl: int = 5):
    argv = agent_argv(
        etcd, name, "--no-dataplane", "--underlay-ip", f"198.51.100.{index}", *extra, ttl=ttl
    )
    return AgentProcess(name, argv, tmp_path)


# -- security ---------------------------------------------------------------------------------


def test_host_credentials_write_only_the_hosts_own_keys(etcd_server):  # noqa: F811
    etcd_server.grant("h1", "h2", "h10")
    record = HostRecord.from_json(
        json.dumps({"name": "h1", "underlay_ip": "198.51.100.11", "subnet": "10.0.1.0/24"})
    )
    with etcd_server.client("h1") as h1, etcd_server.client("root") as root:
        h1.put(KEYS.host("h1"), record.to_json())
        h1.put(KEYS.last_subnet("h1"), "{}")
        for key in (
            KEYS.host("h2"),
            KEYS.host("h10"),
            KEYS.last_subnet("h2"),
            "/elsewhere/x",
            "/ovsnet/other",
        ):
            with pytest.raises(EtcdDenied):
                h1.put(key, "x")
        root.put(KEYS.host("h2"), record.to_json().replace("h1", "h2"))
        with pytest.raises(EtcdDenied):
            h1.delete(KEYS.host("h2"))
        # Reading every host record is allowed: records hold nothing secret.
        assert set(h1.read_prefix(KEYS.hosts).items) == {KEYS.host("h1"), KEYS.host("h2")}
        # What stays shared by design: subnet claims. h1 can create and delete any claim.
        root.put(KEYS.subnet(record.subnet), claim_value("h2"))
        assert h1.delete(KEYS.subnet(record.subnet))
        # Host users cannot manage users or roles.
        with pytest.raises(EtcdDenied):
            h1.ensure_host_role("h1", "ovsnet-host-h1", [])


def test_client_certificate_from_another_ca_is_refused(etcd_server, tmp_path):  # noqa: F811
    """Refused in the TLS handshake, by a server that answers the same call with good
    credentials just before and after (so "unavailable" cannot mean "etcd is down")."""
    etcd_server.grant("h1")
    good = etcd_server.credentials("h1")
    trusted = EtcdConfig(etcd_server.url, good.cert, good.key, good.ca, timeout=2)
    stranger = EtcdServer(tmp_path / "other-ca")  # a second CA, never started
    creds = stranger.credentials("h1")
    foreign = EtcdConfig(etcd_server.url, creds.cert, creds.key, good.ca, timeout=2)
    with Etcd(trusted) as client:
        client.read_prefix(KEYS.hosts)
    with Etcd(foreign) as client, pytest.raises(EtcdUnavailable) as refused:
        client.read_prefix(KEYS.hosts)
    with Etcd(trusted) as client:
        client.read_prefix(KEYS.hosts)
    stranger.close()
    message = refused.value.message
    assert "Connection refused" not in message and "Deadline" not in message, message
    # gRPC names the failed handshake in its own words (seen: "Unwrap failed (TSI_...)").
    assert any(word in message for word in ("TSI_", "handshake", "SSL", "ertificate")), message


def _log(etcd: EtcdServer) -> str:
    return (etcd.workdir / "etcd.log").read_text(errors="replace")


def _refused_at_tls(etcd: EtcdServer, cert, key) -> None:
    trust = etcd.credentials("root").ca  # the etcd-server CA: the client side is right
    config = EtcdConfig(etcd.url, str(cert), str(key), trust, timeout=2)
    with Etcd(config) as client, pytest.raises(EtcdUnavailable):
        client.read_prefix(KEYS.hosts)


def test_only_etcd_client_certificates_get_in_not_ike_or_docker_ones(etcd_server):  # noqa: F811
    from ovsnet.pki import issue as pki_issue

    etcd_server.grant("h1")  # etcd user h1 exists: a refusal is TLS's, not RBAC's
    ike = pki_issue.ensure_host_cert(etcd_server.pki, "h1")
    _, docker_client = pki_issue.ensure_docker_certs(etcd_server.pki, "h1")
    docker_client_as_h1 = pki_issue.ensure_leaf(
        etcd_server.pki,
        pki_issue.leaf_request(etcd_server.pki, "docker-client", "h1x", common_name="h1"),
    )
    for issued in (ike, docker_client, docker_client_as_h1):
        _refused_at_tls(etcd_server, issued.cert_path, issued.key_path)
    refusals = "certificate signed by unknown authority"
    wait_until(lambda: _log(etcd_server).count(refusals) >= 3, 5, "three refusals in etcd's log")
    with etcd_server.client("h1") as h1:
        h1.read_prefix(KEYS.hosts)  # the etcd-client certificate of the same name gets in


def test_a_revoked_etcd_client_certificate_is_refused(etcd_server):  # noqa: F811
    from ovsnet.pki import lifecycle as pki_lifecycle

    etcd_server.grant("h2")
    creds = etcd_server.credentials("h2")
    with etcd_server.client("h2") as h2:
        h2.read_prefix(KEYS.hosts)
    # etcd --client-crl-file names this file and reads it for every new connection.
    serial = pki_lifecycle.revoke(etcd_server.pki, "etcd-client", "h2").added
    _refused_at_tls(etcd_server, creds.cert, creds.key)
    wait_until(lambda: f"certificate serial {serial} revoked" in _log(etcd_server), 5, "etcd log")
    with etcd_server.client("root") as root:  # others still get in
        root.read_prefix(KEYS.hosts)


def test_grant_is_idempotent(etcd_server):  # noqa: F811
    etcd_server.grant("h1")
    done = etcd_server.ovsnet("--json", "cluster", "grant", "h1", *etcd_server.cli_args())
    assert json.loads(done.stdout)["steps"] == []


# -- claims -----------------------------------------------------------------------------------


def test_twenty_agents_started_together_claim_twenty_distinct_subnets(etcd_server, tmp_path):  # noqa: F811
    names = [f"n{i}" for i in range(1, 21)]
    etcd_server.grant_direct(*names)
    agents = [no_dataplane_agent(etcd_server, tmp_path, n, 100 + i) for i, n in enumerate(names)]
    try:
        for agent in agents:
            agent.start()
        claimed = {a.name: a.wait_event("claimed", timeout=90)["subnet"] for a in agents}
        assert len(set(claimed.values())) == 20, claimed
        # Every agent ends up watching all 20 records and wants a tunnel to the 19 others.
        for agent in agents:
            agent.wait_event("peers", timeout=60, where=lambda e: e["count"] == 19)
        status = cluster_status(etcd_server)
        assert {h["name"]: h["subnet"] for h in status["hosts"]} == claimed
        assert status["problems"] == []
        for agent in agents:
            assert agent.events("disconnected") == [], agent.log_tail()
            assert "Traceback" not in agent.log_path.read_text()
    finally:
        for agent in agents:
            agent.stop()


def test_restart_keeps_the_subnet_and_a_stale_host_does_not_steal(etcd_server, tmp_path):  # noqa: F811
    etcd_server.grant("a", "b")
    a = no_dataplane_agent(etcd_server, tmp_path, "a", 11).start()
    try:
        first = a.wait_event("claimed")["subnet"]
        # A crash and a restart within the TTL: the same subnet, re-taken under a new lease.
        a.stop(signal.SIGKILL)
        a.start()
        again = a.wait_event("claimed", after=time.time() - 0.5)
        assert again["subnet"] == first
        a.stop(signal.SIGKILL)
        # Away longer than the lease: the record expires, and b reserves a's old subnet.
        wait_until(
            lambda: not any(h["state"] == "live" for h in cluster_status(etcd_server)["hosts"]),
            20,
            "a's lease to expire",
        )
        b = no_dataplane_agent(
            etcd_server, tmp_path, "b", 12, "--prefix", first.rsplit(".", 1)[0]
        ).start()
        assert b.wait_event("claimed")["subnet"] == first
        # a comes back: it must not steal its old subnet; it takes another and says so.
        a.start()
        back = a.wait_event("claimed", after=time.time() - 0.5)
        assert back["subnet"] != first
        warning = a.wait_event("displaced")["message"]
        assert first in warning and "held by b" in warning
        hosts = {h["name"]: h for h in cluster_status(etcd_server)["hosts"]}
        assert hosts["b"]["subnet"] == first and hosts["a"]["subnet"] == back["subnet"]
        b.stop()
    finally:
        a.stop()


def test_explicit_prefix_held_by_another_host_fails_with_exit_2(etcd_server, tmp_path):  # noqa: F811
    etcd_server.grant("a", "b")
    a = no_dataplane_agent(etcd_server, tmp_path, "a", 11, "--prefix", "10.0.42").start()
    try:
        assert a.wait_event("claimed")["subnet"] == "10.0.42.0/24"
        b = no_dataplane_agent(etcd_server, tmp_path, "b", 12, "--prefix", "10.0.42").start()
        assert b.process.wait(30) == 2
        err = b.log_path.read_text()
        assert "10.0.42.0/24 is held by host a" in err and "Traceback" not in err
    finally:
        a.stop()


def test_release_frees_a_dead_hosts_subnet_and_record_at_once(etcd_server, tmp_path):  # noqa: F811
    etcd_server.grant("a")
    a = no_dataplane_agent(etcd_server, tmp_path, "a", 11, ttl=600).start()
    subnet = a.wait_event("claimed")["subnet"]
    a.stop(signal.SIGKILL)  # dead, but its lease would hold for 10 minutes
    done = etcd_server.ovsnet(
        "--json", "cluster", "release", "a", "--dry-run", *etcd_server.cli_args()
    )
    assert (
        json.loads(done.stdout)["steps"]
        and cluster_status(etcd_server)["hosts"][0]["state"] == "live"
    )
    done = etcd_server.ovsnet("--json", "cluster", "release", "a", *etcd_server.cli_args())
    assert f"free subnet {subnet}" in json.loads(done.stdout)["steps"]
    assert cluster_status(etcd_server)["hosts"] == []
    with etcd_server.client("root") as root:
        assert root.read_prefix("/ovsnet/").items == {}
    again = etcd_server.ovsnet("--json", "cluster", "release", "a", *etcd_server.cli_args())
    assert json.loads(again.stdout)["changed"] is False


def test_cluster_status_without_etcd_is_a_clear_exit_3(etcd_server):  # noqa: F811
    args = etcd_server.cli_args()
    etcd_server.stop()
    done = etcd_server.ovsnet("cluster", "status", *args, check=False)
    assert done.returncode == 3
    assert "unavailable" in done.stderr and "Traceback" not in done.stderr


def test_a_live_agent_released_by_mistake_claims_its_subnet_again(etcd_server, tmp_path):  # noqa: F811
    etcd_server.grant("a", "b")
    a = no_dataplane_agent(etcd_server, tmp_path, "a", 11).start()
    b = no_dataplane_agent(etcd_server, tmp_path, "b", 12).start()
    try:
        subnet = a.wait_event("claimed")["subnet"]
        b.wait_event("peers", where=lambda e: e["count"] == 1)
        released = time.time()
        etcd_server.ovsnet("cluster", "release", "a", *etcd_server.cli_args())
        again = a.wait_event("claimed", after=released)
        assert again["subnet"] == subnet
        # b saw a leave and come back (or only the new record): it ends with its tunnel to a.
        wait_until(
            lambda: (
                (b.last("peers") or {}).get("count") == 1
                and {h["name"] for h in cluster_status(etcd_server)["hosts"]} == {"a", "b"}
            ),
            20,
            "a to be back in b's peers and in etcd",
        )
    finally:
        a.stop()
        b.stop()


# -- metrics and JSON logs ----------------------------------------------------------------------


def scrape(port: int, path: str = "/metrics") -> tuple[int, str]:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as reply:
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def sample(body: str, name: str) -> float | None:
    for line in body.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_agent_serves_its_metrics_and_logs_json_lines(etcd_server, tmp_path):  # noqa: F811
    from tests.lab.etcd_harness import free_port

    etcd_server.grant("m1", "m2")
    port = free_port()
    m1 = no_dataplane_agent(etcd_server, tmp_path, "m1", 31, "--metrics-listen",
                            f"127.0.0.1:{port}", "--log-format", "json")  # fmt: skip
    m2 = no_dataplane_agent(etcd_server, tmp_path, "m2", 32)
    try:
        m1.start()
        m1.wait_event("claimed")
        m2.start()
        m1.wait_event("peers", where=lambda e: e["count"] == 1)
        wait_until(lambda: sample(scrape(port)[1], "ovsnet_agent_hosts_seen") == 2, 10,
                   "m1 to report two hosts")  # fmt: skip
        _, body = scrape(port)
        assert 0 < sample(body, "ovsnet_agent_lease_ttl_seconds") <= 5
        assert sample(body, "ovsnet_agent_bad_records_skipped_total") == 0
        assert sample(body, "ovsnet_agent_reconcile_duration_seconds_count") >= 1
        assert sample(body, "ovsnet_build_info") == 1
        assert scrape(port, "/healthz") == (200, "ok\n")
        # A record no agent could use is skipped, and counted.
        with etcd_server.client("root") as root:
            root.put(KEYS.host("garbled"), "{not json")
        wait_until(
            lambda: sample(scrape(port)[1], "ovsnet_agent_bad_records_skipped_total") == 1,
            10,
            "the bad record to be counted",
        )
        lines = [json.loads(line) for line in m1.log_path.read_text().splitlines()]
        claimed = [line for line in lines if line["event"] == "claimed"]
        assert claimed and claimed[0]["level"] == "info" and "subnet" in claimed[0]["fields"]
        assert all({"time", "level", "event", "message"} <= set(line) for line in lines)
        assert "BEGIN" not in m1.log_path.read_text()  # no key material in the log
    finally:
        m1.stop()
        m2.stop()
    assert scrape_refused(port), "the metrics server stops with the agent"


def scrape_refused(port: int) -> bool:
    import urllib.error

    try:
        scrape(port)
    except urllib.error.URLError:
        return True
    return False
