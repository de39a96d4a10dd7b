"""The agent's data-plane job (ovsnet.cluster.reconcile): when it asks the data plane to apply.

The data plane here is a fake that records its calls (the real one is run in
tests/lab/test_agent_peer_sync.py and the agent lab tests)."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

from ovsnet.cluster.agent_config import AgentConfig
from ovsnet.cluster.reconcile import Reconciler
from ovsnet.cluster.records import HostRecord
from ovsnet.errors import OperationFailed

SUPERNET = IPv4Network("10.0.0.0/8")
OWN = IPv4Network("10.0.1.0/24")


class FakeDataplane:
    def __init__(self):
        self.applied: list[tuple[str, ...]] = []
        self.fail = False

    def current_subnet(self):
        return None

    def init(self, subnet):
        return {}

    def apply_peers(self, peers, names=(), subnets=None):
        if self.fail:
            raise OperationFailed("vswitchd refused")
        self.applied.append(peers)
        return {"read": "cache" if len(self.applied) > 1 else "no copy yet"}

    def local_addresses(self):
        return set()

    def forget(self):
        pass

    def stale(self):
        return None


def records(*indexes: int) -> dict[str, HostRecord]:
    hosts = [HostRecord(f"h{i}", IPv4Address(f"198.51.100.{i}"), IPv4Network(f"10.0.{i}.0/24"))
             for i in indexes]  # fmt: skip
    return {h.name: h for h in hosts}


def reconciler() -> tuple[Reconciler, FakeDataplane, list[dict]]:
    config = AgentConfig(name="h1", underlay_ip=IPv4Address("198.51.100.1"), supernet=SUPERNET)
    events: list[dict] = []
    dataplane = FakeDataplane()

    def event(kind, level=None, **fields):
        events.append({"event": kind, **fields})

    return Reconciler(config, dataplane, event), dataplane, events


def test_fake_dataplane_is_asked_only_on_a_change_or_when_forced():
    subject, dataplane, events = reconciler()
    assert subject.reconcile(OWN, records(1, 2, 3))
    assert subject.reconcile(OWN, records(1, 2, 3))  # nothing changed: no apply
    assert dataplane.applied == [("198.51.100.2", "198.51.100.3")]
    assert subject.reconcile(OWN, records(1, 2, 3), force=True)  # the resync, a stale copy
    assert len(dataplane.applied) == 2
    peers = [e for e in events if e["event"].startswith("peers")]
    assert [(e["event"], e["read"]) for e in peers] == [("peers", "no copy yet"),
                                                         ("peers-checked", "cache")]  # fmt: skip
    assert peers[0]["added"] == ["198.51.100.2", "198.51.100.3"]


def test_fake_dataplane_refusal_is_retried_until_it_takes_the_peers():
    subject, dataplane, events = reconciler()
    dataplane.fail = True
    assert not subject.reconcile(OWN, records(1, 2))
    assert subject.applied is None
    dataplane.fail = False
    assert subject.reconcile(OWN, records(1, 2))
    assert subject.applied == ("198.51.100.2",)
    assert [e["event"] for e in events if e["event"] != "initialised"] == ["apply-failed", "peers"]
