"""The netlink facade turns pyroute2's and the socket's errors into ovsnet's (fake sockets: this
tier has no namespace of its own to break; the lab exercises the real ones)."""

from __future__ import annotations

import errno

import pyroute2
import pytest
from pyroute2.netlink.exceptions import NetlinkError

from ovsnet.errors import NotReady, OperationFailed
from ovsnet.netlink import Netlink


class _FailingIpRoute:
    def __init__(self, error: Exception):
        self.error = error

    def __getattr__(self, name):
        def fail(*args, **kwargs):
            raise self.error

        return fail


def _netlink_with(error: Exception) -> Netlink:
    net = Netlink()
    net._ipr = _FailingIpRoute(error)
    return net


@pytest.mark.parametrize(
    "error", [NetlinkError(errno.EPERM, "Operation not permitted"), ConnectionResetError(104, "x")]
)
def test_fake_socket_read_errors_become_operation_failed(error):
    net = _netlink_with(error)
    for read in (
        net.local_addresses,
        lambda: net.underlay_networks(set()),
        lambda: net.default_route_mtu(set()),
    ):
        with pytest.raises(OperationFailed, match="could not read"):
            read()


def test_fake_socket_write_error_names_the_step():
    net = _netlink_with(NetlinkError(errno.EEXIST, "File exists"))
    net._index = lambda name: 7  # the link exists; the write itself fails
    with pytest.raises(OperationFailed, match="could not bring br0 up: File exists"):
        net.set_up("br0")


def test_fake_iproute_that_cannot_open_its_socket_is_not_ready(monkeypatch):
    def refuse():
        raise PermissionError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(pyroute2, "IPRoute", refuse)
    with pytest.raises(NotReady, match="cannot open a netlink socket"):
        Netlink().local_addresses()


def test_fake_socket_link_read_error_becomes_operation_failed(monkeypatch):
    # Link reads use rtnetlink sockets of their own (not pyroute2, which costs ~0.12 s to import).
    import ovsnet.netlink as netlink_module

    def refuse(*args, **kwargs):
        raise PermissionError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(netlink_module.socket, "socket", refuse)
    with pytest.raises(OperationFailed, match="could not read link lo"):
        Netlink().link("lo")
