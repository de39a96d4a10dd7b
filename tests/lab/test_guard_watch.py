"""The plaintext guard stays in place on real nftables and a real OVSDB:

- a firewall reload (`nft flush ruleset`, as a stock /etc/nftables.conf does) is undone within
  5 s by `ovsnet ipsec plaintext watch` (the host-unit mode) and by the companion's loop;
- the companion does not start ovs-vswitchd when OVSDB holds IPsec tunnels and the guard
  cannot be put in place (nft missing from PATH), and starts the IKE daemon before vswitchd.

The companion runs its real start sequence and loop here, without the container image: only
the daemon starters are fakes (they record the order and watch this process), so the lab
host's own ovsdb-server and nftables are what the supervisor reads and writes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ovsnet.lab import netns
from tests.lab.crash_harness import initialised

pytestmark = pytest.mark.lab

PSK = "Zq8Vw2Lm5Xc7Rb3Tn9Wk4Yd6Hf1Gj0Ps"
PEER = "198.51.100.95"
DEADLINE = 5.0
NO_NFT_PATH = "/usr/local/bin:/usr/bin:/bin"  # nft lives in /usr/sbin

_FAKE_DAEMONS = """
import os, sys
from pathlib import Path
from ovsnet.companion import daemons, supervisor
from ovsnet.companion.config import CompanionConfig
from ovsnet.errors import OvsnetError

started = []

def fake(name):
    def start(paths, *more):
        started.append(name)
        print("started", name, flush=True)
        return daemons.Watched(name, os.getpid())
    return start

daemons.start_ovsdb = fake("ovsdb-server")
daemons.start_vswitchd = fake("ovs-vswitchd")
daemons.start_ipsec = fake("ovs-monitor-ipsec")
daemons.stop_child = daemons.stop_ovsdb = daemons.stop_ipsec = lambda *a, **k: None
paths = daemons.OvsPaths(rundir=Path(sys.argv[1].removeprefix("unix:")).parent)
sup = supervisor.Supervisor(CompanionConfig(hook_dir=Path("/nonexistent")), paths)
"""

_START = (
    _FAKE_DAEMONS
    + """
try:
    sup._start_ovs()
except OvsnetError as exc:
    print("refused:", exc.one_line())
print("order:", ",".join(started))
"""
)

# `ovsnet init` from the boot unit arrives as soon as OVSDB answers, takes the host lock and
# holds it while it waits for ovs-vswitchd to apply its change (OVSDB timeout: 10 s).
_COMMAND_ARRIVES_WITH_OVSDB = (
    _FAKE_DAEMONS
    + """
import subprocess, time
HOLD = ("import sys, time\\nfrom ovsnet.hostlock import host_lock\\n"
        "with host_lock(sys.argv[1], 'ovsnet init', wait=30):\\n"
        "    print('command: lock held', flush=True); time.sleep(8)")
command = []

def ovsdb_then_a_command(paths):
    started.append("ovsdb-server")
    command.append(subprocess.Popen([sys.executable, "-c", HOLD, sys.argv[1]]))
    time.sleep(1.0)  # the command's start: it takes the lock if it is free
    return daemons.Watched("ovsdb-server", os.getpid())

daemons.start_ovsdb = ovsdb_then_a_command
try:
    sup._start_ovs()
except OvsnetError as exc:
    print("refused:", exc.one_line(), flush=True)
print("order:", ",".join(started), flush=True)
command[0].wait(timeout=60)
"""
)

_RUN = (
    _FAKE_DAEMONS
    + """
sys.exit(sup.run())
"""
)


@pytest.fixture(scope="module")
def host(lab_factory_module):
    lab = lab_factory_module(hosts=1, docker=False)
    host = initialised(lab.hosts[0])
    return host


@pytest.fixture
def ipsec_host(host, tmp_path):
    psk = tmp_path / "psk"
    fd = os.open(psk, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, PSK.encode())
    os.close(fd)
    host.ovsnet("peer", "add", PEER, "--ipsec", "--psk-file", str(psk), check=True)
    yield host
    host.ovsnet("peer", "remove", PEER, check=True)
    host.vsctl("remove", "Open_vSwitch", ".", "other_config", "ipsec_skb_mark")
    host.run(["nft", "delete", "table", "inet", "ovsnet"], check=False)


def guarded(host) -> bool:
    done = host.run(["nft", "list", "table", "inet", "ovsnet"], check=False)
    return done.returncode == 0 and PEER in done.stdout


def start(host, argv: list[str]) -> subprocess.Popen:
    return subprocess.Popen(
        netns.exec_argv(host.netns, argv),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def stop(child: subprocess.Popen) -> tuple[int, str, str]:
    if child.poll() is None:
        child.send_signal(signal.SIGTERM)
    out, err = child.communicate(timeout=20)
    return child.returncode, out, err


def wait_for(condition, timeout: float) -> float | None:
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        if condition():
            return time.monotonic() - began
        time.sleep(0.05)
    return None


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its children (the nft monitor)."""
    total = 0.0
    pids = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        pids += [int(child) for child in children.read_text().split()]
    for each in pids:
        fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def flush_and_time_the_repair(host) -> float | None:
    assert wait_for(lambda: guarded(host), 10) is not None, "the guard was never in place"
    host.run(["nft", "flush", "ruleset"])  # the watcher may be back before the next look
    return wait_for(lambda: guarded(host), DEADLINE)


