"""The companion container's pure parts: its configuration, healing requests, restart budget."""

from __future__ import annotations

import os
from ipaddress import IPv4Interface
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ovsnet.addressing import host_addressing
from ovsnet.companion.config import (
    Backoff,
    CompanionConfig,
    RestartBudget,
    gateway_to_restore,
    heal_request,
    parse_peers,
    parse_peers_file,
    underlay_mtu_for,
)
from ovsnet.errors import InvalidInput
from ovsnet.model import BridgeSpec, LinkState, ObservedBridge, ObservedPort
from ovsnet.tunnels import overlay_mtu


def observed(spec: BridgeSpec) -> ObservedBridge:
    """The bridge as OVSDB records it after `init` applied this spec."""
    internal = ObservedPort(name=spec.name, type="internal", mtu_request=spec.mtu)
    return ObservedBridge(
        name=spec.name,
        datapath_type=spec.datapath_type,
        external_ids=spec.external_ids,
        ports={spec.name: internal},
    )


def spec_for(prefix="10.0.42", supernet="10.0.0.0/8", mtu=1462, datapath="netdev"):
    addressing = host_addressing(prefix=prefix, supernet=supernet)
    return BridgeSpec(
        name="br0",
        datapath_type=datapath,
        mtu=mtu,
        docker_bridge="docker0",
        subnet=addressing.subnet,
        supernet=addressing.supernet,
    )


def link(name, *addresses, exists=True):
    return LinkState(
        name=name, exists=exists, up=exists, addresses=tuple(IPv4Interface(a) for a in addresses)
    )


# -- configuration ------------------------------------------------------------------------------


def test_peers_are_split_on_commas_spaces_and_newlines():
    assert parse_peers(" 198.51.100.2,198.51.100.3  198.51.100.4\n") == (
        "198.51.100.2",
        "198.51.100.3",
        "198.51.100.4",
    )
    assert parse_peers("") == () and parse_peers(None) == ()


def test_peers_file_ignores_comments_and_blank_lines():
    text = "# fleet\n198.51.100.2  # core-2\n\n198.51.100.3\n"
    assert parse_peers_file(text) == ["198.51.100.2", "198.51.100.3"]


def test_unconfigured_container_only_runs_ovs():
    config = CompanionConfig()
    assert not config.configured


def test_configured_container_inits_with_its_datapath():
    config = CompanionConfig(datapath="netdev", prefix="10.0.7", underlay_mtu=9000)
    request = config.init_request()
    assert config.configured
    assert request.datapath == "netdev" and request.underlay_mtu == 9000
    assert str(request.addressing.subnet) == "10.0.7.0/24"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"datapath": "dpdk"}, "unknown datapath"),
        ({"prefix": "10.0.999"}, "malformed"),
        ({"peers": ("198.51.100.2",)}, "without the host's subnet"),
        (
            {"prefix": "10.0.1", "peers": ("198.51.100.2",), "peers_file": Path("/p")},
            "both as a list and as a file",
        ),
    ],
)
def test_bad_configuration_is_refused_at_once(options, message):
    with pytest.raises(InvalidInput, match=message):
        CompanionConfig(**options)


# -- healing ------------------------------------------------------------------------------------


@given(
    underlay=st.integers(min_value=700, max_value=9216),
    ipsec=st.booleans(),
    third=st.integers(min_value=0, max_value=255),
)
def test_heal_request_reproduces_the_recorded_bridge(underlay, ipsec, third):
    """Re-applying init from what OVSDB records must plan no change to the bridge."""
    mtu = overlay_mtu(underlay, "gre", ipsec)
    spec = spec_for(prefix=f"10.1.{third}", mtu=mtu)
    request = heal_request(observed(spec))
    assert request is not None
    again = overlay_mtu(request.underlay_mtu, request.tunnel_type, request.ipsec)
    assert again == mtu
    assert request.addressing.subnet == spec.subnet
    assert request.addressing.supernet == spec.supernet
    assert (request.datapath, request.docker_bridge, request.bridge) == ("netdev", "docker0", "br0")


def test_underlay_mtu_for_plain_gre_on_1500():
    assert underlay_mtu_for(1462) == 1500


def test_heal_request_leaves_foreign_bridges_alone():
    foreign = ObservedBridge(name="br0", datapath_type="", external_ids={}, ports={})
    assert heal_request(foreign) is None


def test_gateway_is_restored_only_when_it_is_on_neither_link():
    addressing = host_addressing(prefix="10.0.42")
    gateway = "10.0.42.1/8"
    assert gateway_to_restore(addressing, link("docker0"), link("br0")) == IPv4Interface(gateway)
    assert gateway_to_restore(addressing, link("docker0", gateway), link("br0")) is None
    assert gateway_to_restore(addressing, link("docker0"), link("br0", gateway)) is None
    assert gateway_to_restore(addressing, link("docker0"), link("br0", exists=False)) is None


