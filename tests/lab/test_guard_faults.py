"""Fault tests on real OVSDB and nftables: whatever way a command that changes IPsec tunnels
ends (success, failure after its transaction committed, an interrupt, SIGKILL at either
checkpoint), the plaintext guard covers every IPsec tunnel OVSDB holds afterwards.

"Failure after commit" is real: the host's ovs-vswitchd is stopped (SIGSTOP), so the
transaction commits and vswitchd never confirms it (OVSNET_OVSDB_TIMEOUT=1.5 shortens the wait).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ovsnet.lab import netns
from tests.lab.crash_harness import initialised, write_psk

pytestmark = pytest.mark.lab

P1, P2, NEW = "198.51.100.91", "198.51.100.92", "198.51.100.93"

_COVERAGE = """
import json, sys
from ovsnet import nftables
from ovsnet.ovsdb.client import OvsDb
from ovsnet.plaintext_guard import desired_guard
from ovsnet.services.observed import observe_host
with OvsDb(sys.argv[1]) as db:
    wanted = desired_guard(observe_host(db))
kernel = nftables.read_guard()
print(json.dumps({"ovsdb": sorted(map(str, wanted.peers)),
                  "kernel": sorted(map(str, kernel.guard.peers)), "intact": kernel.intact}))
"""


@pytest.fixture(scope="module")
def host(lab_factory_module):
    lab = lab_factory_module(hosts=1, docker=False)
    host = initialised(lab.hosts[0])
    return host


@pytest.fixture(scope="module")
def psk_file(tmp_path_factory) -> Path:
    return write_psk(tmp_path_factory.mktemp("psk"))


@pytest.fixture
def clean(host):
    yield host
    stopped = host.pids().get("ovs-vswitchd")  # None when a test was interrupted without it
    with contextlib.suppress(ProcessLookupError):
        if stopped:
            os.kill(stopped, signal.SIGCONT)
    listed = json.loads(host.ovsnet("--json", "peer", "list", check=True).stdout)
    if listed:
        host.ovsnet("peer", "remove", *[p["remote_ip"] for p in listed], check=True)
    host.vsctl("remove", "Open_vSwitch", ".", "other_config", "ipsec_skb_mark")
    host.run(["nft", "delete", "table", "inet", "ovsnet"], check=False)


def coverage(host) -> dict:
    return json.loads(host.run([sys.executable, "-c", _COVERAGE, host.db]).stdout)


def ovsnet_argv(host, *args: str, env: dict[str, str] | None = None) -> list[str]:
    settings = [f"{k}={v}" for k, v in (env or {}).items()]
    return netns.exec_argv(host.netns, ["env", f"OVSNET_DB={host.db}", *settings, sys.executable,
                                        "-m", "ovsnet", "--db", host.db, *args])  # fmt: skip


# Each command: what the host holds first, then the command whose outcome is varied.
COMMANDS = {
    "peer add": (
        lambda psk: [["peer", "add", P1, "--ipsec", "--psk-file", psk]],
        lambda psk: ["peer", "add", NEW, "--ipsec", "--psk-file", psk],
    ),
    "peer remove": (
        lambda psk: [["peer", "add", P1, P2, "--ipsec", "--psk-file", psk]],
        lambda psk: ["peer", "remove", P2],
    ),
    "plaintext drop": (
        lambda psk: [["peer", "add", P1, "--ipsec", "--psk-file", psk, "--allow-plaintext"]],
        lambda psk: ["ipsec", "plaintext", "drop"],
    ),
}
OUTCOMES = ["success", "failure after commit", "interrupt", "kill after widen", "kill at commit"]


def end_command(host, argv_args: list[str], outcome: str) -> int:
    vswitchd = host.pids()["ovs-vswitchd"]
    env = {"OVSNET_OVSDB_TIMEOUT": "1.5"}
    if outcome.startswith("kill"):
        env["OVSNET_KILL_AT"] = "guard:after-widened" if outcome == "kill after widen" else (
            "ovsdb:after-commit")  # fmt: skip
    if outcome in ("failure after commit", "interrupt"):
        os.kill(vswitchd, signal.SIGSTOP)
        env["OVSNET_OVSDB_TIMEOUT"] = "1.5" if outcome == "failure after commit" else "20"
    try:
        child = subprocess.Popen(
            ovsnet_argv(host, *argv_args, env=env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        if outcome == "interrupt":
            time.sleep(1.5)  # committed by then, waiting for the stopped vswitchd
            child.send_signal(signal.SIGINT)
        child.communicate(timeout=60)
        return child.returncode
    finally:
        os.kill(vswitchd, signal.SIGCONT)


@pytest.mark.parametrize("outcome", OUTCOMES)
@pytest.mark.parametrize("command", list(COMMANDS))
def test_the_guard_covers_every_stored_ipsec_tunnel_however_a_command_ends(
    clean, psk_file, command, outcome
):
    host = clean
    setup, run = COMMANDS[command]
    for args in setup(str(psk_file)):
        host.ovsnet(*args, check=True)
    code = end_command(host, run(str(psk_file)), outcome)
    expected = {"success": 0, "failure after commit": 3, "interrupt": None}
    if outcome in expected and expected[outcome] is not None:
        assert code == expected[outcome], code
    if outcome.startswith("kill"):
        assert code == -signal.SIGKILL, code
    seen = coverage(host)
    assert set(seen["ovsdb"]) <= set(seen["kernel"]), f"{command}, {outcome}: {seen}"
    if seen["ovsdb"]:
        assert seen["intact"], seen
    if outcome == "success":
        assert seen["ovsdb"] == seen["kernel"], "a clean run leaves the guard exact"
