"""Checks for names and addresses that come from users, files or etcd. Pure, no I/O.

Every check raises InvalidInput (exit 2) with a one-line message naming what was wrong, so
the CLI refuses before it touches anything and the agent can turn the same message into the
reason a record was skipped.

Place: docs/architecture.md, "Layers": pure layer.
"""

from __future__ import annotations

import unicodedata
from ipaddress import IPv4Address, IPv4Network

from ovsnet.errors import InvalidInput

LINUX_IFNAME_MAX = 15  # bytes; IFNAMSIZ is 16 with the terminating NUL

# Address space that is never a host's unicast underlay address nor a usable overlay.
# 255.255.255.255 (limited broadcast) sits inside 240.0.0.0/4 and gets its own word.
SPECIAL_SPACE = (
    (IPv4Network("0.0.0.0/8"), "unspecified"),  # "this network" (RFC 1122)
    (IPv4Network("127.0.0.0/8"), "loopback"),
    (IPv4Network("169.254.0.0/16"), "link-local"),
    (IPv4Network("224.0.0.0/4"), "multicast"),
    (IPv4Network("240.0.0.0/4"), "reserved"),
)
BROADCAST = IPv4Address("255.255.255.255")


def control_character(text: str) -> str | None:
    """The first control or formatting character in text (as `\\x..`), or None."""
    for char in text:
        if unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp"):
            return repr(char)[1:-1]
    return None


def printable(text: str, limit: int = 200) -> str:
    """Text safe for a one-line log or table: control characters escaped, length bounded."""
    shown = "".join(repr(c)[1:-1] if control_character(c) else c for c in text)
    return shown if len(shown) <= limit else shown[: limit - 3] + "..."


def check_printable(text: str, what: str) -> str:
    """Refuse text with control characters (a newline in a name ends up in logs, units, keys)."""
    bad = control_character(text)
    if bad is not None:
        raise InvalidInput(f"{what} {text!r} contains the control character {bad}")
    return text


def check_interface_name(name: str, what: str = "interface name") -> str:
    """A name Linux accepts for a network interface (the kernel's dev_valid_name)."""
    check_printable(name, what)
    problem = None
    if not name:
        problem = "is empty"
    elif name in (".", ".."):
        problem = "is '.' or '..'"
    elif len(name.encode()) > LINUX_IFNAME_MAX:
        problem = f"is longer than {LINUX_IFNAME_MAX} bytes"
    elif any(char.isspace() for char in name):
        problem = "contains a space"
    elif "/" in name or ":" in name:
        problem = "contains '/' or ':'"
    if problem:
        raise InvalidInput(
            f"{what} {name!r} {problem}",
            f"Linux interface names are 1-{LINUX_IFNAME_MAX} bytes without spaces, '/' or ':'",
        )
    return name


# SPECIAL_SPACE as (network address, netmask) integers: special_space runs twice per peer of
# a `peer sync` file, and `address in network` costs ~1 us each (NOTE(perf): ~5 ms of a
# 1,000-peer sync).
_SPECIAL_MASKS = tuple(
    (int(network.network_address), int(network.netmask), kind) for network, kind in SPECIAL_SPACE
)


def special_space(address: IPv4Address) -> str | None:
    """Which special-purpose block the address is in ('loopback', ...), or None."""
    if address == BROADCAST:
        return "broadcast"
    value = int(address)
    for network, netmask, kind in _SPECIAL_MASKS:
        if value & netmask == network:
            return kind
    return None


def check_underlay_address(address: IPv4Address, what: str = "address") -> IPv4Address:
    """A unicast address another host can send tunnel packets to."""
    kind = special_space(address)
    if kind is not None:
        raise InvalidInput(
            f"{what} {address} is not a unicast host address ({kind} space)",
            "give the host's underlay IPv4 address",
        )
    return address


def check_overlay_supernet(network: IPv4Network, what: str = "supernet") -> IPv4Network:
    """An overlay supernet must not overlap loopback, multicast, link-local, 0/8 or 240/4:
    containers could not use those addresses (the kernel treats them specially)."""
    for special, kind in SPECIAL_SPACE:
        if network.overlaps(special):
            raise InvalidInput(
                f"{what} {network} overlaps {kind} space ({special})",
                "use private space, e.g. 10.0.0.0/8",
            )
    return network
