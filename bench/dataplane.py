"""Data-plane benchmark: TCP throughput and RTT between containers on two lab hosts.

Three paths, measured in one run: the hosts' underlay addresses (no tunnel), the overlay with
the MTU ovsnet set, and the overlay with the containers' links at 1500 (what a Docker host
without ovsnet's MTU handling would have). The lab's containers are busybox, so iperf3 and ping
run from the host's binaries inside the container's network namespace (`nsenter -n`).
"""

from __future__ import annotations

import json
import re
import statistics
import subprocess
import time
from collections.abc import Callable
from contextlib import contextmanager

from bench.host import BenchError, lab_name
from bench.stats import Measurement
from ovsnet.lab import Lab, LabContainer, LabHost
from ovsnet.lab import netns as lab_netns
from ovsnet.lab.proc import plumbing_env, stop_pids
from ovsnet.lab.proc import run as lab_run

IPERF_PORT = 5201
PING_COUNT = 50
PING_INTERVAL = "0.02"
WRONG_MTU = 1500
_RTT_RE = re.compile(r" time=([\d.]+) ms")


class Endpoint:
    """Somewhere to run iperf3 and ping: a host's or a container's network namespace."""

    def __init__(self, label: str, prefix: list[str], ip: str):
        self.label = label
        self.prefix = prefix
        self.ip = ip

    @classmethod
    def of_host(cls, host: LabHost) -> Endpoint:
        return cls(host.name, lab_netns.exec_argv(host.netns, []), host.underlay_ip)

    @classmethod
    def of_container(cls, container: LabContainer) -> Endpoint:
        return cls(container.name, ["nsenter", "-t", str(container.pid), "-n"], container.ip)

    def argv(self, *args: str) -> list[str]:
        return [*self.prefix, *args]

    def run(self, *args: str, timeout: float = 60, check: bool = True):
        return lab_run(self.argv(*args), check=check, timeout=timeout)


@contextmanager
def iperf_server(endpoint: Endpoint):
    """A one-off iperf3 server in the endpoint's namespace, stopped by PID on the way out."""
    proc = subprocess.Popen(
        endpoint.argv("iperf3", "-s", "-1", "-p", str(IPERF_PORT)),
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env=plumbing_env(),
    )  # fmt: skip
    try:
        _wait_listening(endpoint)
        yield proc
    finally:
        if proc.poll() is None:
            stop_pids({proc.pid: "iperf3"}, timeout=5)
        proc.wait(timeout=10)


