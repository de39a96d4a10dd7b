"""Cluster mode on a real 3-member etcd cluster (TLS, client-certificate auth, RBAC): agents
given every member's URL keep their lease, subnet and watch while the leader dies, while it
comes back, and while another member dies; a host that joins meanwhile is meshed in time.

The agents run `--no-dataplane` (the same claim/publish/watch code as with a data plane),
in this namespace, next to the members on loopback: what is under test is etcd, not tunnels.
"""

from __future__ import annotations

import shutil
import signal
import threading
import time

import pytest

from ovsnet.cluster.keys import ClusterKeys
from ovsnet.etcd.client import Etcd
from ovsnet.etcd.config import EtcdConfig
from ovsnet.etcd.errors import EtcdUnavailable
from tests.lab.agent_harness import agent_argv
from tests.lab.etcd_harness import (  # noqa: F401 - etcd_server is a pytest fixture
    AgentProcess,
    EtcdCluster,
    etcd_server,
    free_port,
    wait_until,
)

pytestmark = pytest.mark.lab
KEYS = ClusterKeys()
TTL = 6


@pytest.fixture
def etcd_cluster(tmp_path):
    if shutil.which("etcd") is None:
        pytest.fail("etcd is not installed: run `bash scripts/setup.sh` (etcd-server)")
    cluster = EtcdCluster(tmp_path / "etcd")
    try:
        yield cluster.start()
    finally:
        cluster.close()


def _agent(cluster, tmp_path, name: str, index: int) -> AgentProcess:
    argv = agent_argv(
        cluster, name, "--no-dataplane", "--underlay-ip", f"198.51.100.{index}", ttl=TTL
    )
    return AgentProcess(name, argv, tmp_path)


def _held(cluster) -> dict[str, tuple[str, int]]:
    """host name -> (subnet, lease) as etcd holds them."""
    from ovsnet.cluster.records import parse_host_entry

    with cluster.client("root") as root:
        items = root.read_prefix(KEYS.hosts).items
    return {
        KEYS.name_of(key): (str(parse_host_entry(KEYS, key, item.value).subnet), item.lease)
        for key, item in items.items()
    }


def _kill(cluster, index: int) -> float:
    member = cluster.members[index]
    at = time.time()  # before: agents watching on it notice within milliseconds
    member.process.send_signal(signal.SIGKILL)  # no goodbye to the others
    member.process.wait(10)
    member.stop()
    return at


class _LeaseWatch:
    """Samples the seconds each agent's lease has left (as root, on every member), from a
    thread, until stopped: the lowest value shows how long keepalives paused."""

    def __init__(self, cluster, leases: dict[str, int]):
        self.cluster = cluster
        self.leases = leases
        self.lowest = {name: float(TTL) for name in leases}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> _LeaseWatch:
        self._thread.start()
        return self

    def _run(self) -> None:
        from ovsnet.errors import OvsnetError

        with self.cluster.client("root") as root:
            while not self._stop.wait(0.2):
                for name, lease in self.leases.items():
                    try:
                        left, _ = root.lease_ttl(lease)
                    except OvsnetError:
                        continue  # during the election: the next sample tells
                    self.lowest[name] = min(self.lowest[name], left)

    def stop(self) -> dict[str, float]:
        self._stop.set()
        self._thread.join(10)
        return self.lowest


def _outage(agent, at: float) -> tuple[float, float] | None:
    """(seconds until the agent noticed, seconds until it was connected again) after a kill
    at `at`, or None when its session went on (its member survived)."""
    lost = [e["ts"] for e in agent.events("disconnected") if at < e["ts"] < at + 2 * TTL]
    if not lost:
        return None
    back = [e["ts"] for e in agent.events("connected") if e["ts"] > lost[0]]
    return round(lost[0] - at, 2), round(back[0] - at, 2) if back else None


def _on_one_member(cluster, agents):
    """(agent, member index) for the first agent connected to exactly one member."""
    for agent in agents:
        members = cluster.member_of(agent.process.pid)
        if len(members) == 1:
            return agent, members.pop()
    return None


def _meshed(agents, count: int) -> bool:
    return all((a.last("peers") or {}).get("count") == count for a in agents)


