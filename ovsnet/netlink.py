"""The kernel facade (pyroute2): links, IPv4 addresses, routes. Nothing else imports pyroute2.

Place: docs/architecture.md, "Layers": facade layer.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import struct
from collections.abc import Callable, Iterator
from ipaddress import IPv4Address, IPv4Interface, IPv4Network

from ovsnet.errors import NotReady, OperationFailed
from ovsnet.model import LinkState


class Netlink:
    """Domain verbs over the current network namespace's rtnetlink."""

    def __init__(self):
        self._ipr = None

    @property
    def ipr(self):
        if self._ipr is None:
            from pyroute2 import IPRoute
            from pyroute2.netlink.exceptions import NetlinkError

            try:
                self._ipr = IPRoute()
            except (NetlinkError, OSError) as exc:
                raise NotReady(
                    f"cannot open a netlink socket ({_reason(exc)})",
                    "ovsnet needs root (CAP_NET_ADMIN) in the host's network namespace",
                ) from None
        return self._ipr

    @contextlib.contextmanager
    def _reading(self, what: str) -> Iterator[None]:
        """pyroute2's and the socket's errors on a read, as ovsnet's."""
        from pyroute2.netlink.exceptions import NetlinkError

        try:
            yield
        except (NetlinkError, OSError) as exc:
            reason = _reason(exc)
            raise OperationFailed(f"could not read {what} from the kernel ({reason})") from None

    def close(self) -> None:
        if self._ipr is not None:
            self._ipr.close()
            self._ipr = None

    def __enter__(self) -> Netlink:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- reads ----------------------------------------------------------------------------

    def _index(self, name: str) -> int | None:
        with self._reading(f"link {name}"):
            found = self.ipr.link_lookup(ifname=name)
        return found[0] if found else None

    def link(self, name: str) -> LinkState:
        """One link with its IPv4 addresses.

        NOTE(perf): read with two rtnetlink requests of our own (below), not pyroute2, whose
        import alone took ~0.12 s of CPU: most of what `status` and a metrics scrape spent
        beyond OVSDB's reply at 1,000 peers.
        """
        try:
            index = socket.if_nametoindex(name)
        except OSError:
            return LinkState(name=name, exists=False)
        try:
            with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE) as sock:
                links = _rtnl_request(sock, RTM_GETLINK, struct.pack("=BxHiII", 0, 0, index, 0, 0))
                addresses = _rtnl_request(
                    sock, RTM_GETADDR, struct.pack("=BBBBI", socket.AF_INET, 0, 0, 0, 0), dump=True
                )
        except OSError as exc:  # not through _reading: that imports pyroute2
            raise OperationFailed(
                f"could not read link {name} from the kernel ({_reason(exc)})"
            ) from None
        if not links:
            return LinkState(name=name, exists=False)
        header, attrs = links[0]
        flags = struct.unpack_from("=BxHiII", header)[3]
        mtu = attrs.get(IFLA_MTU)
        mac = attrs.get(IFLA_ADDRESS)
        return LinkState(
            name=name,
            exists=True,
            up=bool(flags & 1),  # IFF_UP: administratively up
            mtu=struct.unpack("=I", mtu)[0] if mtu else None,
            mac=":".join(f"{b:02x}" for b in mac) if mac else None,
            addresses=tuple(_ipv4_addresses(addresses, index)),
        )

    def local_addresses(self) -> set[IPv4Address]:
        with self._reading("addresses"):
            found = self.ipr.get_addr(family=socket.AF_INET)
        return {IPv4Address(msg.get("IFA_ADDRESS")) for msg in found}

    def underlay_networks(self, exclude: set[str]) -> list[IPv4Network]:
        """Networks the host already uses outside the overlay: its addresses and routes."""
        with self._reading("links, addresses and routes"):
            return self._underlay_networks(exclude)

    def _underlay_networks(self, exclude: set[str]) -> list[IPv4Network]:
        names = {msg["index"]: msg.get("IFLA_IFNAME") for msg in self.ipr.get_links()}
        skip = {index for index, name in names.items() if name in exclude or name == "lo"}
        networks = [
            IPv4Interface(f"{msg.get('IFA_ADDRESS')}/{msg['prefixlen']}").network
            for msg in self.ipr.get_addr(family=socket.AF_INET)
            if msg["index"] not in skip
        ]
        for msg in self.ipr.get_routes(family=socket.AF_INET, table=254):
            if msg.get("RTA_OIF") in skip or msg["dst_len"] == 0:
                continue
            networks.append(IPv4Network(f"{msg.get('RTA_DST')}/{msg['dst_len']}", strict=False))
        return networks

    def default_route_mtu(self, exclude: set[str]) -> int | None:
        """MTU of the underlay: the default route's device, else the smallest addressed link."""
        with self._reading("routes and links"):
            return self._default_route_mtu(exclude)

    def _default_route_mtu(self, exclude: set[str]) -> int | None:
        for msg in self.ipr.get_routes(family=socket.AF_INET, table=254):
            if msg["dst_len"] == 0 and msg.get("RTA_OIF"):
                return self.ipr.get_links(msg.get("RTA_OIF"))[0].get("IFLA_MTU")
        mtus = []
        for link in self.ipr.get_links():
            name = link.get("IFLA_IFNAME")
            if name in exclude or name == "lo":
                continue
            if self.ipr.get_addr(family=socket.AF_INET, index=link["index"]):
                mtus.append(link.get("IFLA_MTU"))
        return min(mtus) if mtus else None

    # -- writes ---------------------------------------------------------------------------

    def set_up(self, name: str) -> None:
        index = self._require(name)
        self._call(f"bring {name} up", self.ipr.link, "set", index=index, state="up")

    def add_address(self, name: str, address: IPv4Interface) -> None:
        index = self._require(name)
        self._call(
            f"add {address} to {name}",
            self.ipr.addr,
            "add",
            index=index,
            address=str(address.ip),
            prefixlen=address.network.prefixlen,
        )

    def remove_address(self, name: str, address: IPv4Interface) -> None:
        index = self._require(name)
        self._call(
            f"remove {address} from {name}",
            self.ipr.addr,
            "del",
            index=index,
            address=str(address.ip),
            prefixlen=address.network.prefixlen,
        )

    def move_address(
        self,
        address: IPv4Interface,
        source: str,
        target: str,
        midway: Callable[[], None] | None = None,
    ) -> None:
        """Move an address between links: add it to the target, then remove it from the source.

        In that order the address is never on neither link: a process killed in between
        leaves it on both, which the next `init` (or `reset`) recognises and finishes. If the
        removal fails, the address is taken off the target again. `midway` runs between the
        two steps (the kill-anywhere tests crash there).
        """
        self.add_address(target, address)
        if midway is not None:
            midway()
        try:
            self.remove_address(source, address)
        except Exception:
            self.remove_address(target, address)
            raise

    def _require(self, name: str) -> int:
        index = self._index(name)
        if index is None:
            raise NotReady(f"network interface {name} does not exist")
        return index

    @staticmethod
    def _call(what: str, fn, *args, **kwargs):
        from pyroute2.netlink.exceptions import NetlinkError

        try:
            return fn(*args, **kwargs)
        except (NetlinkError, OSError) as exc:
            raise OperationFailed(f"could not {what}: {_reason(exc)}") from None


