"""The IPsec healer and `ovsnet ipsec repair PEER` with real strongSwan + ovs-monitor-ipsec.

Three netns lab hosts (tests/lab/ipsec_harness.py): h1 has PSK tunnels to h2 and h3. This
kernel has no ESP, so no CHILD_SA can ever be installed: "established" here can only mean the
IKE SA, hence `ipsec heal --ike-only` (test names say `ike_only`). One of h1's peers is broken
on purpose (charon's connection to h3 taken down on h1) and the healer must repair that peer
only: h2's IKE SA keeps its unique id, foreign xfrm policies added by hand stay, the repair is
recorded where `ovsnet status` shows it, and nothing happens while the plaintext guard is gone.
"""

from __future__ import annotations

import json
import re
import sys
import time

import pytest

from tests.lab.ipsec_harness import describe, ike_host
from tests.lab.test_ike_netns import add_ipsec_tunnel, set_psk

pytestmark = [pytest.mark.lab, pytest.mark.slow]

PSK = "Hq4Nc8Vx1Lm5Rt9Bz3Kd7Wp2Ys6Gf0Ja"


@pytest.fixture(scope="module")
def mesh(lab_factory_module, tmp_path_factory):
    """h1 with IPsec tunnels to h2 and h3, both IKE SAs up; torn down after the module."""
    lab = lab_factory_module(hosts=3, docker=False)
    tmp = tmp_path_factory.mktemp("heal")
    for host in lab.hosts:
        host.vsctl(
            "--may-exist", "add-br", "br0", "--", "set", "Bridge", "br0", "datapath_type=netdev"
        )
    h1, h2, h3 = lab.hosts
    with ike_host(h1) as i1, ike_host(h2) as i2, ike_host(h3) as i3:
        for ike in (i1, i2, i3):
            set_psk(ike, tmp, PSK)
        ports = {h2.underlay_ip: add_ipsec_tunnel(i1, h2), h3.underlay_ip: add_ipsec_tunnel(i1, h3)}
        conns = {
            peer: i1.wait_for_connection(port, "pre-shared key") for peer, port in ports.items()
        }
        for ike, peer in ((i2, h1), (i3, h1)):
            ike.wait_for_connection(add_ipsec_tunnel(ike, peer), "pre-shared key")
        for conn in conns.values():
            up = i1.up(conn)
            assert "established between" in up.stdout, up.stdout + describe(i1)
        yield i1, conns, (h2.underlay_ip, h3.underlay_ip), h1.underlay_ip


def sa_ids(ike, conn: str) -> set[str]:
    """Unique ids of conn's ESTABLISHED IKE SAs (`conn[3]: ESTABLISHED ...`)."""
    return {
        match[1]
        for line in ike.ike_sas()
        if (match := re.match(rf"{re.escape(conn)}\[(\d+)\]: ESTABLISHED", line))
    }


def wait_established(ike, conn: str, other_than: set[str], timeout: float = 30) -> set[str]:
    deadline = time.monotonic() + timeout
    while True:
        ids = sa_ids(ike, conn)
        if ids - other_than:
            return ids
        if time.monotonic() > deadline:
            raise AssertionError(f"{conn} not re-established\n{describe(ike)}")
        time.sleep(0.3)


def break_peer(ike, conn: str) -> None:
    done = ike.ipsec("down", conn)
    assert done.returncode == 0, done.stdout + done.stderr
    assert not sa_ids(ike, conn), describe(ike)


def ovsnet(ike, *args: str):
    """`ovsnet ARGS` in h1's namespaces, seeing its ovs-monitor-ipsec."""
    rundir = f"OVS_RUNDIR={ike.workdir / 'lab'}"
    argv = ["env", rundir, sys.executable, "-m", "ovsnet", "--db", ike.db, *args]
    return ike.run(argv, timeout=120)


def ovsnet_json(ike, *args: str) -> dict:
    done = ovsnet(ike, "--json", *args)
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)


def heal(ike) -> dict:
    return ovsnet_json(ike, "ipsec", "heal", "--ike-only", "--grace", "0")


FOREIGN = (
    ("proto", "tcp"),  # other traffic to the same peer
    ("proto", "udp", "dport", "5000"),
)


def add_foreign_policies(ike, local: str, peer: str) -> None:
    for selector in FOREIGN:
        done = ike.run(
            [
                "ip",
                "xfrm",
                "policy",
                "add",
                "src",
                f"{local}/32",
                "dst",
                f"{peer}/32",
                *selector,
                "dir",
                "out",
                "tmpl",
                "proto",
                "esp",
                "mode",
                "transport",
            ]  # fmt: skip
        )
        assert done.returncode == 0, done.stderr


def foreign_policies(ike, peer: str) -> list[str]:
    out = ike.run(["ip", "xfrm", "policy"]).stdout
    return [
        line
        for line in out.splitlines()
        if f"dst {peer}/32" in line and ("proto tcp" in line or "dport 5000" in line)
    ]


