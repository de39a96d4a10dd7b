"""Bad input gets exit 2 or 3, one line, no traceback, and no change.

Runs against one initialised lab host (real ovsdb-server, ovs-vswitchd and dockerd), so "no
change" is checked on the real OVSDB and the real kernel addresses.
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.lab

PEER = "198.51.100.77"

BAD_INPUTS = [
    # (arguments, expected exit code, a word the message must contain)
    (["init", "--prefix", "10.0"], 2, "malformed"),
    (["init", "--prefix", "10.0.300"], 2, "malformed"),
    (["init", "--subnet", "10.0.1.5/24"], 2, "not a valid"),
    (["init", "--prefix", "192.168.5"], 2, "not inside the supernet"),
    (["init", "--prefix", "198.51.100", "--supernet", "198.51.0.0/16"], 2, "overlaps"),
    (["init", "--prefix", "10.0.1", "--supernet", "10.0.0.0/33"], 2, "supernet"),
    (["init"], 2, "exactly one"),
    (["init", "--prefix", "10.0.1", "--datapath", "dpdk"], 2, "datapath"),
    (["init", "--prefix", "10.0.1", "--underlay-mtu", "500"], 2, "MTU"),
    (["init", "--prefix", "10.0.1", "--underlay-mtu", "lots"], 2, "underlay-mtu"),
    (["init", "--prefix", "10.0.7", "--datapath", "netdev"], 3, "--bip=10.0.7.1/8"),
    (["init", "--prefix", "10.0.1", "--docker-bridge", "nosuch0"], 3, "nosuch0"),
    (["init", "--prefix", "10.0.1", "--bridge", "br-phy"], 2, "not created by ovsnet"),
    # Names Linux cannot use: refused before anything is touched (was: exit 3, "does not exist").
    (["init", "--prefix", "10.0.1", "--bridge", "a b"], 2, "contains a space"),
    (["init", "--prefix", "10.0.1", "--bridge", "ovsnet-bridge-16"], 2, "longer than 15 bytes"),
    (["init", "--prefix", "10.0.1", "--bridge", "br\x1b0"], 2, "control character"),
    (["init", "--prefix", "10.0.1", "--bridge", "a/b"], 2, "'/'"),
    (["init", "--prefix", "10.0.1", "--docker-bridge", ".."], 2, "'.' or '..'"),
    (["init", "--prefix", "127.0.1", "--supernet", "127.0.0.0/8"], 2, "loopback space"),
    (["init", "--prefix", "169.254.1", "--supernet", "169.254.0.0/16"], 2, "link-local"),
    (["peer", "add", "240.0.0.1"], 2, "reserved space"),
    (["peer", "add", "255.255.255.255"], 2, "broadcast space"),
    (["peer", "add", "0.0.0.7"], 2, "unspecified space"),
    (["peer", "add", "{own}"], 2, "own address"),
    (["peer", "add", "10.0.2.5"], 2, "overlay supernet"),
    (["peer", "add", "224.0.0.1"], 2, "unicast"),
    (["peer", "add", "not-an-ip"], 2, "not an IP"),
    (["peer", "add", PEER, "198.51.100.300"], 2, "not an IP"),
    (["peer", "add", "--type", "ipip", PEER], 2, "tunnel type"),
    (["peer", "add", "--bridge", "br9", PEER], 3, "br9"),
    (["peer", "remove", "--bridge", "br9", PEER], 3, "br9"),
    (["peer", "sync", "/nonexistent/peers.txt"], 2, "peers file"),
    (["peer", "add"], 2, "REMOTE_IP"),
    (["bogus-command"], 2, "bogus-command"),
    (["--db", "unix:/nonexistent/db.sock", "status"], 3, "cannot reach OVSDB"),
    (["--db", "tcp:127.0.0.1:1", "peer", "list"], 3, "cannot reach OVSDB"),
]


@pytest.fixture(scope="module")
def host(lab_factory_module):
    lab = lab_factory_module(hosts=1)
    host = lab.hosts[0]
    assert host.ovsnet("init", "--prefix", host.prefix, "--datapath", "netdev").returncode == 0
    assert host.ovsnet("peer", "add", "198.51.100.99").returncode == 0
    return host


def state(host) -> tuple[str, str]:
    # Only what a command could change: counters and BFD status tick on their own.
    keep = host.vsctl("--columns=name,ports,external_ids,datapath_type", "list", "Bridge").stdout
    ports = host.vsctl("--columns=name,interfaces,protected,external_ids", "list", "Port").stdout
    ifaces = host.vsctl("--columns=name,type,options,bfd,mtu_request", "list", "Interface").stdout
    addresses = host.run(["ip", "-4", "-o", "addr"]).stdout
    return keep + ports + ifaces, addresses


@pytest.mark.parametrize(
    "args, code, fragment", BAD_INPUTS, ids=[" ".join(a) for a, _, _ in BAD_INPUTS]
)
def test_bad_input_is_refused_cleanly(host, args, code, fragment):
    args = [a.replace("{own}", host.underlay_ip) for a in args]
    before = state(host)
    done = host.ovsnet(*args)
    assert done.returncode == code, (done.returncode, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("ovsnet: error: ")
    assert fragment in lines[0]
    assert "Traceback" not in done.stderr + done.stdout
    assert state(host) == before


def test_peer_sync_file_with_a_bad_line_names_it_and_changes_nothing(host, tmp_path):
    peers = tmp_path / "peers.txt"
    peers.write_bytes(b"198.51.100.99\n198.51.100.98 # new\n\n224.0.0.1\n")
    before = state(host)
    done = host.ovsnet("peer", "sync", str(peers))
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and f"{peers}:4: peer 224.0.0.1 is not a unicast" in lines[0]
    assert state(host) == before