def test_plaintext_watch_puts_a_flushed_guard_back_within_5_s(ipsec_host):
    host = ipsec_host
    watcher = start(host, [sys.executable, "-m", "ovsnet", "--db", host.db,
                           "ipsec", "plaintext", "watch"])  # fmt: skip
    try:
        took = flush_and_time_the_repair(host)
        again = flush_and_time_the_repair(host)
        before, began = cpu_seconds(watcher.pid), time.monotonic()
        time.sleep(5)
        idle = (cpu_seconds(watcher.pid) - before) / (time.monotonic() - began)
    finally:
        code, _, err = stop(watcher)
    assert took is not None and again is not None, err
    assert code == 0, err
    assert err.count("plaintext guard was missing") == 2, err  # one repair per flush
    print(f"guard back after a flush in {took:.2f} s and {again:.2f} s; idle CPU {idle:.2%}")
    assert idle < 0.01, "watching costs next to nothing while nothing happens"


def test_plaintext_watch_never_narrows_a_guard_a_command_widened(ipsec_host):
    host = ipsec_host
    widen = ("from ipaddress import IPv4Address as A; from ovsnet import nftables; "
             "from ovsnet.plaintext_guard import Guard; nftables.write_guard(Guard(frozenset("
             f"{{A('{PEER}'), A('198.51.100.96')}})))")  # fmt: skip
    watcher = start(host, [sys.executable, "-m", "ovsnet", "--db", host.db,
                           "ipsec", "plaintext", "watch"])  # fmt: skip
    try:
        assert wait_for(lambda: guarded(host), 10) is not None
        host.run([sys.executable, "-c", widen])  # as `peer add` does before its commit
        time.sleep(1.0)
        assert "198.51.100.96" in host.run(["nft", "list", "table", "inet", "ovsnet"]).stdout
    finally:
        stop(watcher)


def test_companion_loop_puts_a_flushed_guard_back_within_5_s(ipsec_host):
    host = ipsec_host
    companion = start(host, [sys.executable, "-c", _RUN, host.db])
    try:
        took = flush_and_time_the_repair(host)
    finally:
        code, out, err = stop(companion)
    assert took is not None, err
    assert code == 0, err
    assert "started ovs-vswitchd" in out


def test_companion_refuses_to_start_vswitchd_without_a_guard_for_stored_ipsec_tunnels(
    ipsec_host,
):
    host = ipsec_host
    host.run(["nft", "delete", "table", "inet", "ovsnet"])  # as after a reboot
    done = host.run(["env", f"PATH={NO_NFT_PATH}", sys.executable, "-c", _START, host.db],
                    check=False)  # fmt: skip
    assert "order: ovsdb-server\n" in done.stdout, done.stdout + done.stderr
    assert "refused: not starting ovs-vswitchd" in done.stdout, done.stdout
    assert "nft not found" in done.stdout


def test_companion_starts_ike_then_vswitchd_behind_a_restored_guard(ipsec_host):
    host = ipsec_host
    host.run(["nft", "delete", "table", "inet", "ovsnet"])
    done = host.run([sys.executable, "-c", _START, host.db], check=False)
    assert "refused" not in done.stdout, done.stdout + done.stderr
    assert "order: ovsdb-server,ovs-monitor-ipsec,ovs-vswitchd" in done.stdout, done.stdout
    assert guarded(host)


def test_companion_start_is_not_refused_by_a_command_that_arrives_with_ovsdb(ipsec_host):
    """Seen in the real-kernel lab on a Docker restart: the boot unit's `ovsnet init` took the
    lock between ovsdb-server and the guard, waited for vswitchd, and the companion gave up
    (and restarted from scratch, 2 minutes under emulation). Now the companion holds the lock
    from before OVSDB answers until vswitchd runs, and the command waits for it."""
    host = ipsec_host
    host.run(["nft", "delete", "table", "inet", "ovsnet"])  # as after a reboot
    done = host.run([sys.executable, "-c", _COMMAND_ARRIVES_WITH_OVSDB, host.db], check=False)
    out = done.stdout
    assert "refused" not in out, out + done.stderr
    assert "order: ovsdb-server,ovs-monitor-ipsec,ovs-vswitchd" in out, out + done.stderr
    # The command got the lock, after the companion's start.
    assert out.index("order:") < out.index("command: lock held"), out
    assert guarded(host)


def test_companion_without_ipsec_tunnels_starts_vswitchd_even_without_nft(host):
    done = host.run(["env", f"PATH={NO_NFT_PATH}", sys.executable, "-c", _START, host.db],
                    check=False)  # fmt: skip
    assert "order: ovsdb-server,ovs-vswitchd" in done.stdout, done.stdout + done.stderr
    assert json.loads(host.ovsnet("--json", "peer", "list", check=True).stdout) == []


@pytest.fixture(autouse=True)
def _no_leftover_table(host):
    yield
    host.run(["nft", "delete", "table", "inet", "ovsnet"], check=False)
