"""The agent's peer sync planned from its copy of what it applied (ovsnet.cluster.peer_sync),
on one lab host (real ovsdb-server and ovs-vswitchd, userspace datapath).

Each check goes through the system: the tunnel ports OVSDB holds (ovs-vsctl) and the flows
vswitchd holds (ovs-ofctl), compared with what a fresh read of OVSDB says they must be. The copy
must be used when nothing else wrote (`read == "cache"`), and dropped when OVSDB reports another
writer, when vswitchd restarted, and after a failed change.
"""

from __future__ import annotations

import os
import signal
import subprocess
from ipaddress import IPv4Network

import pytest

from ovsnet import antispoof
from ovsnet.cluster.dataplane import DataplaneConfig, OvsDataplane
from ovsnet.errors import InvalidInput
from ovsnet.lab import ovs
from tests.lab.agent_harness import add_docker_bridge, configure_docker_bridge
from tests.lab.etcd_harness import wait_until

pytestmark = [pytest.mark.lab, pytest.mark.slow]
PEERS = {f"203.0.113.{i}": IPv4Network(f"10.0.{100 + i}.0/24") for i in range(1, 6)}
OURS = f"cookie={antispoof.COOKIE:#x}/-1"


@pytest.fixture(scope="module")
def host(lab_factory_module):
    lab = lab_factory_module(hosts=1, docker=False)
    (host,) = lab.hosts
    add_docker_bridge(host)
    configure_docker_bridge(host, str(host.subnet))
    host.ovsnet("init", "--prefix", host.prefix, "--datapath", "netdev", check=True)
    return host


@pytest.fixture
def dataplane(host):
    # init=False: the bridge is the one `ovsnet init` made in the host's namespace (this
    # process is outside it; only OVSDB and OpenFlow are used, through the host's sockets).
    config = DataplaneConfig(db=host.db, supernet=IPv4Network(host.supernet), init=False)
    dataplane = OvsDataplane(config)
    try:
        yield dataplane
    finally:
        dataplane.close()


def sync(dataplane, *peers: str) -> str:
    return dataplane.apply_peers(tuple(peers), (), {p: PEERS[p] for p in peers})["read"]


def tunnels(host) -> set[str]:
    out = host.vsctl("--bare", "--columns=options", "find", "Interface", "type=gre").stdout
    return {word.split("=")[1].strip('"') for word in out.split() if "remote_ip" in word}


def installed_flows(host) -> list[str]:
    target = f"unix:{host.rundir}/br0.mgmt"
    argv = ["ovs-ofctl", "-O", "OpenFlow15", "--no-stats", "--no-names", "dump-flows", target, OURS]
    return antispoof.parse_dump(subprocess.run(argv, capture_output=True, text=True, check=True,
                                               timeout=30).stdout)  # fmt: skip


def flows_match_ovsdb(host, dataplane) -> bool:
    """vswitchd's ovsnet flows are exactly what OVSDB's records ask for now."""
    bridge = dataplane.db.bridge("br0", state=False)
    wanted = antispoof.plan_bridge(bridge, meters=True).flows
    return not antispoof.flow_changes(installed_flows(host), wanted)


def test_changes_use_the_copy_and_leave_ovsdb_and_flows_as_a_full_read_would(host, dataplane):
    assert sync(dataplane, "203.0.113.1", "203.0.113.2") == "no copy yet"
    assert sync(dataplane, "203.0.113.1", "203.0.113.2", "203.0.113.3") == "cache"
    assert sync(dataplane, "203.0.113.1", "203.0.113.3") == "cache"
    assert tunnels(host) == {"203.0.113.1", "203.0.113.3"}
    assert flows_match_ovsdb(host, dataplane)
    assert dataplane.stale() is None
    dataplane.forget()  # the periodic resync
    assert dataplane.stale() == "resync"
    assert sync(dataplane, "203.0.113.1", "203.0.113.3") == "resync"
    assert sync(dataplane, "203.0.113.1", "203.0.113.3") == "cache"


def test_a_tunnel_removed_by_another_writer_is_noticed_and_put_back(host, dataplane):
    sync(dataplane, "203.0.113.1", "203.0.113.2")
    port = dataplane.db.bridge("br0", state=False).tunnels["203.0.113.2"].name
    host.vsctl("del-port", "br0", port, check=True)
    wait_until(lambda: dataplane.stale() is not None, 10, "the IDL to report the foreign change")
    assert dataplane.stale() == "OVSDB changed by another writer"
    assert sync(dataplane, "203.0.113.1", "203.0.113.2", "203.0.113.4") == (
        "OVSDB changed by another writer"
    )
    assert tunnels(host) == {"203.0.113.1", "203.0.113.2", "203.0.113.4"}
    assert flows_match_ovsdb(host, dataplane)
    assert sync(dataplane, "203.0.113.1", "203.0.113.2") == "cache"


def test_flows_lost_with_a_vswitchd_restart_are_put_back(host, dataplane):
    sync(dataplane, "203.0.113.1", "203.0.113.2")
    vswitchd = ovs.pids(host.layout)["ovs-vswitchd"]
    assert vswitchd is not None
    os.kill(vswitchd, signal.SIGTERM)  # this test's lab daemon
    wait_until(lambda: not os.path.exists(f"/proc/{vswitchd}"), 10, "vswitchd to exit")
    ovs.start_vswitchd(host.layout)
    wait_until(lambda: installed_flows(host) == [], 10, "the new vswitchd, without flows")
    assert dataplane.stale() == "ovs-vswitchd restarted"
    assert sync(dataplane, "203.0.113.1", "203.0.113.2", "203.0.113.5") == "ovs-vswitchd restarted"
    assert flows_match_ovsdb(host, dataplane)
    assert installed_flows(host)


def test_after_a_failed_change_everything_is_read_again(host, dataplane):
    sync(dataplane, "203.0.113.1")
    with pytest.raises(InvalidInput):  # peer sync refuses a peer inside the overlay
        dataplane.apply_peers(("203.0.113.1", "10.9.9.9"), (), {})
    assert dataplane.stale() == "no copy yet"
    assert sync(dataplane, "203.0.113.1", "203.0.113.3") == "no copy yet"
    assert tunnels(host) == {"203.0.113.1", "203.0.113.3"}
    assert flows_match_ovsdb(host, dataplane)
