"""Gratuitous ARP, so neighbours learn at once that an address moved to another MAC.

Place: docs/architecture.md, "Layers": facade layer (a raw socket).
"""

from __future__ import annotations

import socket
import struct
from ipaddress import IPv4Address

BROADCAST = b"\xff" * 6
ETH_P_ARP = 0x0806


def gratuitous_arp(mac: bytes, ip: IPv4Address) -> bytes:
    """An ARP request for our own address (RFC 5227 announcement), as an Ethernet frame."""
    ethernet = BROADCAST + mac + struct.pack("!H", ETH_P_ARP)
    arp = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1)
    arp += mac + ip.packed + b"\x00" * 6 + ip.packed
    return ethernet + arp


def announce(ifname: str, ip: IPv4Address, count: int = 2) -> None:
    """Best effort: a link that cannot send (down, no carrier) just skips the announcement."""
    try:
        with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as sock:
            sock.bind((ifname, 0))
            mac = sock.getsockname()[4][:6]
            frame = gratuitous_arp(mac, ip)
            for _ in range(count):
                sock.send(frame)
    except OSError:
        pass
