"""The agent against hostile records and a watch that ends or goes quiet, with real etcd.

- Bad records of many kinds sit in etcd next to good hosts: agents on lab hosts (real OVS,
  etcd in the switch namespace) still build the mesh, take in a new host and drop a dead one;
  `cluster status` lists the bad records; each agent logs each one once.
- The watch: the facade reports every way a real etcd ends a watch (a cancel for permission,
  a compaction, etcd stopping). A watch that goes quiet without a word (injected: the real
  watch is cancelled behind the agent's back) is caught by the periodic resync, and the change
  made meanwhile reaches a real OVS. With etcd gone longer than the TTL the agent keeps or drops
  its tunnels as configured, and says so.
- `--insecure`: a plain-http etcd is refused without it and used with it.
"""

from __future__ import annotations

import collections
import json
import shutil
import signal
import subprocess
import sys
import threading
import time
from ipaddress import IPv4Address, IPv4Network

import pytest

from ovsnet.cluster.agent import Agent
from ovsnet.cluster.agent_config import AgentConfig
from ovsnet.cluster.dataplane import DataplaneConfig, OvsDataplane
from ovsnet.cluster.keys import ClusterKeys
from ovsnet.cluster.records import HostRecord
from ovsnet.errors import OvsnetError
from ovsnet.etcd.client import Etcd
from ovsnet.etcd.errors import EtcdDenied, WatchEnded
from tests.lab.agent_harness import (
    NetnsContainer,
    add_docker_bridge,
    cluster_status,
    configure_docker_bridge,
    etcd_in_switch,
    tunnels,
)
from tests.lab.etcd_harness import etcd_server, free_port, wait_until  # noqa: F401 - fixture
from tests.lab.test_agent_mesh import all_pairs_ping, configure_docker, start_agent, wait_for_mesh

pytestmark = pytest.mark.lab
KEYS = ClusterKeys()
TTL = 5


def record(name: str, underlay_ip, subnet, **extra) -> bytes:
    return json.dumps(
        {"name": name, "underlay_ip": underlay_ip, "subnet": subnet, **extra}
    ).encode()


# Written before any agent starts (read by the first full read) ...
EARLY_BAD = {
    "/ovsnet/hosts/junk": b"\xff\xfe not json",
    "/ovsnet/hosts/loop": record("loop", "127.0.0.1", "10.0.200.0/24"),
    "/ovsnet/hosts/typed": record("typed", 3325256800, ["10.0.201.0/24"]),
    "/ovsnet/hosts/liar": record("h2", "198.51.100.66", "10.0.202.0/24"),
    "/ovsnet/hosts/bad name": record("bad name", "198.51.100.67", "10.0.203.0/24"),
}
# ... and while agents run (arriving through the watch).
LATE_BAD = {
    "/ovsnet/hosts/mcast": record("mcast", "224.0.0.5", "10.0.204.0/24"),
    "/ovsnet/hosts/huge": record("huge", "198.51.100.68", "10.0.205.0/24", pad="x" * 100_000),
    "/ovsnet/hosts/ctl": record("ctl", "198.51.100.69", "10.0.206.0/24", started_at="\x1b[2J"),
}
# A well-formed record no agent can use: its underlay address is inside the overlay (peer
# sync refuses it, and before agents left it out, it made every agent's sync fail).
INSIDE_OVERLAY = {"/ovsnet/hosts/inside": record("inside", "10.9.9.9", "10.0.207.0/24")}


def put_as_root(etcd, key: str, value: bytes) -> None:
    """Write a raw value with etcdctl as root (not through ovsnet), in etcd's namespace."""
    creds = etcd.credentials("root")
    argv = ["etcdctl", "--endpoints", etcd.url, "--cacert", creds.ca]
    argv += ["--cert", creds.cert, "--key", creds.key, "put", key]
    if etcd.netns:
        argv = ["ip", "netns", "exec", etcd.netns, *argv]
    subprocess.run(argv, input=value, capture_output=True, timeout=30, check=True)


