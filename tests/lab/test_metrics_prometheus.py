"""A real Prometheus scrapes `ovsnet metrics` on every host of a 3-host lab mesh.

Each host serves on its underlay address inside its own namespace; Prometheus runs in h1's
namespace (its own config and data dir, stopped by PID) and reaches h2 and h3 over the lab's
underlay. The tests ask Prometheus's HTTP API, in order on one lab: every peer up, the guard's
series on the host with an IPsec peer (present, drops counted, then lost), a peer going down.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

import pytest

from ovsnet.lab import netns
from ovsnet.lab.layout import PHY_BRIDGE

pytestmark = [pytest.mark.lab, pytest.mark.slow]

PORT = 9475
PROMETHEUS = "127.0.0.1:9490"  # inside h1's namespace
PSK = "Pm4Rt8Wq2Zx6Nc1Vb5Lk9Hj3Gf7Ds0Ay"
GUARDED = "198.51.100.99"  # an IPsec peer on the underlay that no host answers for
# Plain GRE toward the guarded peer: the guard drops it in OUTPUT (sendto gets EPERM).
SEND_PLAIN_GRE = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, 47)
for _ in range(int(sys.argv[2])):
    try:
        s.sendto(b"\\x00\\x00\\x65\\x58ovsnet-metrics-probe", (sys.argv[1], 0))
    except PermissionError:
        pass
"""


@contextlib.contextmanager
def process(host, argv: list[str], log: Path):
    """A long-running process in the host's namespace, stopped by its PID."""
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            netns.exec_argv(host.netns, argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **host.env},
            start_new_session=True,
        )
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)


def prometheus_config(hosts) -> str:
    targets = ", ".join(f'"{h.underlay_ip}:{PORT}"' for h in hosts)
    return (
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
        "scrape_configs:\n  - job_name: ovsnet\n"
        f"    static_configs:\n      - targets: [{targets}]\n"
    )


@pytest.fixture(scope="module")
def mesh(lab_factory_module, tmp_path_factory):
    if shutil.which("prometheus") is None:
        pytest.fail("prometheus is not installed: run `bash scripts/setup.sh`")
    lab = lab_factory_module(hosts=3, docker=False)
    work = tmp_path_factory.mktemp("prometheus")
    psk = work / "psk"
    psk.write_text(PSK)
    psk.chmod(0o600)
    for host in lab.hosts:
        # No dockerd: a bridge with Docker's address stands in for docker0.
        mask = host.supernet.split("/")[1]
        host.run(["ip", "link", "add", "docker0", "type", "bridge"])
        host.run(["ip", "address", "add", f"{host.gateway}/{mask}", "dev", "docker0"])
        host.run(["ip", "link", "set", "docker0", "up"])
        # TCP from the host's own stack through the userspace datapath needs this (docs/facts.md,
        # "Userspace datapath").
        host.run(["ethtool", "-K", PHY_BRIDGE, "tx", "off"])
        host.ovsnet("init", "--prefix", host.prefix, "--datapath", "netdev",
                    "--no-docker-check", check=True)  # fmt: skip
    for host in lab.hosts:
        others = [h.underlay_ip for h in lab.hosts if h is not host]
        host.ovsnet("peer", "add", *others, check=True)
    h1 = lab.hosts[0]
    config = work / "prometheus.yml"
    config.write_text(prometheus_config(lab.hosts))
    with contextlib.ExitStack() as stack:
        for host in lab.hosts:
            argv = [sys.executable, "-m", "ovsnet", "--db", host.db, "metrics", "--listen",
                    f"{host.underlay_ip}:{PORT}"]  # fmt: skip
            stack.enter_context(process(host, argv, work / f"metrics-{host.name}.log"))
        stack.enter_context(
            process(
                h1,
                [
                    "prometheus",
                    f"--config.file={config}",
                    f"--storage.tsdb.path={work / 'data'}",
                    f"--web.listen-address={PROMETHEUS}",
                    "--log.level=warn",
                ],
                work / "prometheus.log",
            )  # fmt: skip
        )
        yield lab, psk
    lab.hosts[2].run(["nft", "delete", "table", "inet", "ovsnet"], check=False)


def query(lab, expr: str) -> dict[tuple[str, str], float]:
    """Prometheus's instant query: {(host name, remote_ip or ""): value}."""
    url = f"http://{PROMETHEUS}/api/v1/query?query={urllib.parse.quote(expr)}"
    done = lab.hosts[0].run(["curl", "-sf", url], check=False)
    if done.returncode != 0:
        return {}
    by_ip = {f"{h.underlay_ip}:{PORT}": h.name for h in lab.hosts}
    found = {}
    for series in json.loads(done.stdout)["data"]["result"]:
        labels = series["metric"]
        found[(by_ip[labels["instance"]], labels.get("remote_ip", ""))] = float(series["value"][1])
    return found


