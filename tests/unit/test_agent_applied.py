"""The agent's copy of what it applied (ovsnet.cluster.applied): when it holds, and what a
change leaves. Pure: no OVS here (tests/lab/test_agent_peer_sync.py runs the real thing)."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

from hypothesis import given
from hypothesis import strategies as st

from ovsnet import antispoof
from ovsnet.cluster.applied import (
    ANSWER_COLUMNS,
    Applied,
    FlowState,
    expected_of,
    foreign,
    ofports_agree,
    snapshot_after,
    stale_reason,
)
from ovsnet.model import (
    MANAGED_KEY,
    PEER_KEY,
    PEER_SUBNET_KEY,
    ROLE_DOCKER_BRIDGE,
    ROLE_KEY,
    SUBNET_KEY,
    Changes,
    ObservedBridge,
    ObservedPort,
    Snapshot,
    TunnelSpec,
)
from ovsnet.ovsdb.watch import RowChange
from ovsnet.plan import plan_peers

TABLES = ("Open_vSwitch", "Bridge", "Port", "Interface")
COLUMNS = ("name", "ports", "options", "type", "external_ids", "ofport", "error", "other_config",
           "cur_cfg", "next_cfg", "ovs_version", "bfd", "protected")  # fmt: skip


def tunnel(peer: str, ofport: int | None, subnet: str) -> ObservedPort:
    ids = {PEER_KEY: peer, PEER_SUBNET_KEY: subnet}
    return ObservedPort(f"gre-{peer}", "gre", {"remote_ip": peer}, ids, True, {"enable": "true"},
                        ofport=ofport)  # fmt: skip


def snapshot(*tunnels: ObservedPort) -> Snapshot:
    docker = ObservedPort("docker0", "", external_ids={ROLE_KEY: ROLE_DOCKER_BRIDGE}, ofport=1)
    ports = {p.name: p for p in (docker, *tunnels)}
    bridge = ObservedBridge("br0", "netdev", {MANAGED_KEY: "true", SUBNET_KEY: "10.0.1.0/24"},
                            ports)  # fmt: skip
    return Snapshot("3.1.0", {"keep": "me"}, {"br0": bridge})


def spec(peer: str, subnet: str) -> TunnelSpec:
    return TunnelSpec(IPv4Address(peer), f"gre-{peer}", subnet=IPv4Network(subnet))


def change(table: str, kind: str, name: str | None, *columns: str) -> RowChange:
    return RowChange(table, kind, name, frozenset(columns))


KEEP_2_ADD_4 = [spec("192.0.2.2", "10.0.2.0/24"), spec("192.0.2.4", "10.0.4.0/24")]


# -- foreign: whose change was it -----------------------------------------------------------


def test_outside_a_change_only_vswitchds_answers_are_not_foreign():
    assert not foreign(change("Interface", "update", "gre-x", "error"))
    assert not foreign(change("Open_vSwitch", "update", None, "cur_cfg", "next_cfg"))
    assert foreign(change("Interface", "update", "gre-x", "ofport"))  # numbered anew
    assert foreign(change("Interface", "update", "gre-x", "options"))
    assert foreign(change("Port", "delete", "gre-x"))
    assert foreign(change("Open_vSwitch", "update", None, "other_config"))


def test_a_changes_own_rows_are_explained_and_others_are_not():
    before = snapshot(tunnel("192.0.2.2", 2, "10.0.2.0/24"), tunnel("192.0.2.3", 3, "10.0.3.0/24"))
    plan = plan_peers(before.bridges["br0"], KEEP_2_ADD_4, exact=True)
    expected = expected_of(plan.changes)
    assert expected.names == {"gre-192.0.2.4", "gre-192.0.2.3"}
    for ours in (
        change("Port", "create", "gre-192.0.2.4"),
        change("Interface", "create", "gre-192.0.2.4"),
        change("Interface", "update", "gre-192.0.2.4", "ofport"),  # vswitchd's answer
        change("Port", "delete", "gre-192.0.2.3"),
        change("Bridge", "update", "br0", "ports"),
    ):
        assert not foreign(ours, expected), ours
    for theirs in (
        change("Port", "delete", "gre-192.0.2.2"),  # a tunnel this change kept
        change("Bridge", "update", "br0", "ports", "external_ids"),
        change("Bridge", "update", "br1", "ports"),
        change("Bridge", "create", "br1"),
        change("Open_vSwitch", "update", None, "other_config"),  # no IPsec settings changed
        change("Open_vSwitch", "update", None, "ovs_version"),  # ovs-ctl started OVS again
    ):
        assert foreign(theirs, expected), theirs


def test_an_ipsec_settings_change_explains_other_config_only():
    expected = expected_of(Changes(tunnel_bridge="br0", other_config={"private_key": "k"}))
    assert not foreign(change("Open_vSwitch", "update", None, "other_config", "next_cfg"),
                       expected)  # fmt: skip
    assert foreign(change("Open_vSwitch", "update", None, "bridges"), expected)
    assert foreign(change("Bridge", "update", "br0", "ports"), expected)  # no port changed


@given(
    st.sampled_from(TABLES),
    st.sampled_from(("create", "update", "delete")),
    st.one_of(st.none(), st.text(max_size=20)),
    st.frozensets(st.sampled_from(COLUMNS), max_size=4),
)
def test_without_a_change_of_ours_everything_but_an_answer_is_foreign(table, kind, name, columns):
    heard = RowChange(table, kind, name, columns)
    answer = kind == "update" and columns and columns <= ANSWER_COLUMNS.get(table, set())
    assert foreign(heard) is (not answer)


# -- what a change leaves ------------------------------------------------------------------


def test_the_snapshot_after_a_change_is_what_a_new_read_would_give():
    before = snapshot(tunnel("192.0.2.2", 2, "10.0.2.0/24"), tunnel("192.0.2.3", 3, "10.0.3.0/24"))
    plan = plan_peers(before.bridges["br0"], KEEP_2_ADD_4, exact=True)
    plan.changes.other_config = {"gone": None, "new": "1"}
    ofports = {"docker0": 1, "gre-192.0.2.2": 2, "gre-192.0.2.4": 7}
    after = snapshot_after(before, "br0", plan.changes, ofports)
    assert after is not None
    bridge = after.bridges["br0"]
    assert sorted(bridge.tunnels) == ["192.0.2.2", "192.0.2.4"]
    assert bridge.tunnels["192.0.2.4"].ofport == 7
    assert after.other_config == {"keep": "me", "new": "1"}
    read = snapshot(tunnel("192.0.2.2", 2, "10.0.2.0/24"), tunnel("192.0.2.4", 7, "10.0.4.0/24"))
    assert antispoof.plan_bridge(bridge, True) == antispoof.plan_bridge(read.bridges["br0"], True)


def test_a_port_numbered_anew_means_reading_again():
    before = snapshot(tunnel("192.0.2.2", 2, "10.0.2.0/24"))
    plan = plan_peers(before.bridges["br0"], KEEP_2_ADD_4, exact=True)
    moved = {"docker0": 1, "gre-192.0.2.2": 9, "gre-192.0.2.4": 7}
    assert snapshot_after(before, "br0", plan.changes, moved) is None
    assert not ofports_agree(before.bridges["br0"], {"docker0": 1})  # a port gone
    assert ofports_agree(before.bridges["br0"], {"docker0": 1, "gre-192.0.2.2": 2, "x": 5})


def test_the_copy_is_used_only_while_nothing_says_otherwise():
    flows = FlowState(("f",), (), True)
    copy = Applied(snapshot(), flows, vswitchd=(1, 2))
    assert stale_reason(copy, False, (1, 2)) is None
    assert stale_reason(None, False, (1, 2)) == "no copy yet"
    assert stale_reason(copy, True, (1, 2)) == "OVSDB changed by another writer"
    assert stale_reason(copy, False, (1, 3)) == "ovs-vswitchd restarted"
    assert stale_reason(copy, False, None).startswith("ovs-vswitchd's control socket not found")
    remote = Applied(snapshot(), None, vswitchd=None)  # OVSDB over tcp:: no flows kept
    assert stale_reason(remote, False, None) is None
