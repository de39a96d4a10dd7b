"""Tunnel naming, MTU arithmetic and peer validation."""

from ipaddress import IPv4Address, IPv4Network

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ovsnet.errors import InvalidInput
from ovsnet.tunnels import LINUX_IFNAME_MAX, TUNNEL_TYPES, overlay_mtu, parse_peer, port_name


def test_gre_mtu_on_a_1500_underlay_is_1462():
    assert overlay_mtu(1500) == 1462


def test_ipsec_leaves_1400():
    assert overlay_mtu(1500, "gre", ipsec=True) == 1400


def test_vxlan_and_ipv6_overheads():
    assert overlay_mtu(1500, "vxlan") == 1450
    assert overlay_mtu(1500, "gre", ipv6=True) == 1442
    assert overlay_mtu(9000) == 8962


def test_tiny_underlay_is_refused():
    with pytest.raises(InvalidInput, match="underlay MTU 600"):
        overlay_mtu(600)


def test_port_name_matches_the_design_example():
    assert port_name(IPv4Address("198.51.100.2")) == "gre-c6336402"


@given(st.integers(0, 2**32 - 1), st.sampled_from(TUNNEL_TYPES))
def test_port_names_are_short_stable_and_distinct(n, kind):
    ip = IPv4Address(n)
    name = port_name(ip, kind)
    assert len(name) <= LINUX_IFNAME_MAX
    assert name == port_name(IPv4Address(n), kind)
    other = IPv4Address((n + 1) % 2**32)
    assert port_name(other, kind) != name


SUPERNET = IPv4Network("10.0.0.0/8")
OWN = {IPv4Address("198.51.100.11")}


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("not-an-ip", "not an IP address"),
        ("198.51.100.300", "not an IP address"),
        ("2001:db8::1", "IPv6"),
        ("224.0.0.5", "not a unicast"),
        ("0.0.0.0", "not a unicast"),
        ("255.255.255.255", "not a unicast"),
        ("127.0.0.1", "not a unicast"),
        ("169.254.1.1", "not a unicast"),
        ("198.51.100.11", "own address"),
        ("10.0.42.7", "inside the overlay supernet"),
    ],
)
def test_bad_peers_are_refused(text, fragment):
    with pytest.raises(InvalidInput, match=fragment):
        parse_peer(text, OWN, SUPERNET)


def test_good_peer():
    assert parse_peer(" 198.51.100.12 ", OWN, SUPERNET) == IPv4Address("198.51.100.12")