def test_bad_records_never_stop_the_good_hosts_from_meshing(lab_factory, tmp_path):
    lab = lab_factory(3, docker=False)
    h1, h2, h3 = lab.hosts
    agents = {}
    containers: list[NetnsContainer] = []
    with etcd_in_switch(lab, tmp_path / "etcd") as etcd:
        etcd.grant(*(h.name for h in lab.hosts))
        try:
            for key, value in (EARLY_BAD | INSIDE_OVERLAY).items():
                put_as_root(etcd, key, value)
            for host in (h1, h2):
                agents[host.name] = start_agent(etcd, host, tmp_path, "--resync-interval", "2")
            subnets = {h.name: configure_docker(agents[h.name], h) for h in (h1, h2)}
            wait_for_mesh([h1, h2])
            for key, value in LATE_BAD.items():
                put_as_root(etcd, key, value)

            # A new good host joins: everyone gets a tunnel to it, and traffic flows.
            agents[h3.name] = start_agent(etcd, h3, tmp_path, "--resync-interval", "2")
            subnets[h3.name] = configure_docker(agents[h3.name], h3)
            wait_for_mesh(lab.hosts)
            containers += [NetnsContainer(h, subnets[h.name]) for h in (h1, h3)]
            assert all_pairs_ping(containers) == []

            # A good host dies: its tunnels go once its lease has run out.
            agents[h2.name].stop(signal.SIGKILL)
            wait_for_mesh([h1, h3], timeout=TTL + 20)

            status = cluster_status(etcd)
            reasons = {bad["key"]: bad["reason"] for bad in status["bad_records"]}
            assert set(reasons) == set(EARLY_BAD) | set(LATE_BAD), reasons
            assert "loopback space" in reasons["/ovsnet/hosts/loop"]
            assert "names host h2, not liar" in reasons["/ovsnet/hosts/liar"]
            assert "more than the" in reasons["/ovsnet/hosts/huge"]
            assert "control character" in reasons["/ovsnet/hosts/ctl"]
            assert {h["name"] for h in status["hosts"] if h["state"] == "live"} == {
                "h1",
                "h3",
                "inside",
            }
            for host in (h1, h3):
                agent = agents[host.name]
                # Logged once per record, although every resync read them all again.
                logged = collections.Counter(e["key"] for e in agent.events("bad-record"))
                assert logged == dict.fromkeys(reasons, 1), logged
                assert len(agent.events("resynced")) >= 2
                assert agent.events("apply-failed") == []
                skipped = [e["problem"] for e in agent.events("peer-skipped")]
                assert any("inside the overlay supernet" in line for line in skipped), skipped
                assert "Traceback" not in agent.log_path.read_text()
        finally:
            for agent in agents.values():
                agent.stop()
            for container in containers:
                container.remove()


# -- the watch, through the facade ----------------------------------------------------------


def test_the_facade_reports_every_end_of_a_real_watch(etcd_server):  # noqa: F811
    etcd_server.grant_direct("h1")
    with etcd_server.client("h1") as h1, etcd_server.client("root") as root:
        # etcd creates, then cancels a watch the user may not read (pyetcd never said so).
        with pytest.raises(EtcdDenied, match="denied watching /elsewhere/"):
            h1.watch_prefix("/elsewhere/", 1, print, print)

        # A watch from a revision etcd has compacted away ends with a WatchEnded.
        for i in range(3):
            root.put("/x/a", str(i))
        root.client.compact(root.read_prefix("/x/").revision)
        ended: list[Exception] = []
        root.watch_prefix("/x/", 2, lambda changes: None, ended.append)
        wait_until(lambda: ended, 10, "the compacted watch to end")
        assert isinstance(ended[0], WatchEnded) and "compacted" in str(ended[0])

        # Changes arrive in order; cancel() is silent; etcd stopping is reported once.
        changes, errors = [], []
        revision = root.read_prefix("/x/").revision
        cancel = root.watch_prefix("/x/", revision + 1, changes.extend, errors.append)
        root.put("/x/b", "1")
        root.delete("/x/b")
        wait_until(lambda: len(changes) == 2, 10, "two changes")
        assert [c.value for c in changes] == [b"1", None]
        assert changes[1].mod_revision > changes[0].mod_revision > revision
        cancel()
        quiet_errors: list[Exception] = []
        root.watch_prefix("/x/", revision + 1, lambda changes: None, quiet_errors.append)
        etcd_server.stop()
        wait_until(lambda: quiet_errors, 20, "the watch to report etcd's end")
        time.sleep(1)
        assert errors == [] and len(quiet_errors) == 1
        assert isinstance(quiet_errors[0], OvsnetError) and "etcd at" in str(quiet_errors[0])


