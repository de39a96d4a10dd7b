"""Overlay addressing: the pure rules behind --prefix/--subnet/--supernet."""

from ipaddress import IPv4Interface, IPv4Network

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ovsnet.addressing import host_addressing, overlaps_underlay, parse_prefix
from ovsnet.errors import InvalidInput


def test_prefix_gives_the_gateway_with_the_supernet_mask():
    host = host_addressing(prefix="10.0.42")
    assert host.subnet == IPv4Network("10.0.42.0/24")
    assert str(host.gateway) == "10.0.42.1"
    assert host.bridge_address == IPv4Interface("10.0.42.1/8")
    assert host.prefix == "10.0.42"


def test_docker_options_match_the_design():
    host = host_addressing(prefix="10.0.42")
    assert host.docker_flags(1462) == [
        "--bip=10.0.42.1/8",
        "--fixed-cidr=10.0.42.0/24",
        "--mtu=1462",
    ]
    assert host.docker_options(1462) == {
        "bip": "10.0.42.1/8",
        "fixed-cidr": "10.0.42.0/24",
        "mtu": 1462,
    }


def test_subnet_and_custom_supernet():
    host = host_addressing(subnet="172.20.5.0/24", supernet="172.20.0.0/16")
    assert host.bridge_address == IPv4Interface("172.20.5.1/16")


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"prefix": "10.0"}, "malformed"),
        ({"prefix": "10.0.256"}, "malformed"),
        ({"prefix": "a.b.c"}, "malformed"),
        ({"prefix": "10.0.42.0"}, "malformed"),
        ({"subnet": "10.0.42.1/24"}, "not a valid"),
        ({"subnet": "10.0.42.0/33"}, "not a valid"),
        ({"subnet": "fd00::/64"}, "IPv6"),
        ({"prefix": "192.168.1"}, "not inside the supernet"),
        ({"subnet": "10.0.0.0/8"}, "not inside the supernet"),
        ({"prefix": "10.0.42", "supernet": "10.0.0.0/31"}, "too small"),
        ({"subnet": "10.0.42.0/31"}, "too small"),
        ({}, "exactly one"),
        ({"prefix": "10.0.42", "subnet": "10.0.42.0/24"}, "exactly one"),
    ],
)
def test_bad_input_is_refused_with_a_reason(kwargs, fragment):
    with pytest.raises(InvalidInput) as caught:
        host_addressing(**kwargs)
    assert fragment in caught.value.one_line()
    assert "\n" not in caught.value.one_line()


@given(st.integers(0, 255), st.integers(0, 255))
def test_every_inner_prefix_is_inside_the_supernet(b, c):
    prefix = f"10.{b}.{c}"
    host = host_addressing(prefix=prefix)
    assert host.subnet.subnet_of(host.supernet)
    assert host.gateway in host.subnet
    assert host.bridge_address.network == host.supernet
    assert parse_prefix(host.prefix) == host.subnet


def test_overlap_ignores_default_route():
    supernet = IPv4Network("10.0.0.0/8")
    assert overlaps_underlay(supernet, [IPv4Network("0.0.0.0/0")]) is None
    hit = IPv4Network("10.1.0.0/16")
    assert overlaps_underlay(supernet, [IPv4Network("198.51.100.0/24"), hit]) == hit