def test_agents_ride_out_the_loss_and_return_of_members(etcd_cluster, tmp_path):
    cluster = etcd_cluster
    cluster.grant("h1", "h2", "h3", "h4")
    agents = [_agent(cluster, tmp_path, f"h{i}", 10 + i).start() for i in (1, 2, 3)]
    newcomer = _agent(cluster, tmp_path, "h4", 14)
    watcher = None
    try:
        wait_until(lambda: _meshed(agents, 2), 60, "h1..h3 meshed")
        before = _held(cluster)
        assert len({subnet for subnet, _ in before.values()}) == 3

        # Make the member an agent talks to the leader: the kill then hits a watch, a lease
        # keepalive stream and the election at once.
        target, leader = wait_until(
            lambda: _on_one_member(cluster, agents), 10, "an agent's etcd connection"
        )
        cluster.move_leader(leader)
        assert cluster.leader() == leader
        leases = {name: lease for name, (_, lease) in before.items()}
        watcher = _LeaseWatch(cluster, leases).start()
        killed_at = _kill(cluster, leader)
        # A host joins while the cluster elects a new leader.
        newcomer.start()
        claimed = newcomer.wait_event("claimed", timeout=30)
        everyone = [*agents, newcomer]
        wait_until(lambda: _meshed(everyone, 3), TTL, "h4 meshed with h1..h3 within the TTL")
        meshed_after = time.time() - claimed["ts"]
        # Long enough for every lease to have expired had keepalives stopped.
        time.sleep(2 * TTL)
        after_leader = _held(cluster)

        cluster.members[leader].start()
        second = next(i for i in range(3) if i != leader)
        time.sleep(2)  # the returning member catches up before the next one goes
        second_at = _kill(cluster, second)
        time.sleep(2 * TTL)
        after_second = _held(cluster)
        lowest = watcher.stop()

        gaps = {}
        for agent in agents:
            agent.check_alive()
            # Each agent claimed once: never lost its lease, never moved.
            assert len(agent.events("claimed")) == 1, agent.log_tail()
            assert not agent.events("lease-expired") and not agent.events("displaced")
            gaps[agent.name] = [_outage(agent, at) for at in (killed_at, second_at)]
        for held in (after_leader, after_second):
            for name, (subnet, lease) in before.items():
                assert held[name] == (subnet, lease), (name, held)
            assert set(held) == {"h1", "h2", "h3", "h4"}
        assert len({subnet for subnet, _ in after_second.values()}) == 4
        # Keepalives went on: no lease came near its end (one is refreshed every TTL/3).
        assert min(lowest.values()) >= TTL / 3, lowest
        assert gaps[target.name][0] is not None  # it was on the killed leader and noticed
        print(
            f"\nleader m{leader}, then m{second} killed: per agent (disconnected after, "
            f"connected again after) in s, None = its session never broke: {gaps}; "
            f"newcomer meshed {meshed_after:.2f} s after its claim; "
            f"disconnects {[len(a.events('disconnected')) for a in agents]}; "
            f"lowest lease TTL left during both outages (of {TTL} s): {lowest}"
        )
    finally:
        for agent in (*agents, newcomer):
            agent.stop()
        if watcher is not None:
            watcher.stop()


def test_every_verb_moves_past_a_member_that_is_down(etcd_server):  # noqa: F811
    """Two URLs, one of them nobody listens on: whichever the facade starts on, reads,
    writes, leases and watches succeed; with both down, one clear "unavailable"."""
    etcd_server.grant("h1")
    good = etcd_server.credentials("h1")
    dead = f"https://127.0.0.1:{free_port()}"
    for order in ((dead, etcd_server.url), (etcd_server.url, dead)):
        config = EtcdConfig(",".join(order), good.cert, good.key, good.ca, timeout=3)
        for _ in range(3):  # the start member is random: several tries see both
            with Etcd(config) as client:
                lease = client.grant_lease(10)
                client.put(KEYS.host("h1"), "{}", lease=lease)
                assert client.keepalive(lease) > 0
                cancel = client.watch_prefix(KEYS.hosts, 1, lambda c: None, lambda e: None)
                cancel()
                assert KEYS.host("h1") in client.read_prefix(KEYS.hosts).items
                assert client.where == etcd_server.url
                client.revoke_lease(lease)
    both_dead = EtcdConfig(
        f"{dead},https://127.0.0.1:{free_port()}", good.cert, good.key, good.ca, timeout=2
    )
    with Etcd(both_dead) as client, pytest.raises(EtcdUnavailable):
        client.read_prefix(KEYS.hosts)
