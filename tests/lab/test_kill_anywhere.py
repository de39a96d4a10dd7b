"""SIGKILL at every step of init, peer add/remove/sync and reset, then one more run of the same
command: the host ends healthy (OVSDB ports, the gateway on br0 only, docker0 attached, the
plaintext guard exactly the IPsec tunnels in OVSDB, status without problems).

The kill comes from ovsnet.faults: OVSNET_KILL_AT names a checkpoint, the process SIGKILLs
itself there (no finally, no undo), as a power cut or an OOM kill would.
"""

from __future__ import annotations

import json
import sys

import pytest

from ovsnet.faults import CHECKPOINTS, ENV
from tests.lab.crash_harness import (
    fake_docker0,
    host_problems,
    init_argv,
    ipv4,
    reset_host,
    write_psk,
)

pytestmark = pytest.mark.lab

P1, P2, P3 = "198.51.100.61", "198.51.100.62", "198.51.100.63"


@pytest.fixture(scope="module")
def host(lab_factory_module, tmp_path_factory):
    lab = lab_factory_module(hosts=1, docker=False)
    (h1,) = lab.hosts
    fake_docker0(h1)
    h1.psk = write_psk(tmp_path_factory.mktemp("psk"))
    h1.peers_file = h1.psk.parent / "peers"
    h1.peers_file.write_text(f"{P2}\n{P3}\n")
    return h1


def killed(host, point: str, *args: str):
    """The ovsnet command with OVSNET_KILL_AT=point (its exit code is -9 if it got there)."""
    argv = ["env", f"{ENV}={point}", sys.executable, "-m", "ovsnet", "--db", host.db, *args]
    return host.run(argv, check=False, timeout=120)


def ipsec_add(host, *peers):
    return ["peer", "add", *peers, "--ipsec", "--psk-file", str(host.psk)]


# (name, setup commands, the command killed and re-run, peers expected after it)
PEER_CASES = [
    ("add", [], lambda h: ipsec_add(h, P1, P2), {P1, P2}),
    ("remove", [lambda h: ipsec_add(h, P1, P2)], lambda h: ["peer", "remove", P1], {P2}),
    (
        "sync",
        [lambda h: ipsec_add(h, P1, P2)],
        lambda h: ["peer", "sync", str(h.peers_file), "--ipsec", "--psk-file", str(h.psk)],
        {P2, P3},
    ),
]


@pytest.mark.parametrize("point", CHECKPOINTS["init"])
def test_init_killed_at_each_step_is_healed_by_the_next_init(host, point):
    reset_host(host)
    done = killed(host, point, *init_argv(host))
    assert done.returncode == -9, f"{point} not reached: {done.stderr}"
    again = host.ovsnet(*init_argv(host))
    assert again.returncode == 0, again.stderr
    assert host_problems(host) == []


@pytest.mark.parametrize("point", CHECKPOINTS["peers"])
@pytest.mark.parametrize("case", PEER_CASES, ids=[c[0] for c in PEER_CASES])
def test_peer_change_killed_at_each_step_is_healed_by_the_next_run(host, case, point):
    _, setup, command, expected = case
    reset_host(host)
    host.ovsnet(*init_argv(host), check=True)
    for step in setup:
        host.ovsnet(*step(host), check=True)
    done = killed(host, point, *command(host))
    assert done.returncode == -9, f"{point} not reached: {done.stderr}"
    again = host.ovsnet(*command(host))
    assert again.returncode == 0, again.stderr
    assert host_problems(host, expected) == []
    listed = json.loads(host.ovsnet("--json", "peer", "list", check=True).stdout)
    assert {p["remote_ip"] for p in listed} == expected


@pytest.mark.parametrize("point", CHECKPOINTS["reset"])
def test_reset_killed_at_each_step_is_finished_by_the_next_reset(host, point):
    reset_host(host)
    host.ovsnet(*init_argv(host), check=True)
    host.ovsnet(*ipsec_add(host, P1), check=True)
    done = killed(host, point, "reset")
    assert done.returncode == -9, f"{point} not reached: {done.stderr}"
    again = host.ovsnet("reset")
    assert again.returncode == 0, again.stderr
    mask = host.supernet.split("/")[1]
    assert ipv4(host, "docker0") == [f"{host.gateway}/{mask}"]
    assert "br0" not in host.vsctl("list-br").stdout.split()
    assert host.run(["nft", "list", "table", "inet", "ovsnet"], check=False).returncode != 0