class QuietWatch(Etcd):
    """The real facade over the real etcd, except that every watch is cancelled right after
    it starts, behind the agent's back: a stream that stays open and delivers nothing
    (injected fault; the kind of stall only a full read can find)."""

    def watch_prefix(self, prefix, start_revision, on_changes, on_error):
        cancel = super().watch_prefix(prefix, start_revision, on_changes, on_error)
        cancel()
        return cancel


@pytest.fixture
def one_host(lab_factory):
    """A lab host after `ovsnet init` (real OVS), whose tunnels an in-process agent manages."""
    lab = lab_factory(1, docker=False)
    host = lab.hosts[0]
    add_docker_bridge(host)
    configure_docker_bridge(host, host.subnet)
    done = host.ovsnet("init", "--prefix", host.prefix, "--datapath", "netdev")
    assert done.returncode == 0, done.stderr
    return host


def in_process_agent(host, etcd_server, connect, **options):  # noqa: F811
    """An Agent in this process managing the lab host's real OVS (tunnels only)."""
    supernet = IPv4Network("10.0.0.0/8")
    config = AgentConfig(
        name=host.name,
        underlay_ip=IPv4Address(host.underlay_ip),
        supernet=supernet,
        explicit_subnet=IPv4Network(host.subnet),
        ttl=3,
        **options,
    )
    dataplane = OvsDataplane(
        DataplaneConfig(db=host.db, supernet=supernet, datapath="netdev", init=False)
    )
    events: list[dict] = []
    return Agent(config, connect, dataplane, emit=events.append), events


@pytest.mark.parametrize("on_etcd_loss", ["keep", "drop"])
def test_a_quiet_watch_is_caught_by_the_resync_and_etcd_loss_does_what_it_says(
    one_host,
    etcd_server,  # noqa: F811
    on_etcd_loss,
):
    host = one_host
    etcd_server.grant_direct(host.name)
    agent, events = in_process_agent(
        host,
        etcd_server,
        lambda: QuietWatch(etcd_server.config(host.name)),
        resync_interval=2,
        on_etcd_loss=on_etcd_loss,
    )

    def seen(kind: str, **fields) -> dict | None:
        return next(
            (
                e
                for e in events
                if e["event"] == kind and all(e.get(k) == v for k, v in fields.items())
            ),
            None,
        )

    runner = threading.Thread(target=agent.run, daemon=True)
    runner.start()
    try:
        wait_until(lambda: seen("connected"), 30, "the agent to connect")
        peer = HostRecord("peer9", IPv4Address("198.51.100.99"), IPv4Network("10.0.99.0/24"))
        with etcd_server.client("root") as root:
            root.put(KEYS.host("peer9"), peer.to_json())
        # The watch delivers nothing: the resync (every 2 s) finds the new host.
        wait_until(lambda: "198.51.100.99" in tunnels(host), 15, "the tunnel to peer9")
        assert seen("resynced", drift=True)

        etcd_server.stop()
        lost = wait_until(lambda: seen("etcd-lost"), 30, "the agent to report etcd's loss")
        assert lost["action"] == on_etcd_loss and lost["tunnels"] == 1
        if on_etcd_loss == "keep":
            assert "keeping the 1 tunnels" in lost["message"]
            assert tunnels(host) == {"198.51.100.99"}
        else:
            assert "removed every tunnel" in lost["message"]
            wait_until(lambda: tunnels(host) == set(), 10, "the tunnels to go")
            etcd_server.start()
            wait_until(lambda: tunnels(host) == {"198.51.100.99"}, 30, "the tunnel to return")
    finally:
        agent.stop()
        runner.join(30)
        agent.dataplane.close()
    assert not runner.is_alive()


