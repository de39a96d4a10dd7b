"""Overlay addressing: pure functions, no I/O.

A host owns one subnet (normally a /24) of the overlay supernet (default 10.0.0.0/8). Its gateway
is the subnet's first address and sits on br0 with the *supernet's* mask, so every container of
every host is on-link (docs/facts.md, "The host after init").

Place: docs/architecture.md, "Layers": pure layer.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface, IPv4Network

from ovsnet.errors import InvalidInput
from ovsnet.validate import check_overlay_supernet

DEFAULT_SUPERNET = "10.0.0.0/8"
HOST_PREFIXLEN = 24

_PREFIX_RE = re.compile(r"^\d{1,3}\.\d{1,3}\.\d{1,3}$")


@dataclass(frozen=True)
class HostAddressing:
    """Where one host sits in the overlay."""

    supernet: IPv4Network
    subnet: IPv4Network

    @property
    def gateway(self) -> IPv4Address:
        return self.subnet.network_address + 1

    @property
    def bridge_address(self) -> IPv4Interface:
        """The address br0 carries: the gateway with the supernet's mask."""
        return IPv4Interface(f"{self.gateway}/{self.supernet.prefixlen}")

    @property
    def prefix(self) -> str:
        """The `A.B.C` form of a /24 subnet (the `--prefix` users type)."""
        return str(self.subnet.network_address).rsplit(".", 1)[0]

    def docker_options(self, mtu: int) -> dict[str, str | int]:
        """Docker daemon options matching this host (daemon.json keys)."""
        return {"bip": str(self.bridge_address), "fixed-cidr": str(self.subnet), "mtu": mtu}

    def docker_flags(self, mtu: int) -> list[str]:
        return [f"--{key}={value}" for key, value in self.docker_options(mtu).items()]


def parse_network(text: str, what: str) -> IPv4Network:
    """Parse an IPv4 CIDR strictly (host bits must be zero)."""
    try:
        network = ipaddress.ip_network(text.strip(), strict=True)
    except ValueError as exc:
        raise InvalidInput(
            f"{what} {text!r} is not a valid IPv4 network ({exc})",
            "write it as A.B.C.D/N with the host bits zero, e.g. 10.0.42.0/24",
        ) from None
    if not isinstance(network, IPv4Network):
        raise InvalidInput(f"{what} {text!r} is IPv6", "the overlay is IPv4 only")
    return network


def parse_supernet(text: str, what: str = "supernet") -> IPv4Network:
    """An overlay supernet: a strict IPv4 CIDR outside loopback, multicast, link-local, 0/8
    and 240/4 space."""
    return check_overlay_supernet(parse_network(text, what), what)


def parse_prefix(text: str) -> IPv4Network:
    """`10.0.42` -> 10.0.42.0/24."""
    text = text.strip()
    if not _PREFIX_RE.match(text) or any(int(part) > 255 for part in text.split(".")):
        raise InvalidInput(
            f"prefix {text!r} is malformed",
            "give the first three octets of the host's /24, e.g. --prefix 10.0.42",
        )
    return IPv4Network(f"{text}.0/{HOST_PREFIXLEN}")


def host_addressing(
    prefix: str | None = None,
    subnet: str | None = None,
    supernet: str = DEFAULT_SUPERNET,
) -> HostAddressing:
    """Validate the user's choice of subnet against the supernet and build the addressing."""
    if (prefix is None) == (subnet is None):
        raise InvalidInput("give exactly one of --prefix A.B.C or --subnet CIDR")
    super_net = parse_supernet(supernet)
    if super_net.prefixlen > 30:
        raise InvalidInput(f"supernet {super_net} is too small", "use a /30 or larger")
    if prefix is not None:
        host_net = parse_prefix(prefix)
    else:
        assert subnet is not None  # exactly one of the two, checked above
        host_net = parse_network(subnet, "subnet")
    if not host_net.subnet_of(super_net) or host_net == super_net:
        raise InvalidInput(
            f"subnet {host_net} is not inside the supernet {super_net}",
            "pick a subnet of the supernet or change --supernet",
        )
    if host_net.num_addresses < 4:
        raise InvalidInput(f"subnet {host_net} is too small", "use a /30 or larger (normally /24)")
    gateway = host_net.network_address + 1
    if gateway in (super_net.network_address, super_net.broadcast_address):
        raise InvalidInput(
            f"subnet {host_net} would put the gateway on the supernet's network or broadcast "
            "address",
            "pick another subnet of the supernet",
        )
    return HostAddressing(supernet=super_net, subnet=host_net)


def overlaps_underlay(supernet: IPv4Network, underlay: list[IPv4Network]) -> IPv4Network | None:
    """The first underlay network (address or route) the supernet overlaps, if any."""
    for network in underlay:
        if network.prefixlen == 0:
            continue  # a default route overlaps everything and means nothing here
        if supernet.overlaps(network):
            return network
    return None