def test_gateway_is_not_restored_when_docker_runs_another_subnet():
    """Docker started with other options: init explains that, the supervisor must not guess."""
    addressing = host_addressing(prefix="10.0.42")
    assert gateway_to_restore(addressing, link("docker0", "172.17.0.1/16"), link("br0")) is None


# -- restarts -----------------------------------------------------------------------------------


def test_restart_budget_allows_a_few_restarts_per_window():
    budget = RestartBudget(limit=3, window=60)
    assert [budget.allow(t) for t in (0, 1, 2, 3)] == [True, True, True, False]
    assert budget.allow(61.5)  # the first restarts left the window


def test_backoff_doubles_to_a_ceiling_and_resets():
    backoff = Backoff(first=0.5, ceiling=3)
    assert [backoff.next_delay() for _ in range(4)] == [0.5, 1, 2, 3]
    backoff.reset()
    assert backoff.next_delay() == 0.5


def test_dockerfile_builds_from_a_base_argument_defaulting_to_debian_12():
    # Offline builds pass a debootstrapped base; everyone else gets the public debian:12.
    dockerfile = Path(__file__).resolve().parents[2] / "container" / "Dockerfile"
    lines = [line for line in dockerfile.read_text().splitlines() if line and line[0] != "#"]
    assert lines[0] == "ARG BASE=debian:12"
    assert lines[1].startswith("FROM ${BASE}")


def test_a_daemon_command_that_hangs_is_an_operation_failed_not_a_crash():
    """The supervisor survives OperationFailed; a TimeoutExpired killed it (and the container
    restarted OVS and strongSwan) when `ovs-ctl start-ovs-ipsec` took over 60 s in a VM."""
    from ovsnet.companion.daemons import _run
    from ovsnet.errors import OperationFailed

    with pytest.raises(OperationFailed, match="start ovs-monitor-ipsec: no answer within 0 s"):
        _run(["sleep", "5"], "start ovs-monitor-ipsec", timeout=0.2)


def _fake_ipsec_start(monkeypatch, charon_running: bool, forget_fails: bool = False):
    """start_ipsec with fakes for every command and process check: the calls, in order."""
    from ovsnet import strongswan
    from ovsnet.companion import daemons
    from ovsnet.errors import OperationFailed

    calls: list[str] = []

    def forget(peers):
        calls.append("forget " + ",".join(str(p) for p in sorted(peers.peers)))
        if forget_fails:
            raise OperationFailed("deleting stale IPsec policies failed: ip: not found")

    monkeypatch.setattr(strongswan, "forget_peers", forget)
    monkeypatch.setattr(daemons, "_run", lambda argv, what, **kw: calls.append(what))
    monkeypatch.setattr(daemons, "_read_pid", lambda path: os.getpid())
    # charon and the monitor both alive, or neither (then the monitor "did not stay up").
    monkeypatch.setattr(daemons, "_alive", lambda pid: charon_running)
    return calls


def test_fake_daemons_a_new_charon_starts_without_the_killed_ones_kernel_state(monkeypatch):
    """The last container's charon was killed: its SAs and policies for the tunnels' peers
    are deleted before the new charon starts (else traffic keeps matching them and the new
    charon is never asked to negotiate)."""
    from ipaddress import IPv4Address

    from ovsnet.companion import daemons
    from ovsnet.errors import OperationFailed
    from ovsnet.plaintext_guard import Guard

    peers = Guard(gre=frozenset({IPv4Address("203.0.113.22"), IPv4Address("203.0.113.21")}))
    calls = _fake_ipsec_start(monkeypatch, charon_running=False)
    with pytest.raises(OperationFailed, match="did not stay up"):  # the fake monitor
        daemons.start_ipsec(daemons.OvsPaths(), peers)
    assert calls[:3] == [
        "forget 203.0.113.21,203.0.113.22",
        "start strongSwan",
        "start ovs-monitor-ipsec",
    ]


def test_fake_daemons_a_running_charon_keeps_its_state(monkeypatch):
    from ipaddress import IPv4Address

    from ovsnet.companion import daemons
    from ovsnet.plaintext_guard import Guard

    calls = _fake_ipsec_start(monkeypatch, charon_running=True)
    watched = daemons.start_ipsec(
        daemons.OvsPaths(), Guard(gre=frozenset({IPv4Address("203.0.113.22")}))
    )
    assert calls == ["start ovs-monitor-ipsec"] and watched.pid == os.getpid()


def test_fake_daemons_charon_starts_even_when_the_old_state_cannot_be_deleted(monkeypatch):
    from ipaddress import IPv4Address

    from ovsnet.companion import daemons
    from ovsnet.errors import OperationFailed
    from ovsnet.plaintext_guard import Guard

    calls = _fake_ipsec_start(monkeypatch, charon_running=False, forget_fails=True)
    with pytest.raises(OperationFailed, match="did not stay up"):
        daemons.start_ipsec(daemons.OvsPaths(), Guard(gre=frozenset({IPv4Address("203.0.113.22")})))
    assert calls[1:3] == ["start strongSwan", "start ovs-monitor-ipsec"]