def test_an_ended_watch_is_noticed_at_once_and_a_full_read_finds_what_it_missed(
    one_host,
    etcd_server,  # noqa: F811
):
    """The first watch is silenced at once and reported as ended only later (an end of
    stream injected through the facade): the agent must not wait for its resync."""
    host = one_host
    etcd_server.grant_direct(host.name)
    pending_ends = []

    class EndedOnce(Etcd):
        def watch_prefix(self, prefix, start_revision, on_changes, on_error):
            cancel = super().watch_prefix(prefix, start_revision, on_changes, on_error)
            if not pending_ends:
                cancel()
                pending_ends.append(on_error)
            return cancel

    agent, events = in_process_agent(
        host, etcd_server, lambda: EndedOnce(etcd_server.config(host.name)), resync_interval=300
    )
    runner = threading.Thread(target=agent.run, daemon=True)
    runner.start()
    try:
        wait_until(lambda: pending_ends and agent.applied is not None, 30, "the first reconcile")
        peer = HostRecord("peer8", IPv4Address("198.51.100.98"), IPv4Network("10.0.98.0/24"))
        with etcd_server.client("root") as root:
            root.put(KEYS.host("peer8"), peer.to_json())
        time.sleep(1.5)
        assert "198.51.100.98" not in tunnels(host)  # the silenced watch delivered nothing
        pending_ends[0](WatchEnded("the watch on etcd ended (injected)"))
        ended = time.monotonic()
        wait_until(lambda: "198.51.100.98" in tunnels(host), 15, "the tunnel to peer8")
        assert time.monotonic() - ended < 15  # not the 300 s resync
        reasons = [e["reason"] for e in events if e["event"] == "disconnected"]
        assert reasons == ["the watch on etcd ended (injected)"]
        assert len([e for e in events if e["event"] == "connected"]) == 2
    finally:
        agent.stop()
        runner.join(30)
        agent.dataplane.close()
    assert not runner.is_alive()


# -- --insecure ------------------------------------------------------------------------------


@pytest.fixture
def plain_etcd(tmp_path):
    """etcd over plain http:// on 127.0.0.1, no auth. Stopped by PID."""
    assert shutil.which("etcd"), "etcd is not installed: run scripts/setup.sh"
    client, peer = free_port(), free_port()
    url = f"http://127.0.0.1:{client}"
    log = open(tmp_path / "etcd.log", "wb")  # noqa: SIM115 - lives with etcd
    process = subprocess.Popen(
        [
            "etcd",
            "--name",
            "plain",
            "--data-dir",
            str(tmp_path / "data"),
            "--listen-client-urls",
            url,
            "--advertise-client-urls",
            url,
            "--listen-peer-urls",
            f"http://127.0.0.1:{peer}",
            "--initial-advertise-peer-urls",
            f"http://127.0.0.1:{peer}",
            "--initial-cluster",
            f"plain=http://127.0.0.1:{peer}",
        ],
        stdout=log,
        stderr=log,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_until(
            lambda: "ready to serve client requests" in (tmp_path / "etcd.log").read_text(),
            20,
            "etcd to start",
        )
        yield url
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
        log.close()


def test_plain_http_etcd_needs_insecure(plain_etcd):
    refused = run_ovsnet("--json", "cluster", "status", "--etcd", plain_etcd)
    assert refused.returncode == 2
    assert "plain http://" in refused.stderr and "--insecure" in refused.stderr
    allowed = run_ovsnet("--json", "cluster", "status", "--etcd", plain_etcd, "--insecure")
    assert allowed.returncode == 0, allowed.stderr
    assert json.loads(allowed.stdout) == {"hosts": [], "problems": [], "bad_records": []}


def run_ovsnet(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ovsnet", *args],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