def _reason(exc: BaseException) -> str:
    """NetlinkError(code, message) and OSError(errno, strerror) both end in the readable part."""
    return str(exc.args[-1]) if exc.args else type(exc).__name__


# -- notifications ---------------------------------------------------------------------------
# NOTE(companion): a plain non-blocking netlink socket with pyroute2's parser rather than
# IPRoute.bind()/get(): IPRoute (0.9) reads ahead into an internal queue, so select() on its
# socket misses events.

RTMGRP_LINK = 0x1
RTMGRP_IPV4_IFADDR = 0x10
_RECV_SIZE = 1 << 16


class LinkWatcher:
    """Tells which links changed (state or IPv4 addresses) in this network namespace.

    Use it with select(): it is readable when notifications are waiting; `changed_links()`
    drains them without blocking.
    """

    def __init__(self):
        from pyroute2.netlink.rtnl.marshal import MarshalRtnl

        self._marshal = MarshalRtnl()
        self._sock = socket.socket(
            socket.AF_NETLINK,
            socket.SOCK_RAW | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC,
            socket.NETLINK_ROUTE,
        )
        # A Docker restart sends a burst; a bigger buffer makes an overrun unlikely.
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self._sock.bind((0, RTMGRP_LINK | RTMGRP_IPV4_IFADDR))

    def fileno(self) -> int:
        return self._sock.fileno()

    def changed_links(self) -> set[str] | None:
        """Names of the links that changed since the last call; None when notifications were
        lost (the socket's buffer overran), which means: assume anything may have changed."""
        names: set[str] = set()
        lost = False
        while True:
            try:
                data = self._sock.recv(_RECV_SIZE)
            except BlockingIOError:
                break
            except OSError as exc:
                if exc.errno != errno.ENOBUFS:
                    raise
                lost = True
                continue
            for message in self._marshal.parse(data):
                name = message.get_attr("IFLA_IFNAME") or message.get_attr("IFA_LABEL")
                if name:
                    names.add(name.split(":", 1)[0])  # an address label may be `docker0:1`
        return None if lost else names

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> LinkWatcher:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# -- a minimal rtnetlink reader (stdlib only) for Netlink.link ------------------------------

