"""The OVSDB facade against real ovsdb-servers."""

import pytest

from ovsnet.ovsdb.client import OvsDb

pytestmark = pytest.mark.lab


def test_two_databases_in_one_process_stay_apart(lab_factory):
    """ovsdbapp shares its first connection class-wide; each OvsDb must keep its own."""
    lab = lab_factory(hosts=2, docker=False)
    one, two = lab.hosts
    one.vsctl("add-br", "only-on-h1", "--", "set", "bridge", "only-on-h1", "datapath_type=netdev")
    with OvsDb(one.db) as first, OvsDb(two.db) as second:
        assert "only-on-h1" in first.bridge_names()
        assert "only-on-h1" not in second.bridge_names()
        assert second.bridge("only-on-h1") is None


def test_a_refused_interface_is_reported_and_the_transaction_undone(lab_factory):
    """OVS 3.x no longer has `ipsec_gre`: vswitchd refuses it, so the whole change goes."""
    from ipaddress import IPv4Address

    from ovsnet.errors import OperationFailed
    from ovsnet.model import Changes, TunnelSpec

    lab = lab_factory(hosts=1, docker=False)
    host = lab.hosts[0]
    host.vsctl("add-br", "br0", "--", "set", "bridge", "br0", "datapath_type=netdev")
    good = TunnelSpec(IPv4Address("198.51.100.50"), "gre-c6336432")
    refused = TunnelSpec(IPv4Address("198.51.100.51"), "gre-c6336433", type="ipsec_gre")
    change = Changes(tunnel_bridge="br0", add_tunnels=[good, refused])
    undo = Changes(tunnel_bridge="br0", remove_ports=[good.port, refused.port])
    with OvsDb(host.db) as db, pytest.raises(OperationFailed) as caught:
        db.apply(change, undo=undo)
    assert "gre-c6336433: could not open network device" in caught.value.one_line()
    assert host.vsctl("list-ports", "br0").stdout.split() == []


READ_WITHOUT_OVS_LIBRARY = """
import json, sys
from ovsnet.netlink import Netlink
from ovsnet.ovsdb.client import OvsDb
snapshot = OvsDb(sys.argv[1]).snapshot()
bridge = snapshot.bridges["br-read"]
link = Netlink().link("br-read")
print(json.dumps({
    "ports": sorted(bridge.ports),
    "options": bridge.ports["gre-c6336432"].options,
    "link": [link.exists, link.up, link.mtu, link.mac, [str(a) for a in link.addresses]],
    "loaded": sorted(m for m in sys.modules if m == "pyroute2" or m.startswith("ovs.")),
}))
"""


def test_reads_need_neither_the_ovs_parser_nor_pyroute2(lab_factory):
    """Reads parse OVSDB's reply with the stdlib and read links with raw rtnetlink, so a plain
    install (no compiled `ovs` parser) reads as fast as a Debian-lent one; same answers as
    ovs-vsctl and iproute2 give."""
    import json
    import sys

    lab = lab_factory(hosts=1, docker=False)
    host = lab.hosts[0]
    host.vsctl("add-br", "br-read", "--", "set", "bridge", "br-read", "datapath_type=netdev",
               "--", "add-port", "br-read", "gre-c6336432", "--", "set", "interface",
               "gre-c6336432", "type=gre", "options:remote_ip=198.51.100.50")  # fmt: skip
    host.run(["ip", "link", "set", "br-read", "up", "mtu", "1400"])
    host.run(["ip", "address", "add", "10.9.8.1/24", "dev", "br-read"])
    seen = json.loads(host.run([sys.executable, "-c", READ_WITHOUT_OVS_LIBRARY, host.db]).stdout)
    assert seen["loaded"] == [], "reads imported the ovs library or pyroute2"
    assert seen["ports"] == ["br-read", "gre-c6336432"]
    assert seen["options"] == {"remote_ip": "198.51.100.50"}
    shown = json.loads(host.run(["ip", "-j", "address", "show", "dev", "br-read"]).stdout)[0]
    assert seen["link"] == [True, True, 1400, shown["address"], ["10.9.8.1/24"]]
