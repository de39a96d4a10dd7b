"""The planner: desired vs observed, pure. Applying a plan and planning again finds nothing."""

from ipaddress import IPv4Address, IPv4Interface

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ovsnet.addressing import host_addressing
from ovsnet.errors import InvalidInput, NotReady
from ovsnet.model import (
    PEER_KEY,
    ROLE_DOCKER_BRIDGE,
    ROLE_KEY,
    BridgeSpec,
    Changes,
    LinkState,
    ObservedBridge,
    ObservedPort,
    TunnelSpec,
)
from ovsnet.plan import plan_init, plan_peers, plan_reset
from ovsnet.tunnels import port_name

HOST = host_addressing(prefix="10.0.42")
GW = IPv4Interface("10.0.42.1/8")
SPEC = BridgeSpec("br0", "netdev", 1462, "docker0", HOST.subnet, HOST.supernet)


def link(name, *addresses, up=True, exists=True):
    return LinkState(name=name, exists=exists, up=up, addresses=tuple(addresses))


def initialised_bridge(tunnels=()):
    ports = {
        "br0": ObservedPort("br0", "internal", mtu_request=1462, ofport=65534),
        "docker0": ObservedPort("docker0", "", external_ids={ROLE_KEY: ROLE_DOCKER_BRIDGE}),
    }
    for spec in tunnels:
        ports[spec.port] = observed_tunnel(spec)
    return ObservedBridge("br0", "netdev", SPEC.external_ids, ports)


def observed_tunnel(spec: TunnelSpec) -> ObservedPort:
    return ObservedPort(
        spec.port,
        spec.type,
        options=spec.options,
        external_ids=spec.external_ids,
        protected=True,
        bfd=dict(spec.bfd),
        ofport=1,
    )


def tunnel(ip, kind="gre"):
    address = IPv4Address(ip)
    return TunnelSpec(remote_ip=address, port=port_name(address, kind), type=kind)


def test_fresh_host_gets_bridge_port_and_address_move():
    plan = plan_init(SPEC, HOST, None, link("docker0", GW), link("br0", exists=False), None)
    assert plan.changes.bridge == SPEC
    assert plan.changes.system_ports == [("docker0", {ROLE_KEY: ROLE_DOCKER_BRIDGE})]
    assert plan.move_address == (GW, "docker0", "br0")
    assert "br0" in plan.bring_up
    assert len(plan.steps) >= 3


def test_initialised_host_has_nothing_to_do():
    plan = plan_init(SPEC, HOST, initialised_bridge(), link("docker0"), link("br0", GW), "br0")
    assert not plan
    assert plan.steps == []


def test_docker_restart_is_healed_by_dropping_its_copy_of_the_address():
    plan = plan_init(SPEC, HOST, initialised_bridge(), link("docker0", GW), link("br0", GW), "br0")
    assert plan.drop_addresses == [("docker0", GW)]
    assert plan.move_address is None


def test_mtu_drift_updates_the_bridge():
    spec = BridgeSpec("br0", "netdev", 1400, "docker0", HOST.subnet, HOST.supernet)
    bridge = initialised_bridge()
    plan = plan_init(spec, HOST, bridge, link("docker0"), link("br0", GW), "br0")
    assert plan.changes.bridge == spec
    assert any("MTU 1462 -> 1400" in step for step in plan.steps)


def test_wrong_docker_address_explains_the_docker_options():
    wrong = IPv4Interface("172.17.0.1/16")
    with pytest.raises(NotReady) as caught:
        plan_init(SPEC, HOST, None, link("docker0", wrong), link("br0", exists=False), None)
    message = caught.value.one_line()
    assert "172.17.0.1/16" in message
    assert "--bip=10.0.42.1/8 --fixed-cidr=10.0.42.0/24 --mtu=1462" in message


def test_missing_docker_bridge_is_not_ready():
    with pytest.raises(NotReady, match="docker bridge docker0 does not exist"):
        plan_init(SPEC, HOST, None, link("docker0", exists=False), link("br0", exists=False), None)


def test_foreign_bridge_is_left_alone():
    foreign = ObservedBridge("br0", "netdev", {}, {})
    with pytest.raises(InvalidInput, match="not created by ovsnet"):
        plan_init(SPEC, HOST, foreign, link("docker0", GW), link("br0"), None)


def test_docker_bridge_on_another_ovs_bridge_is_refused():
    with pytest.raises(InvalidInput, match="already a port of OVS bridge br9"):
        plan_init(SPEC, HOST, None, link("docker0", GW), link("br0", exists=False), "br9")


def test_reset_moves_the_address_back_and_deletes_the_bridge():
    plan = plan_reset("br0", initialised_bridge(), "docker0", link("docker0"), link("br0", GW))
    assert plan.move_address == (GW, "br0", "docker0")
    assert plan.changes.delete_bridge == "br0"


def test_reset_of_a_clean_host_does_nothing():
    assert not plan_reset("br0", None, "docker0", link("docker0", GW), link("br0", exists=False))


def test_peer_add_is_idempotent_and_type_change_renames():
    existing = [tunnel("198.51.100.2")]
    bridge = initialised_bridge(existing)
    assert not plan_peers(bridge, existing)
    plan = plan_peers(bridge, [tunnel("198.51.100.2", "vxlan")])
    assert plan.updated == ["198.51.100.2"]
    assert plan.changes.remove_ports == ["gre-c6336402"]
    assert [s.port for s in plan.changes.add_tunnels] == ["vxl-c6336402"]


