"""PSK rotation on two netns lab hosts with real strongSwan and ovs-monitor-ipsec (IKE only).

`ovsnet ipsec rotate-psk` in its three stages (accept, switch, finish) on both hosts, the way a
fleet runs it. What this kernel shows (no ESP here, see test_ike_netns.py): after each step the
pair's IKE SA establishes again, first with either key accepted, at the end with the new key
alone; the plaintext guard covers the peer at every sample taken during the change; and the
time from a host's switch to the next IKE SA (the pair's interruption at that end) is measured.
Nothing here triggers IKE by traffic (userspace datapath, no ACQUIRE): the test initiates with
`ipsec up` until it succeeds, so the figure is an upper bound of what an acquire would take.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest

from ovsnet import plaintext_guard
from tests.lab.ipsec_harness import describe, ike_host
from tests.lab.test_ike_netns import add_ipsec_tunnel, set_psk

pytestmark = [pytest.mark.lab, pytest.mark.slow]

OLD_PSK = "Qm7Tz2Lk9Xw4Nc1Rb8Hv5Jd3Fp6Gs0Ya"
NEW_PSK = "Wd3Kf8Zp1Mx6Tq9Bn4Ls7Hc2Vr5Gj0Ue"
IKE_WAIT = 30.0
CLEAN_KEYS = ("ipsec_skb_mark", "ovsnet-psk-file")


@pytest.fixture(scope="module")
def lab(lab_factory_module):
    return lab_factory_module(hosts=2, docker=False)


@pytest.fixture
def pair(lab, tmp_path):
    """Both hosts with a netdev br0, their IKE daemons, and a PSK tunnel to each other."""
    for host in lab.hosts:
        host.vsctl(
            "--may-exist", "add-br", "br0", "--", "set", "Bridge", "br0", "datapath_type=netdev"
        )
    try:
        with ike_host(lab.hosts[0]) as one, ike_host(lab.hosts[1]) as two:
            set_psk(one, tmp_path, OLD_PSK)
            set_psk(two, tmp_path, OLD_PSK)
            ports = (add_ipsec_tunnel(one, lab.hosts[1]), add_ipsec_tunnel(two, lab.hosts[0]))
            yield (lab.hosts[0], one, ports[0]), (lab.hosts[1], two, ports[1])
    finally:
        for host in lab.hosts:
            host.vsctl("--if-exists", "del-br", "br0")
            for key in CLEAN_KEYS:
                host.vsctl("remove", "Open_vSwitch", ".", "other_config", key, check=False)
            host.run(["nft", "delete", "table", "inet", "ovsnet"], check=False)


def write_key(directory: Path, name: str, value: str) -> Path:
    path = directory / name
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, (value + "\n").encode())
    os.close(fd)
    return path


def rotate(ike, stage: str, key_file: Path, *extra: str) -> dict:
    done = ike.ovsnet("--json", "ipsec", "rotate-psk", "--stage", stage, "--psk-file",
                      str(key_file), *extra)  # fmt: skip
    assert done.returncode == 0, done.stderr + describe(ike)
    for secret in (OLD_PSK, NEW_PSK):
        assert secret not in done.stdout + done.stderr
    return json.loads(done.stdout)


def psk_conn(ike, port: str) -> str:
    """The current strongSwan connection ovs-monitor-ipsec made for the tunnel."""
    return ike.wait_for_connection(port, "pre-shared key")


def current_conn(ike, port: str) -> tuple[str | None, int]:
    """ovs-monitor-ipsec names connections PORT-VERSION; the highest version is current."""
    conns = [c for c in ike.connections() if c.startswith(f"{port}-")]
    conn = max(conns, key=lambda c: int(c.rsplit("-", 1)[1]), default=None)
    return conn, int(conn.rsplit("-", 1)[1]) if conn else 0


def bring_up(ike, port: str, timeout: float = IKE_WAIT) -> float:
    """Initiate IKE for the tunnel's current connection until it is established; the time."""
    started = time.monotonic()
    while True:
        conn, _ = current_conn(ike, port)
        if conn and "established between" in ike.up(conn, timeout=15).stdout:
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise AssertionError(f"{ike.name}: {port} not up after {timeout:.0f} s\n"
                                 + describe(ike))  # fmt: skip
        time.sleep(0.2)


def reestablish(ike, port: str) -> None:
    """Tear the pair's IKE SA down and start a new one from this end: authenticates anew."""
    for conn in [c for c in ike.connections() if c.startswith(f"{port}-")]:
        ike.ipsec("down", conn)
    bring_up(ike, port)


def guard_covers(host, peer_ip: str) -> bool:
    done = host.run(["nft", "-j", "list", "table", "inet", "ovsnet"], check=False)
    if done.returncode != 0:
        return False
    state = plaintext_guard.parse_listing(json.loads(done.stdout))
    return state.intact and any(str(ip) == peer_ip for ip in state.guard.gre)


class GuardSampler:
    """Samples both hosts' guards in a thread while a change runs."""

    def __init__(self, pairs):
        self.pairs = pairs
        self.samples: list[tuple[str, bool]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            for host, peer_ip in self.pairs:
                self.samples.append((host.name, guard_covers(host, peer_ip)))
            time.sleep(0.05)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=30)


