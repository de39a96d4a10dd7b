"""Tunnel facts: port names, encapsulation overhead, peer validation. Pure, no I/O.

Place: docs/architecture.md, "Layers": pure layer.
"""

from __future__ import annotations

import ipaddress
from ipaddress import IPv4Address, IPv4Network

from ovsnet.antispoof import parse_subnet
from ovsnet.errors import InvalidInput
from ovsnet.validate import LINUX_IFNAME_MAX, special_space

TUNNEL_TYPES = ("gre", "vxlan", "geneve")

# Bytes each encapsulation adds in front of the inner IP packet, IPv4 underlay
# (docs/facts.md, "MTU").
# OVS gre carries whole Ethernet frames: outer IP 20 + GRE 4 + inner Ethernet 14.
_OVERHEAD = {
    "gre": 20 + 4 + 14,
    "vxlan": 20 + 8 + 8 + 14,
    "geneve": 20 + 8 + 8 + 14,
}
IPV6_UNDERLAY_EXTRA = 20
# ESP transport with AES-GCM adds about 37 bytes and NAT-T 8 more; the rest is margin for
# padding so the overlay lands at 1400 on a 1500 underlay, the figure docs/facts.md recommends.
IPSEC_OVERHEAD = 62
MIN_OVERLAY_MTU = 576


def overlay_mtu(
    underlay_mtu: int, tunnel_type: str = "gre", ipsec: bool = False, ipv6: bool = False
) -> int:
    """The MTU containers and br0 must use so encapsulated frames fit the underlay."""
    overhead = _OVERHEAD[tunnel_type]
    overhead += IPV6_UNDERLAY_EXTRA if ipv6 else 0
    overhead += IPSEC_OVERHEAD if ipsec else 0
    mtu = underlay_mtu - overhead
    if mtu < MIN_OVERLAY_MTU:
        raise InvalidInput(
            f"underlay MTU {underlay_mtu} leaves only {mtu} bytes for the overlay",
            f"use an underlay MTU of at least {MIN_OVERLAY_MTU + overhead}",
        )
    return mtu


def port_name(remote_ip: IPv4Address, tunnel_type: str = "gre") -> str:
    """Stable interface name from the peer address: `gre-c6336402` (<= 15 characters)."""
    kind = {"gre": "gre", "vxlan": "vxl", "geneve": "gnv"}[tunnel_type]
    name = f"{kind}-{int(remote_ip):08x}"
    assert len(name) <= LINUX_IFNAME_MAX
    return name


def parse_peer(
    text: str, own_addresses: set[IPv4Address], supernet: IPv4Network | None
) -> IPv4Address:
    """Validate a peer's underlay address."""
    try:
        address = ipaddress.ip_address(text.strip())
    except (ValueError, TypeError):
        shown = text if len(text) <= 60 else text[:57] + "..."
        raise InvalidInput(
            f"peer {shown!r} is not an IP address", "give the peer's underlay IPv4 address"
        ) from None
    if not isinstance(address, IPv4Address):
        raise InvalidInput(f"peer {address} is IPv6", "IPv6 underlays are not supported yet")
    kind = special_space(address)
    if kind is not None:
        raise InvalidInput(
            f"peer {address} is not a unicast host address ({kind} space)",
            "give the peer's underlay IPv4 address",
        )
    if address in own_addresses:
        raise InvalidInput(f"peer {address} is this host's own address", "give a remote host")
    if supernet is not None and address in supernet:
        raise InvalidInput(
            f"peer {address} is inside the overlay supernet {supernet}",
            "tunnels run over the underlay: give the peer's underlay address",
        )
    return address


def parse_peers_text(data: bytes, source: str) -> list[IPv4Address]:
    """A `peer sync` file's addresses (see parse_peer_lines)."""
    return [ip for ip, _ in parse_peer_lines(data, source)]


def parse_peer_lines(data: bytes, source: str) -> list[tuple[IPv4Address, IPv4Network | None]]:
    """A `peer sync` file: one underlay address per line, optionally followed by the peer's
    container subnet (its tunnel is then source-pinned); `#` starts a comment. The first bad
    line is an error naming source:line, so nothing is changed on a half-read file."""
    peers = []
    for number, raw in enumerate(data.split(b"\n"), 1):
        try:
            line = raw.decode()
        except UnicodeDecodeError:
            raise InvalidInput(f"{source}:{number}: not UTF-8 text") from None
        entry = line.split("#", 1)[0].split()
        if not entry:
            continue
        try:
            if len(entry) > 2:
                raise InvalidInput(f"{len(entry)} fields", "write: PEER_IP [SUBNET]")
            subnet = parse_subnet(entry[1], "subnet") if len(entry) == 2 else None
            peers.append((parse_peer(entry[0], set(), None), subnet))
        except InvalidInput as exc:
            raise InvalidInput(f"{source}:{number}: {exc.message}", exc.hint) from None
    return peers
