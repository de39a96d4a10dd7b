"""Source pinning, planned: which flows a bridge's records ask for (no OVS here)."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ovsnet import antispoof
from ovsnet.antispoof import PinnedPort, pinned_ports, plan_flows
from ovsnet.errors import InvalidInput
from ovsnet.model import (
    MANAGED_KEY,
    PEER_KEY,
    PEER_SUBNET_KEY,
    ROLE_DOCKER_BRIDGE,
    ROLE_KEY,
    SUBNET_KEY,
    ObservedBridge,
    ObservedPort,
    TunnelSpec,
)
from ovsnet.plan import plan_peers
from ovsnet.tunnels import parse_peer_lines

OWN = IPv4Network("10.0.1.0/24")


def tunnel(peer: str, ofport: int | None, subnet: str | None = None) -> ObservedPort:
    ids = {PEER_KEY: peer} | ({PEER_SUBNET_KEY: subnet} if subnet else {})
    return ObservedPort(f"gre-{peer}", "gre", {"remote_ip": peer}, ids, True, {"enable": "true"},
                        ofport=ofport)  # fmt: skip


def bridge(*tunnels: ObservedPort, docker_ofport: int | None = 1) -> ObservedBridge:
    docker = ObservedPort("docker0", "", external_ids={ROLE_KEY: ROLE_DOCKER_BRIDGE},
                          ofport=docker_ofport)  # fmt: skip
    ports = {p.name: p for p in (docker, *tunnels)}
    return ObservedBridge("br0", "netdev", {MANAGED_KEY: "true", SUBNET_KEY: str(OWN)}, ports)


def test_docker_port_is_pinned_to_the_host_subnet_and_known_peers_to_theirs():
    ports = pinned_ports(bridge(tunnel("192.0.2.2", 2, "10.0.2.0/24"), tunnel("192.0.2.3", 3)))
    assert [(p.ofport, str(p.subnet)) for p in ports] == [(1, "10.0.1.0/24"), (2, "10.0.2.0/24")]


def test_a_port_without_ofport_yet_gets_no_rules():
    assert pinned_ports(bridge(tunnel("192.0.2.2", -1, "10.0.2.0/24"), docker_ofport=None)) == []


def test_flows_allow_the_subnet_and_probes_then_drop_the_rest():
    flows = antispoof.port_flows(PinnedPort(2, IPv4Network("10.0.2.0/24"), "t"))
    assert flows == [
        "priority=210,ip,in_port=2,nw_src=10.0.2.0/24 actions=NORMAL",
        "priority=210,arp,in_port=2,arp_spa=10.0.2.0/24 actions=NORMAL",
        "priority=210,arp,in_port=2,arp_spa=0.0.0.0 actions=NORMAL",
        "priority=200,ip,in_port=2 actions=drop",
        "priority=200,arp,in_port=2 actions=drop",
    ]


subnets = st.integers(0, 255).map(lambda n: IPv4Network(f"10.0.{n}.0/24"))


@given(st.dictionaries(st.integers(1, 60000), subnets, max_size=20))
def test_every_pinned_port_gets_its_own_allow_and_drop_rules(ports):
    flows = plan_flows(PinnedPort(n, net, "x") for n, net in ports.items())
    assert len(flows) == 5 * len(ports) == len(set(flows))
    for n, net in ports.items():
        assert f"priority=200,ip,in_port={n} actions=drop" in flows
        assert f"priority=210,ip,in_port={n},nw_src={net} actions=NORMAL" in flows
    assert all(antispoof.ALLOW_PRIORITY > antispoof.DROP_PRIORITY > 0 for _ in flows)


@given(st.lists(st.tuples(st.integers(1, 999), subnets), max_size=8))
def test_a_dump_of_the_planned_flows_reads_back_as_no_difference(ports):
    wanted = plan_flows(PinnedPort(n, net, "x") for n, net in dict(ports).items())
    dump = "NXST_FLOW reply (xid=0x4):\n" + "".join(
        f" cookie={antispoof.COOKIE:#x}, {flow}\n" for flow in reversed(wanted)
    )
    assert not antispoof.diff_flows(antispoof.parse_dump(dump), wanted)
    if wanted:
        assert antispoof.diff_flows(antispoof.parse_dump(dump), wanted[1:])


def test_peer_subnet_must_be_in_the_supernet_and_not_ours():
    supernet = IPv4Network("10.0.0.0/16")
    antispoof.check_peer_subnet(IPv4Network("10.0.2.0/24"), OWN, supernet)
    with pytest.raises(InvalidInput, match="not inside"):
        antispoof.check_peer_subnet(IPv4Network("10.9.0.0/24"), OWN, supernet)
    with pytest.raises(InvalidInput, match="overlaps this host"):
        antispoof.check_peer_subnet(IPv4Network("10.0.0.0/23"), OWN, supernet)
    for text in ("10.0.2.1/24", "10.0.2.0", "10.0.2.0/33"):
        with pytest.raises(InvalidInput, match="not an IPv4 network"):
            antispoof.parse_subnet(text)


def test_sync_file_takes_an_optional_subnet_column():
    data = b"192.0.2.2 10.0.2.0/24  # h2\n192.0.2.3\n"
    assert parse_peer_lines(data, "f") == [
        (IPv4Address("192.0.2.2"), IPv4Network("10.0.2.0/24")),
        (IPv4Address("192.0.2.3"), None),
    ]
    with pytest.raises(InvalidInput, match="f:1"):
        parse_peer_lines(b"192.0.2.2 10.0.2.0/24 x\n", "f")


def test_a_new_subnet_updates_the_tunnel_and_an_omitted_one_keeps_it():
    current = bridge(tunnel("192.0.2.2", 2, "10.0.2.0/24"))
    spec = TunnelSpec(IPv4Address("192.0.2.2"), "gre-192.0.2.2", "gre")
    assert plan_peers(current, [spec]).unchanged == ["192.0.2.2"]
    moved = TunnelSpec(spec.remote_ip, spec.port, "gre", subnet=IPv4Network("10.0.3.0/24"))
    assert plan_peers(current, [moved]).updated == ["192.0.2.2"]
    assert moved.external_ids[PEER_SUBNET_KEY] == "10.0.3.0/24"


def test_with_meters_every_tunnels_broadcast_is_metered_pinned_or_not():
    plan = antispoof.plan_bridge(
        bridge(tunnel("192.0.2.2", 2, "10.0.2.0/24"), tunnel("192.0.2.3", 3)), meters=True
    )
    base = antispoof.METER_ID
    assert plan.meters == [base]
    metered = [f for f in plan.flows if "meter:" in f]
    assert len(metered) == 4 + 1  # tunnel 2: three pinned multicast + the rest; tunnel 3: rest
    rest = f"priority=190,in_port=3,{antispoof.MULTICAST} actions=meter:{base},NORMAL"
    assert rest in metered
    assert all("in_port=1," not in f for f in metered)  # docker0 is not metered
    assert antispoof.METERED_PRIORITY > antispoof.ALLOW_PRIORITY > antispoof.DROP_PRIORITY
    assert antispoof.DROP_PRIORITY > antispoof.BROADCAST_PRIORITY > 0
    assert antispoof.plan_bridge(bridge(), meters=True).meters == []  # no tunnel, no meter


def test_without_meters_the_plan_is_pinning_alone():
    current = bridge(tunnel("192.0.2.2", 2, "10.0.2.0/24"))
    plan = antispoof.plan_bridge(current, meters=False)
    assert plan.meters == [] and plan.flows == plan_flows(pinned_ports(current))


def test_flows_compare_whatever_order_ovs_prints_the_match_in():
    mine = "priority=220,ip,in_port=1,nw_src=10.0.2.0/24,dl_dst=01:00:00:00:00:00/01:00:00:00:00:00 actions=meter:24577,NORMAL"  # noqa: E501
    printed = " cookie=0x6f76736e74, priority=220,ip,in_port=1,dl_dst=01:00:00:00:00:00/01:00:00:00:00:00,nw_src=10.0.2.0/24 actions=meter:24577,NORMAL"  # noqa: E501
    assert not antispoof.diff_flows(antispoof.parse_dump(printed), [mine])


def test_flow_changes_name_only_the_flows_that_differ():
    one = antispoof.PinnedPort(5, IPv4Network("10.0.2.0/24"), "tunnel to 192.0.2.2")
    two = antispoof.PinnedPort(6, IPv4Network("10.0.3.0/24"), "tunnel to 192.0.2.3")
    installed = antispoof.plan_flows([one])
    assert not antispoof.flow_changes(installed, antispoof.plan_flows([one]))
    grown = antispoof.flow_changes(installed, antispoof.plan_flows([one, two]))
    assert grown.removed == [] and grown.added == sorted(antispoof.port_flows(two))
    shrunk = antispoof.flow_changes(antispoof.plan_flows([one, two]), installed)
    assert shrunk.added == [] and shrunk.removed == sorted(antispoof.port_flows(two))


def test_flow_changes_ignore_the_order_ovs_prints_match_fields_in():
    wanted = "priority=210,ip,in_port=5,nw_src=10.0.2.0/24 actions=NORMAL"
    printed = "priority=210,ip,nw_src=10.0.2.0/24,in_port=5 actions=NORMAL"
    assert not antispoof.flow_changes([printed], [wanted])


def test_a_flow_whose_actions_change_is_deleted_and_added_by_its_match():
    old = "priority=190,in_port=5,dl_dst=01:00:00:00:00:00/01:00:00:00:00:00 actions=NORMAL"
    new = old.replace("actions=NORMAL", "actions=meter:28534,NORMAL")
    changes = antispoof.flow_changes([old], [new])
    assert changes.removed == [old] and changes.added == [new]
    # a strict delete names priority and match, never actions (ovs-ofctl refuses them)
    match = antispoof.match_of(old)
    assert "actions" not in match and "priority=190" in match and "in_port=5" in match


def spec(peer: str, subnet: str) -> TunnelSpec:
    from ovsnet.tunnels import port_name

    address = IPv4Address(peer)
    return TunnelSpec(address, port_name(address), subnet=IPv4Network(subnet))


def test_the_bridge_after_a_tunnel_change_pins_what_a_fresh_read_would():
    from dataclasses import replace

    from ovsnet.plan import bridge_after

    kept = replace(
        tunnel("192.0.2.2", 2, "10.0.2.0/24"), name=spec("192.0.2.2", "10.0.2.0/24").port
    )
    gone = replace(
        tunnel("192.0.2.3", 3, "10.0.3.0/24"), name=spec("192.0.2.3", "10.0.3.0/24").port
    )
    before = bridge(kept, gone)
    plan = plan_peers(before, [spec("192.0.2.2", "10.0.2.0/24"), spec("192.0.2.4", "10.0.4.0/24")],
                      exact=True)  # fmt: skip
    assert plan.changes.remove_ports == [gone.name] and not plan.changes.update_tunnels
    new = plan.changes.add_tunnels[0].port
    after = bridge_after(before, plan.changes, {new: 9, kept.name: 2, "docker0": 1})
    assert after is not None and set(after.ports) == {"docker0", kept.name, new}
    pinned = {(p.ofport, str(p.subnet)) for p in pinned_ports(after)}
    assert pinned == {(1, "10.0.1.0/24"), (2, "10.0.2.0/24"), (9, "10.0.4.0/24")}
    # a port vswitchd has not numbered yet gets no rules, as after a fresh read
    unnumbered = bridge_after(before, plan.changes, {})
    assert {p.ofport for p in pinned_ports(unnumbered)} == {1, 2}


def test_a_subnet_update_moves_the_pin_and_a_change_beyond_tunnels_reads_again():
    from dataclasses import replace

    from ovsnet.model import Changes
    from ovsnet.plan import bridge_after

    port = tunnel("192.0.2.2", 2, "10.0.2.0/24")
    moved = replace(spec("192.0.2.2", "10.0.5.0/24"), port=port.name)
    after = bridge_after(bridge(port), Changes(update_tunnels=[moved]), {port.name: 2})
    assert {(p.ofport, str(p.subnet)) for p in pinned_ports(after)} >= {(2, "10.0.5.0/24")}
    assert bridge_after(bridge(port), Changes(system_ports=[("x", {})]), {}) is None
    missing = replace(moved, port="gre-none")
    assert bridge_after(bridge(port), Changes(update_tunnels=[missing]), {}) is None