def test_psk_rotation_keeps_ike_up_between_stages_and_the_guard_in_place(pair, tmp_path):
    (lab1, ike1, port1), (lab2, ike2, port2) = pair
    new1 = write_key(tmp_path, "new-1", NEW_PSK)
    new2 = write_key(tmp_path, "new-2", NEW_PSK)
    psk_conn(ike1, port1), psk_conn(ike2, port2)
    bring_up(ike1, port1)
    assert guard_covers(lab1, lab2.underlay_ip) and guard_covers(lab2, lab1.underlay_ip)
    figures: dict[str, float] = {}

    # accept, on host 1 only: host 1 still signs with the old key, so host 2 (which has not
    # run the stage) accepts it; the new key is merely also accepted.
    dry = rotate(ike1, "accept", new1, "--dry-run")
    assert dry["steps"] and dry["dry_run"] is True
    assert rotate(ike1, "accept", new1)["keys_loaded"] == 2  # the new and the current key
    reestablish(ike1, port1)
    assert rotate(ike1, "accept", new1)["steps"] == []  # idempotent
    assert rotate(ike2, "accept", new2)["keys_loaded"] == 2

    # switch on host 1, then host 2: each end's switch re-creates its connection; the pair
    # authenticates across the mixed keys (one end new, the other old) and again once both are
    # new. The guard is sampled throughout.
    with GuardSampler([(lab1, lab2.underlay_ip), (lab2, lab1.underlay_ip)]) as sampler:
        for name, ike, port, key in (("h1", ike1, port1, new1), ("h2", ike2, port2, new2)):
            before = psk_conn(ike, port)
            started = time.monotonic()
            report = rotate(ike, "switch", key)
            assert report["tunnels_switched"] == [port], report
            command_done = time.monotonic()
            while ike.established(before):  # ovs-monitor-ipsec tears the old connection down
                assert time.monotonic() < command_done + IKE_WAIT, describe(ike)
                time.sleep(0.05)
            down = time.monotonic()
            bring_up(ike, port)
            figures[f"{name}_command_s"] = round(command_done - started, 2)
            figures[f"{name}_ike_down_s"] = round(time.monotonic() - down, 2)
            figures[f"{name}_switch_to_ike_s"] = round(time.monotonic() - started, 2)
            assert rotate(ike, "switch", key)["steps"] == []  # idempotent
    assert sampler.samples and all(ok for _, ok in sampler.samples), sampler.samples
    for host in (lab1, lab2):
        port = port1 if host is lab1 else port2
        options = host.vsctl("get", "Interface", port, "options:psk").stdout
        assert options.strip().strip('"') == NEW_PSK

    # finish: only the new key is left, and the pair still authenticates (from both ends).
    for ike, key in ((ike1, new1), (ike2, new2)):
        assert rotate(ike, "finish", key)["keys_forgotten"] == 2
        assert rotate(ike, "finish", key)["steps"] == []
    reestablish(ike1, port1)
    reestablish(ike2, port2)
    for ike in (ike1, ike2):  # charon logs the vici keys' ids and owners, never the keys
        logs = ike.charon_log() + ike.monitor_log()
        assert "ovsnet-psk-next-" in ike.charon_log(), describe(ike)
        assert OLD_PSK not in logs and NEW_PSK not in logs
    print("PSK rotation, lab IKE interruption per switch:", figures, f"{len(sampler.samples)} "
          "guard samples, all covering the peer")  # fmt: skip
    for value in figures.values():
        assert value < IKE_WAIT


def test_a_switch_without_the_peers_accept_stage_is_refused_by_the_peer_not_sent_in_clear(
    pair, tmp_path
):
    """Why the accept stage exists: without it the switched end's new key is refused until the
    peer switches too (the pair is down, not exposed: the guard stays)."""
    (lab1, ike1, port1), (lab2, ike2, port2) = pair
    new1 = write_key(tmp_path, "new-1", NEW_PSK)
    psk_conn(ike1, port1), psk_conn(ike2, port2)
    _, version = current_conn(ike1, port1)
    rotate(ike1, "switch", new1)
    deadline = time.monotonic() + IKE_WAIT
    while (conn := current_conn(ike1, port1))[1] == version:
        assert time.monotonic() < deadline, describe(ike1)
        time.sleep(0.1)
    up = ike1.up(conn[0], timeout=20)
    assert "AUTHENTICATION_FAILED" in up.stdout, up.stdout + describe(ike2)
    assert guard_covers(lab1, lab2.underlay_ip) and guard_covers(lab2, lab1.underlay_ip)


def test_rotate_psk_refuses_a_bad_key_file_and_changes_nothing(pair, tmp_path):
    (lab1, ike1, port1), _ = pair
    short = write_key(tmp_path, "short", "too-short")
    done = ike1.ovsnet("ipsec", "rotate-psk", "--stage", "switch", "--psk-file", str(short))
    assert done.returncode == 2, done.stderr
    assert "too-short" not in done.stderr and "Traceback" not in done.stderr
    psk = lab1.vsctl("get", "Interface", port1, "options:psk").stdout
    assert psk.strip().strip('"') == OLD_PSK
    unknown = write_key(tmp_path, "new", NEW_PSK)
    done = ike1.ovsnet("ipsec", "rotate-psk", "--stage", "later", "--psk-file", str(unknown))
    assert done.returncode == 2 and "unknown rotation stage" in done.stderr, done.stderr
    done = ike1.ovsnet("ipsec", "rotate-psk", "--stage", "finish", "--psk-file", str(unknown))
    assert done.returncode == 2 and "do not use the new PSK yet" in done.stderr, done.stderr