def wait_for(lab, expr: str, expected: dict, timeout: float = 40.0) -> None:
    deadline = time.monotonic() + timeout
    seen: dict = {}
    while time.monotonic() < deadline:
        seen = query(lab, expr)
        if seen == expected:
            return
        time.sleep(0.5)
    raise AssertionError(f"{expr}: expected {expected}, Prometheus has {seen}")


def mesh_up(lab) -> dict:
    return {
        (h.name, peer.underlay_ip): 1.0 for h in lab.hosts for peer in lab.hosts if peer is not h
    }


def health(lab, host) -> str:
    """/healthz of a host as seen from h1: body then status code."""
    url = f"http://{host.underlay_ip}:{PORT}/healthz"
    return lab.hosts[0].run(["curl", "-s", "-w", "%{http_code}", url]).stdout


def test_prometheus_scrapes_every_host_and_sees_every_peer_up(mesh):
    lab, _ = mesh
    wait_for(lab, "up", {(h.name, ""): 1.0 for h in lab.hosts})
    wait_for(lab, "ovsnet_peer_up", mesh_up(lab))
    wait_for(lab, "ovsnet_healthy", {(h.name, ""): 1.0 for h in lab.hosts})
    wait_for(lab, "ovsnet_docker_bridge_attached", {(h.name, ""): 1.0 for h in lab.hosts})
    wait_for(lab, 'ovsnet_build_info{version!=""}', {(h.name, ""): 1.0 for h in lab.hosts})
    assert query(lab, "ovsnet_plaintext_guard_present") == {}, "a plaintext mesh has no guard"
    assert all(health(lab, host) == "ok\n200" for host in lab.hosts)


def test_the_exposition_passes_promtool(mesh):
    lab, _ = mesh
    for host in lab.hosts:
        body = lab.hosts[0].run(["curl", "-sf", f"http://{host.underlay_ip}:{PORT}/metrics"])
        checked = subprocess.run(
            ["promtool", "check", "metrics"], input=body.stdout, capture_output=True, text=True
        )
        assert checked.returncode == 0, checked.stdout + checked.stderr
        assert "ovsnet_peer_rx_packets_total{" in body.stdout


def test_a_peer_going_down_shows_on_both_other_hosts(mesh):
    lab, _ = mesh
    h1, h2, h3 = lab.hosts
    # h3 drops its tunnels: h1's and h2's BFD sessions to it go down.
    h3.ovsnet("peer", "remove", h1.underlay_ip, h2.underlay_ip, check=True)
    expected = {
        (h1.name, h2.underlay_ip): 1.0,
        (h1.name, h3.underlay_ip): 0.0,
        (h2.name, h1.underlay_ip): 1.0,
        (h2.name, h3.underlay_ip): 0.0,
    }
    wait_for(lab, "ovsnet_peer_up", expected)
    # Health judges the host itself (as `status --check`): a dead peer does not make h1 or h2
    # unhealthy, so one dead host does not turn the whole fleet's health red.
    wait_for(lab, "ovsnet_healthy", {(h1.name, ""): 1.0, (h2.name, ""): 1.0, (h3.name, ""): 1.0})
    assert health(lab, h1) == "ok\n200"


def test_guard_series_present_counting_drops_then_lost(mesh):
    """On h3, now without plaintext peers: one IPsec peer, which never answers here."""
    lab, psk = mesh
    h3 = lab.hosts[2]
    h3.ovsnet("peer", "add", GUARDED, "--ipsec", "--psk-file", str(psk), check=True)
    wait_for(lab, "ovsnet_plaintext_guard_present", {(h3.name, ""): 1.0})
    wait_for(lab, "ovsnet_peer_ike_established", {(h3.name, GUARDED): 0.0})
    h3.run([sys.executable, "-c", SEND_PLAIN_GRE, GUARDED, "4"])
    wait_for(lab, "ovsnet_plaintext_guard_dropped_packets_total", {(h3.name, ""): 4.0})
    h3.run(["nft", "delete", "table", "inet", "ovsnet"])  # as after a reboot or a flush
    wait_for(lab, "ovsnet_plaintext_guard_present", {(h3.name, ""): 0.0})
    assert health(lab, h3).endswith("503") and "plaintext guard is missing" in health(lab, h3)
