"""Fault injection points, the host/peer health split, the daemons' version string."""

from __future__ import annotations

import subprocess
import sys

from ovsnet.faults import CHECKPOINTS
from ovsnet.ovs_daemons import parse_version
from ovsnet.services.status import StatusResult, host_health, peer_health


def test_checkpoint_kills_only_when_named():
    code = "from ovsnet.faults import checkpoint; checkpoint('init:after-bridge'); print('alive')"
    alive = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert alive.returncode == 0 and "alive" in alive.stdout
    env = {"OVSNET_KILL_AT": "init:after-bridge", "PATH": "/usr/bin:/bin"}
    killed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert killed.returncode == -9 and "alive" not in killed.stdout


def test_every_checkpoint_is_named_in_the_code():
    from pathlib import Path

    import ovsnet

    source = "".join(p.read_text() for p in Path(ovsnet.__file__).parent.rglob("*.py"))
    for names in CHECKPOINTS.values():
        for name in names:
            assert f'checkpoint("{name}")' in source, name


def _status(problems=(), peers=()):
    return StatusResult(bridge="br0", exists=True, problems=list(problems), peers=list(peers))


def test_a_peer_down_does_not_make_the_host_unhealthy():
    peers = [{"remote_ip": "198.51.100.2", "state": "down"}, {"remote_ip": "198.51.100.3",
             "state": "up"}]  # fmt: skip
    status = _status(peers=peers)
    assert host_health(status) == []
    assert peer_health(status) == ["peer 198.51.100.2 is down"]
    assert status.health_problems() == []
    assert status.health_problems(check_peers=True) == ["peer 198.51.100.2 is down"]


def test_host_problems_are_unhealthy_whatever_the_peers():
    status = _status(problems=["docker0 is not attached to br0"])
    assert host_health(status) == ["docker0 is not attached to br0"]
    assert status.health_problems(check_peers=True) == ["docker0 is not attached to br0"]


def test_version_from_the_daemons_reply():
    assert parse_version("ovs-vswitchd (Open vSwitch) 3.1.0\n") == "3.1.0"
    assert parse_version("ovsdb-server (Open vSwitch) 2.17.9-1\nDB Schema 8.3.0") == "2.17.9-1"
    assert parse_version("") is None and parse_version(None) is None


def test_vswitchd_liveness_is_unknown_outside_an_ovs_run_directory(tmp_path):
    from ovsnet.ovs_daemons import vswitchd_answers

    assert vswitchd_answers("tcp:192.0.2.1:6640") is None
    assert vswitchd_answers(f"unix:{tmp_path}/db.sock") is None
    (tmp_path / "ovsdb-server.ctl").touch()  # an OVS run directory without ovs-vswitchd
    assert vswitchd_answers(f"unix:{tmp_path}/db.sock") is False