def _wait_listening(endpoint: Endpoint, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = endpoint.run("ss", "-ltnH", check=False).stdout
        if f":{IPERF_PORT} " in out:
            return
        time.sleep(0.05)
    raise BenchError(f"iperf3 did not listen in {endpoint.label} within {timeout:.0f} s")


def tcp_throughput(client: Endpoint, server: Endpoint, seconds: int, m: Measurement) -> None:
    """One iperf3 run; the sample is what the receiver got, in Mbit/s (the first s omitted)."""
    with iperf_server(server):
        argv = ["iperf3", "-c", server.ip, "-p", str(IPERF_PORT), "-t", str(seconds), "-O", "1",
                "-J", "--connect-timeout", "3000"]  # fmt: skip
        done = client.run(*argv, timeout=seconds + 20, check=False)
    if done.returncode == -9:  # the lab's run() reports a timeout so
        m.failures.append(f"iperf3 got no result within {seconds + 20} s (stalled)")
        return
    try:
        result = json.loads(done.stdout)
    except json.JSONDecodeError:
        m.failures.append(f"iperf3 exited {done.returncode}: {done.stderr.strip()[-200:]}")
        return
    if "error" in result:
        m.failures.append(f"iperf3: {result['error']}")
        return
    received = result["end"]["sum_received"]
    m.samples.append(received["bits_per_second"] / 1e6)
    retransmits = result["end"].get("sum_sent", {}).get("retransmits")
    if retransmits is not None:
        m.notes.append(f"retransmits={retransmits}")


def ping_rtt(client: Endpoint, server: Endpoint, m: Measurement) -> None:
    """One sample: the median round trip of PING_COUNT echoes (robust to a scheduling hiccup)."""
    done = client.run("ping", "-c", str(PING_COUNT), "-i", PING_INTERVAL, "-W", "2", server.ip,
                      timeout=60, check=False)  # fmt: skip
    rtts = [float(t) for t in _RTT_RE.findall(done.stdout)]
    if not rtts:
        m.failures.append(f"ping exited {done.returncode}: {done.stdout.strip()[-120:]}")
        return
    m.samples.append(statistics.median(rtts))
    if len(rtts) < PING_COUNT:
        m.notes.append(f"{PING_COUNT - len(rtts)} of {PING_COUNT} echoes lost")


def wait_reachable(client: Endpoint, server: Endpoint, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if client.run("ping", "-c", "1", "-W", "1", server.ip, check=False).returncode == 0:
            return
    raise BenchError(f"{client.label} cannot reach {server.label} ({server.ip})")


def link_mtu(endpoint: Endpoint, device: str = "eth0") -> int:
    out = endpoint.run("ip", "-o", "link", "show", device).stdout
    return int(re.search(r" mtu (\d+)", out).group(1))


def set_container_mtu(container: LabContainer, mtu: int) -> None:
    """The container's eth0, its veth peer on the host and docker0, as dockerd --mtu would."""
    inside = Endpoint.of_container(container)
    out = inside.run("ip", "-o", "link", "show", "eth0").stdout
    peer_index = re.search(r"eth0@if(\d+)", out).group(1)
    host = container.host
    links = host.run(["ip", "-o", "link", "show"]).stdout
    peer = re.search(rf"^{peer_index}: ([^:@]+)", links, re.MULTILINE).group(1)
    inside.run("ip", "link", "set", "eth0", "mtu", str(mtu))
    host.run(["ip", "link", "set", peer, "mtu", str(mtu)])
    host.run(["ip", "link", "set", "docker0", "mtu", str(mtu)])


def _overlay_lab(log) -> tuple[Lab, LabContainer, LabContainer]:
    lab = Lab.up(hosts=2, docker=True, name=lab_name("dp"))
    try:
        h1, h2 = lab.hosts
        for host in (h1, h2):
            done = host.ovsnet("init", "--prefix", host.prefix, "--datapath", "netdev")
            if done.returncode != 0:
                raise BenchError(f"ovsnet init on {host.name}: {done.stderr.strip()}")
        for host, other in ((h1, h2), (h2, h1)):
            done = host.ovsnet("peer", "add", other.underlay_ip)
            if done.returncode != 0:
                raise BenchError(f"ovsnet peer add on {host.name}: {done.stderr.strip()}")
        log(f"data plane: lab {lab.name}, starting containers")
        return lab, h1.start_container(), h2.start_container()
    except BaseException:
        lab.down()
        raise


def run(
    seconds: int = 5, reps: int = 3, log: Callable[[str], None] = print, labs: list | None = None
) -> tuple[dict[str, Measurement], int | None]:
    results: dict[str, Measurement] = {}

    def measurement(key: str, unit: str) -> Measurement:
        return results.setdefault(key, Measurement(key=key, unit=unit))

    lab, c1, c2 = _overlay_lab(log)
    if labs is not None:
        labs.append(lab.name)
    with lab:
        h1, h2 = lab.hosts
        under = (Endpoint.of_host(h1), Endpoint.of_host(h2))
        over = (Endpoint.of_container(c1), Endpoint.of_container(c2))
        wait_reachable(*under)
        wait_reachable(*over)
        overlay_mtu = link_mtu(over[0])
        for rep in range(reps):  # interleaved, so load drift hits both paths alike
            for name, (a, b) in (("underlay", under), ("overlay", over)):
                tcp_throughput(a, b, seconds, measurement(f"data/{name}/tcp", "Mbit/s"))
                ping_rtt(a, b, measurement(f"data/{name}/rtt", "ms"))
                log(f"  rep {rep + 1} {name}: {_last(results, name)}")
        for container in (c1, c2):
            set_container_mtu(container, WRONG_MTU)
        try:
            for rep in range(reps):
                tcp_throughput(*over, seconds, measurement("data/wrong-mtu/tcp", "Mbit/s"))
                ping_rtt(*over, measurement("data/wrong-mtu/rtt", "ms"))
                log(f"  rep {rep + 1} wrong MTU: {_last(results, 'wrong-mtu')}")
        finally:
            for container in (c1, c2):
                set_container_mtu(container, overlay_mtu)
    return results, overlay_mtu


def _last(results: dict[str, Measurement], name: str) -> str:
    tcp, rtt = results.get(f"data/{name}/tcp"), results.get(f"data/{name}/rtt")
    parts = []
    for m, unit in ((tcp, "Mbit/s"), (rtt, "ms")):
        if m and m.samples:
            parts.append(f"{m.samples[-1]:.2f} {unit}")
        elif m and m.failures:
            parts.append(m.failures[-1])
    return ", ".join(parts)
