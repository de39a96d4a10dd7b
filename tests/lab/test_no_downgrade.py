"""Every command that states peers, on a real OVSDB: none turns an existing IPsec tunnel into a
plaintext one without --allow-downgrade (peer add, peer sync, the cluster agent's reconcile,
the companion's configured peers). Each refusal is one line, exit 2, OVSDB unchanged."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.lab.crash_harness import PSK, initialised, write_psk

pytestmark = pytest.mark.lab

PEER = "198.51.100.81"
PORT = "gre-c6336451"

# The agent's reconcile and the companion's configured peers, run as they run in production
# (their own code path into add_peers), against the lab host's OVSDB.
_AGENT = """
import sys
from ipaddress import IPv4Network
from ovsnet.cluster.dataplane import DataplaneConfig, OvsDataplane
from ovsnet.errors import OvsnetError
allow = sys.argv[2] == "allow"
plane = OvsDataplane(DataplaneConfig(db=sys.argv[1], supernet=IPv4Network("10.0.0.0/8"),
                                     init=False, allow_downgrade=allow))
try:
    plane.apply_peers((sys.argv[3],))
except OvsnetError as exc:
    print(exc.one_line(), file=sys.stderr)
    sys.exit(exc.exit_code)
finally:
    plane.close()
"""

_COMPANION = """
import sys
from ovsnet.companion.config import CompanionConfig
from ovsnet.companion.daemons import OvsPaths
from ovsnet.companion.supervisor import Supervisor
from ovsnet.errors import OvsnetError
from ovsnet.netlink import Netlink
from ovsnet.ovsdb.client import OvsDb
psk_file = sys.argv[5] if len(sys.argv) > 5 else None
config = CompanionConfig(prefix=sys.argv[3], peers=(sys.argv[4],), ipsec=bool(psk_file),
                         psk_file=psk_file, allow_downgrade=sys.argv[2] == "allow")
supervisor = Supervisor(config, OvsPaths())
with OvsDb(sys.argv[1]) as db, Netlink() as net:
    try:
        supervisor.healing.add_configured_peers(db, net)
    except OvsnetError as exc:
        print(exc.one_line(), file=sys.stderr)
        sys.exit(exc.exit_code)
"""


@pytest.fixture(scope="module")
def host(lab_factory_module):
    lab = lab_factory_module(hosts=1, docker=False)
    host = initialised(lab.hosts[0])
    return host


@pytest.fixture
def psk_file(tmp_path) -> Path:
    return write_psk(tmp_path)


@pytest.fixture(params=["drop plaintext", "allow plaintext"])
def ipsec_peer(request, host, psk_file):
    """One IPsec tunnel, with the host dropping plaintext (default) or not (--allow-plaintext:
    where the rewrite as plain GRE used to go through, reported as "update tunnel")."""
    extra = ["--allow-plaintext"] if request.param == "allow plaintext" else []
    host.ovsnet("peer", "add", PEER, "--ipsec", "--psk-file", str(psk_file), *extra, check=True)
    yield host, request.param
    host.ovsnet("peer", "remove", PEER, check=True)
    host.vsctl("remove", "Open_vSwitch", ".", "other_config", "ipsec_skb_mark")
    host.run(["nft", "delete", "table", "inet", "ovsnet"], check=False)


def tunnel(host) -> dict:
    out = host.vsctl("--format=json", "--columns=type,options", "find", "Interface",
                     f"name={PORT}").stdout  # fmt: skip
    ((kind, options),) = json.loads(out)["data"]
    return {"type": kind, "options": dict(options[1])}


def peers_file(tmp_path) -> Path:
    path = tmp_path / "peers"
    path.write_text(PEER + "\n")
    return path


def state_commands(host, tmp_path, allow: bool) -> dict[str, list[str]]:
    flag = ["--allow-downgrade"] if allow else []
    word = "allow" if allow else "refuse"
    python = [sys.executable, "-c"]
    return {
        "peer add": [sys.executable, "-m", "ovsnet", "--db", host.db, "peer", "add", PEER, *flag],
        "peer sync": [sys.executable, "-m", "ovsnet", "--db", host.db, "peer", "sync",
                      str(peers_file(tmp_path)), *flag],
        "agent reconcile": [*python, _AGENT, host.db, word, PEER],
        "companion peers": [*python, _COMPANION, host.db, word, host.prefix, PEER],
    }  # fmt: skip


@pytest.mark.parametrize("command", ["peer add", "peer sync", "agent reconcile", "companion peers"])
def test_no_command_rewrites_an_ipsec_tunnel_as_plaintext_without_the_flag(
    ipsec_peer, tmp_path, command
):
    host, _ = ipsec_peer
    before = tunnel(host)
    assert before["options"]["psk"] == PSK
    done = host.run(state_commands(host, tmp_path, allow=False)[command], check=False)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "into plaintext" in done.stderr and "--allow-downgrade" in done.stderr, done.stderr
    assert PSK not in done.stderr + done.stdout
    assert tunnel(host) == before, "nothing may change"


@pytest.mark.parametrize("command", ["peer add", "agent reconcile"])
def test_the_flag_allows_the_downgrade_where_the_host_allows_plaintext(
    ipsec_peer, tmp_path, command
):
    host, mode = ipsec_peer
    done = host.run(state_commands(host, tmp_path, allow=True)[command], check=False)
    if mode == "drop plaintext":
        # The host still drops unencrypted tunnel traffic: a plain tunnel would carry nothing.
        assert done.returncode == 2 and "drops unencrypted" in done.stderr, done.stderr
        assert "psk" in tunnel(host)["options"]
    else:
        assert done.returncode == 0, done.stderr
        assert "psk" not in tunnel(host)["options"]


def test_the_companion_states_its_peers_with_ipsec_when_it_runs_ipsec(host, psk_file):
    other = "198.51.100.82"
    done = host.run([sys.executable, "-c", _COMPANION, host.db, "refuse", host.prefix, other,
                     str(psk_file)], check=False)  # fmt: skip
    try:
        assert done.returncode == 0, done.stderr
        listed = json.loads(host.ovsnet("--json", "peer", "list", check=True).stdout)
        assert [(p["remote_ip"], p["ipsec"]) for p in listed] == [(other, True)]
        assert host.run(["nft", "list", "table", "inet", "ovsnet"]).stdout.count(other) == 1
    finally:
        host.ovsnet("peer", "remove", other, check=True)
