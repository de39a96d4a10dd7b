"""ICMP echo probes with the Don't Fragment bit set, to find MTU black holes on the underlay.

A raw ICMP socket (root) with IP_MTU_DISCOVER=IP_PMTUDISC_DO: the kernel sets DF and refuses
(EMSGSIZE) a packet larger than the route's known path MTU. One socket probes every peer at
once, so a host with many peers waits one timeout, not one per peer.

Place: docs/architecture.md, "Layers": facade layer (a raw ICMP socket).
"""

from __future__ import annotations

import errno
import os
import select
import socket
import struct
import time
from collections.abc import Iterable
from dataclasses import dataclass

from ovsnet.errors import NotReady

IP_HEADER = 20
ICMP_HEADER = 8
SMALL = 64
_ECHO_REQUEST, _ECHO_REPLY = 8, 0
_IP_MTU_DISCOVER = getattr(socket, "IP_MTU_DISCOVER", 10)
_IP_PMTUDISC_DO = getattr(socket, "IP_PMTUDISC_DO", 2)


@dataclass(frozen=True)
class EchoResult:
    small_reply: bool
    big_reply: bool
    local_error: str | None = None


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def echo_request(ident: int, seq: int, ip_size: int) -> bytes:
    """An ICMP echo request that makes an IPv4 packet of exactly ip_size bytes."""
    payload = b"ovsnet-mtu".ljust(ip_size - IP_HEADER - ICMP_HEADER, b".")
    header = struct.pack("!BBHHH", _ECHO_REQUEST, 0, 0, ident, seq)
    checksum = _checksum(header + payload)
    return struct.pack("!BBHHH", _ECHO_REQUEST, 0, checksum, ident, seq) + payload


def parse_reply(packet: bytes) -> tuple[int, int] | None:
    """(identifier, sequence) of an echo reply as a raw socket returns it (IP header first)."""
    header_len = (packet[0] & 0x0F) * 4 if packet else 0
    icmp = packet[header_len : header_len + ICMP_HEADER]
    if len(icmp) < ICMP_HEADER or icmp[0] != _ECHO_REPLY:
        return None
    _, _, _, ident, seq = struct.unpack("!BBHHH", icmp)
    return ident, seq


def probe_df(
    peers: Iterable[str], big_size: int, timeout: float = 1.5, rounds: int = 3
) -> dict[str, EchoResult]:
    """Send each peer a small echo and a DF echo of big_size bytes (IP length), a few rounds,
    and say which got replies. Sequence numbers: 2*index for small, 2*index+1 for big."""
    peers = list(peers)
    try:
        sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    except PermissionError as exc:
        raise NotReady("the MTU probe needs a raw socket", "run ovsnet doctor as root") from exc
    ident = os.getpid() & 0xFFFF
    replies: set[tuple[str, int]] = set()
    local_errors: dict[str, str] = {}
    try:
        sock.setsockopt(socket.IPPROTO_IP, _IP_MTU_DISCOVER, _IP_PMTUDISC_DO)
        sock.setblocking(False)
        for _ in range(rounds):
            for index, peer in enumerate(peers):
                for seq, size in ((2 * index, SMALL), (2 * index + 1, big_size)):
                    if (peer, seq) in replies:
                        continue
                    try:
                        sock.sendto(echo_request(ident, seq & 0xFFFF, size), (peer, 0))
                    except OSError as exc:
                        if exc.errno == errno.EMSGSIZE and seq % 2:
                            local_errors[peer] = "larger than the MTU of the route to it"
                        elif seq % 2 == 0:
                            local_errors.setdefault(peer, exc.strerror or str(exc))
            _collect(sock, ident, peers, replies, timeout / rounds)
            if len(replies) == 2 * len(peers):
                break
    finally:
        sock.close()
    return {
        peer: EchoResult(
            small_reply=(peer, 2 * index) in replies,
            big_reply=(peer, 2 * index + 1) in replies,
            local_error=local_errors.get(peer),
        )
        for index, peer in enumerate(peers)
    }


def _collect(sock, ident: int, peers: list[str], replies: set, wait: float) -> None:
    deadline = time.monotonic() + wait
    while (left := deadline - time.monotonic()) > 0:
        ready, _, _ = select.select([sock], [], [], left)
        if not ready:
            return
        try:
            packet, (source, _) = sock.recvfrom(65535)
        except BlockingIOError:
            continue
        parsed = parse_reply(packet)
        if parsed is None or parsed[0] != ident:
            continue
        index = parsed[1] // 2
        if index < len(peers) and peers[index] == source:
            replies.add((source, parsed[1]))