def test_healer_repairs_only_the_broken_peer_and_status_shows_it_ike_only(mesh):
    ike, conns, (h2, h3), h1 = mesh
    add_foreign_policies(ike, h1, h3)
    kept = sa_ids(ike, conns[h2])
    broken = sa_ids(ike, conns[h3])
    assert kept and broken
    assert heal(ike)["repaired"] == []  # both IKE SAs up: nothing to do

    break_peer(ike, conns[h3])
    tick = heal(ike)
    assert [(r["peer"], r["error"]) for r in tick["repaired"]] == [(h3, None)], tick
    assert "not established" in tick["repaired"][0]["reason"]
    wait_established(ike, conns[h3], other_than=broken)
    assert sa_ids(ike, conns[h2]) == kept, describe(ike)  # the other peer untouched
    assert len(foreign_policies(ike, h3)) == len(FOREIGN), ike.run(["ip", "xfrm", "policy"]).stdout
    policies = ike.run(["ip", "xfrm", "policy"]).stdout
    assert f"dst {h3}/32 proto gre" in policies  # charon routed the connection again

    status = ovsnet_json(ike, "status")
    peers = {p["remote_ip"]: p for p in status["peers"]}
    assert peers[h3]["ipsec_repairs"]["count"] == 1, peers[h3]
    assert "not established" in peers[h3]["ipsec_repairs"]["why"]
    assert "ipsec_repairs" not in peers[h2]
    assert PSK not in json.dumps(status)
    # The healer sees the peer established again: its backoff starts afresh.
    tick = heal(ike)
    assert tick["repaired"] == [] and tick["peers"][h3]["streak"] == 0, tick


def test_healer_does_nothing_while_the_plaintext_guard_is_missing_ike_only(mesh):
    ike, conns, (h2, h3), h1 = mesh
    before = ovsnet_json(ike, "status")
    count = {p["remote_ip"]: p.get("ipsec_repairs", {}).get("count", 0) for p in before["peers"]}
    ike.run(["nft", "delete", "table", "inet", "ovsnet"], check=True)
    try:
        break_peer(ike, conns[h3])
        tick = heal(ike)
        assert tick["repaired"] == [] and "guard" in tick["held_back"], tick
        time.sleep(1)  # an asynchronous initiation would show by now
        assert not sa_ids(ike, conns[h3]), describe(ike)
        refused = ike.ovsnet("ipsec", "repair", h3)
        assert refused.returncode == 3 and "guard is not in place" in refused.stderr
    finally:
        restored = ike.ovsnet("ipsec", "plaintext", "restore")
        assert restored.returncode == 0, restored.stderr
    after = ovsnet_json(ike, "status")
    assert {
        p["remote_ip"]: p.get("ipsec_repairs", {}).get("count", 0) for p in after["peers"]
    } == count


def test_manual_repair_of_one_peer_leaves_other_peers_and_foreign_policies_ike_only(mesh):
    ike, conns, (h2, h3), h1 = mesh
    if not foreign_policies(ike, h3):
        add_foreign_policies(ike, h1, h3)
    add_foreign_policies(ike, h1, h2)
    if not sa_ids(ike, conns[h3]):
        ike.up(conns[h3])
    kept, broken = sa_ids(ike, conns[h2]), sa_ids(ike, conns[h3])
    assert kept and broken, describe(ike)
    done = ovsnet_json(ike, "ipsec", "repair", h3)
    assert done["peers"] == [h3] and done["changed"], done
    wait_established(ike, conns[h3], other_than=broken)
    assert sa_ids(ike, conns[h2]) == kept, describe(ike)
    assert len(foreign_policies(ike, h3)) == len(FOREIGN)
    assert len(foreign_policies(ike, h2)) == len(FOREIGN)
    not_ours = ovsnet(ike, "ipsec", "repair", "198.51.100.99")
    assert not_ours.returncode == 2 and "not an IPsec peer" in not_ours.stderr
    # Without names: every peer not established, which here (IKE up, no ESP) is both.
    dry = ovsnet_json(ike, "ipsec", "repair", "--dry-run")
    assert dry["peers"] == [h2, h3] and not dry["changed"], dry


def test_heal_watch_logs_one_line_per_repair_and_stops_on_sigterm_ike_only(mesh):
    """`ovsnet ipsec heal --watch`, as the rendered heal-unit runs it."""
    import signal
    import subprocess

    ike, conns, (h2, h3), h1 = mesh
    if not sa_ids(ike, conns[h3]):
        ike.up(conns[h3])
    heal(ike)  # the peer seen established: no backoff left from the tests before
    kept, broken = sa_ids(ike, conns[h2]), sa_ids(ike, conns[h3])
    break_peer(ike, conns[h3])
    argv = ["nsenter", f"--target={ike.monitor.pid}", "--mount", "--net", "env",
            f"OVS_RUNDIR={ike.workdir / 'lab'}", "OVSNET_IPSEC_GRACE=0", sys.executable, "-m",
            "ovsnet", "--db", ike.db, "ipsec", "heal", "--watch", "--ike-only"]  # fmt: skip
    watcher = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_established(ike, conns[h3], other_than=broken)
    finally:
        watcher.send_signal(signal.SIGTERM)
        out, err = watcher.communicate(timeout=60)
    assert watcher.returncode == 0, err
    repairs = [line for line in err.splitlines() if "IPsec repair of peer" in line]
    assert len(repairs) == 1, err
    assert f"peer {h3} (" in repairs[0] and "not established" in repairs[0]
    assert sa_ids(ike, conns[h2]) == kept
    assert PSK not in out + err