RTM_GETLINK, RTM_GETADDR = 18, 22
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
NLMSG_ERROR, NLMSG_DONE = 2, 3
IFLA_ADDRESS, IFLA_MTU = 1, 4
IFA_ADDRESS = 1
_HEADER = struct.Struct("=IHHII")  # nlmsghdr: length, type, flags, seq, pid


def _rtnl_request(sock, kind: int, body: bytes, dump: bool = False) -> list[tuple[bytes, dict]]:
    """Send one request; return each reply's fixed header and its attributes {type: bytes}."""
    flags = NLM_F_REQUEST | (NLM_F_DUMP if dump else 0)
    sock.send(_HEADER.pack(_HEADER.size + len(body), kind, flags, 1, 0) + body)
    fixed = len(body)
    replies: list[tuple[bytes, dict]] = []
    while True:
        data = sock.recv(1 << 16)
        offset = 0
        while offset < len(data):
            length, msg_type, _, _, _ = _HEADER.unpack_from(data, offset)
            payload = data[offset + _HEADER.size : offset + length]
            offset += (length + 3) & ~3
            if msg_type == NLMSG_DONE:
                return replies
            if msg_type == NLMSG_ERROR:
                code = struct.unpack_from("=i", payload)[0]
                if code == 0:
                    continue
                if -code == errno.ENODEV:
                    return replies
                raise OperationFailed(f"netlink: {os.strerror(-code)}")
            replies.append((payload[:fixed], _attributes(payload[fixed:])))
        if not dump:
            return replies


def _attributes(data: bytes) -> dict[int, bytes]:
    found = {}
    offset = 0
    while offset + 4 <= len(data):
        length, kind = struct.unpack_from("=HH", data, offset)
        if length < 4:
            break
        found[kind & 0x3FFF] = data[offset + 4 : offset + length]
        offset += (length + 3) & ~3
    return found


def _ipv4_addresses(replies: list[tuple[bytes, dict]], index: int) -> list[IPv4Interface]:
    found = []
    for header, attrs in replies:
        _, prefixlen, _, _, owner = struct.unpack("=BBBBI", header)
        if owner == index and IFA_ADDRESS in attrs:
            found.append(IPv4Interface((IPv4Address(attrs[IFA_ADDRESS]), prefixlen)))
    return found
