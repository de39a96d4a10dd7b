"""Notifications of link and IPv4 address changes from rtnetlink, parsed by pyroute2.

NOTE(companion): this belongs in ovsnet/netlink.py, the kernel facade (the only module meant to
import pyroute2); it lives apart until the facade's owner moves it there. It uses a plain
non-blocking netlink socket and pyroute2's parser rather than IPRoute.bind()/get(), because
IPRoute (0.9) reads ahead into an internal queue, so select() on its socket misses events.
"""

from __future__ import annotations

import errno
import socket

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