def test_unprotected_tunnel_is_repaired():
    spec = tunnel("198.51.100.3")
    bridge = initialised_bridge()
    bridge.ports[spec.port] = ObservedPort(
        spec.port,
        "gre",
        options=spec.options,
        external_ids={PEER_KEY: "198.51.100.3"},
        bfd=dict(spec.bfd),
        protected=False,
    )
    plan = plan_peers(bridge, [spec])
    assert plan.changes.update_tunnels == [spec]


def test_foreign_port_with_our_name_is_refused():
    spec = tunnel("198.51.100.3")
    bridge = initialised_bridge()
    bridge.ports[spec.port] = ObservedPort(spec.port, "gre")
    with pytest.raises(InvalidInput, match="not created by ovsnet"):
        plan_peers(bridge, [spec])


def apply(bridge: ObservedBridge, changes: Changes) -> ObservedBridge:
    """What OVSDB would hold after the transaction (tunnel part)."""
    ports = dict(bridge.ports)
    for name in changes.remove_ports:
        ports.pop(name, None)
    for spec in changes.add_tunnels + changes.update_tunnels:
        ports[spec.port] = observed_tunnel(spec)
    return ObservedBridge(bridge.name, bridge.datapath_type, bridge.external_ids, ports)


peer_sets = st.sets(st.integers(0, 40), max_size=25).map(
    lambda ns: [tunnel(f"198.51.100.{n + 10}") for n in sorted(ns)]
)


@given(peer_sets, peer_sets)
def test_sync_reaches_exactly_the_wanted_peers_and_then_rests(before, wanted):
    bridge = apply(initialised_bridge(), plan_peers(initialised_bridge(), before).changes)
    plan = plan_peers(bridge, wanted, exact=True)
    after = apply(bridge, plan.changes)
    assert set(after.tunnels) == {str(s.remote_ip) for s in wanted}
    assert "docker0" in after.ports and "br0" in after.ports
    assert not plan_peers(after, wanted, exact=True)
    assert len(plan.changes.add_tunnels) == len(
        set(map(str, (s.remote_ip for s in wanted))) - set(bridge.tunnels)
    )


@given(peer_sets, peer_sets)
def test_add_never_removes_and_remove_touches_only_named_peers(before, extra):
    bridge = apply(initialised_bridge(), plan_peers(initialised_bridge(), before).changes)
    plan = plan_peers(bridge, extra)
    assert plan.changes.remove_ports == []
    gone = [s.remote_ip for s in extra]
    removal = plan_peers(bridge, [], remove=gone)
    assert set(removal.removed) == {str(ip) for ip in gone} & set(bridge.tunnels)


def test_docker_mismatches_name_each_wrong_option():
    from ovsnet.docker import BridgeSettings
    from ovsnet.plan import docker_mismatches

    right = BridgeSettings("docker0", "10.0.0.0/8", "10.0.42.1", "10.0.42.0/24", 1462)
    assert docker_mismatches(right, HOST, 1462) == []
    default = BridgeSettings("docker0", "172.17.0.0/16", "172.17.0.1", None, None)
    assert docker_mismatches(default, HOST, 1462) == [
        "bip is 172.17.0.1/16 (wants 10.0.42.1/8)",
        "fixed-cidr is None (wants 10.0.42.0/24)",
        "mtu is 1500 (wants 1462)",
    ]


def test_gateway_on_neither_link_of_an_initialised_host_is_put_back_on_the_bridge():
    """A killed run of an older ovsnet, or vswitchd recreating the bridge's interface."""
    plan = plan_init(SPEC, HOST, initialised_bridge(), link("docker0"), link("br0"), "br0")
    assert plan.add_addresses == [("br0", GW)]
    assert plan.move_address is None and not plan.drop_addresses
    assert any("put the gateway" in step for step in plan.steps)


def test_gateway_on_neither_link_without_a_record_of_the_subnet_is_still_refused():
    with pytest.raises(NotReady, match="ovsnet expects 10.0.42.1/8"):
        plan_init(SPEC, HOST, None, link("docker0"), link("br0", exists=False), None)
    other = host_addressing(prefix="10.0.43")
    spec = BridgeSpec("br0", "netdev", 1462, "docker0", other.subnet, other.supernet)
    with pytest.raises(NotReady, match="ovsnet expects 10.0.43.1/8"):
        plan_init(spec, other, initialised_bridge(), link("docker0"), link("br0"), "br0")


def test_docker_on_another_subnet_is_explained_even_when_the_bridge_records_ours():
    wrong = IPv4Interface("172.17.0.1/16")
    with pytest.raises(NotReady, match="172.17.0.1/16"):
        plan_init(SPEC, HOST, initialised_bridge(), link("docker0", wrong), link("br0"), "br0")


def test_every_state_a_killed_init_leaves_is_finished_by_the_next_plan():
    """The states between init's steps (address added before removed): the next plan ends in
    the initialised host, whose plan is empty."""
    fresh_docker, fresh_br = link("docker0", GW), link("br0", exists=False)
    states = [
        (None, fresh_docker, fresh_br, None),  # nothing done yet
        (initialised_bridge(), link("docker0", GW), link("br0", up=False), "br0"),  # bridge
        (initialised_bridge(), link("docker0", GW), link("br0"), "br0"),  # links up
        (initialised_bridge(), link("docker0", GW), link("br0", GW), "br0"),  # address on both
    ]
    for bridge, docker, br, owner in states:
        plan = plan_init(SPEC, HOST, bridge, docker, br, owner)
        moved = plan.move_address is not None or plan.drop_addresses == [("docker0", GW)]
        assert moved, plan.steps
    done = plan_init(SPEC, HOST, initialised_bridge(), link("docker0"), link("br0", GW), "br0")
    assert not done
