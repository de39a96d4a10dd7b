"""Things tests and benches do inside the lab's VMs: Docker, containers, traffic.

All of it goes through `Vm.ssh`; waits poll a condition until a deadline (no fixed sleeps).
"""

from __future__ import annotations

import itertools
import json
import re
import shlex
import subprocess
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ovsnet.vmlab import config
from ovsnet.vmlab.wait import wait_until

if TYPE_CHECKING:
    from ovsnet.vmlab.vm import Vm


def start_docker(vm: Vm, daemon_options: dict | None = None) -> None:
    """(Re)start dockerd, with `daemon_options` as /etc/docker/daemon.json when given."""
    if daemon_options is not None:
        text = json.dumps(daemon_options, indent=2, sort_keys=True) + "\n"
        vm.ssh("mkdir -p /etc/docker && cat > /etc/docker/daemon.json", input=text, check=True)
    vm.ssh("systemctl restart docker", check=True, timeout=240)
    wait_until(lambda: vm.ssh("docker info --format '{{.ID}}'").returncode == 0, 120,
               f"dockerd on {vm.name}")  # fmt: skip


def import_busybox(vm: Vm) -> str:
    """A container image made from the VM's busybox (the VMs have no registry access)."""
    image = config.BUSYBOX_DOCKER_IMAGE
    vm.ssh(
        f"docker image inspect {image} >/dev/null 2>&1 || "
        f"docker import {config.VM_BUSYBOX_TAR} {image} >/dev/null",
        check=True,
        timeout=120,
    )
    return image


def run_container(vm: Vm, name: str, *docker_args: str) -> str:
    """Start a long-running busybox container (replacing one of that name); its IP address."""
    image = import_busybox(vm)
    args = " ".join(shlex.quote(a) for a in docker_args)
    vm.ssh(f"docker rm -f {name} >/dev/null 2>&1; "
           f"docker run -d --name {name} {args} {image} sleep 86400 >/dev/null",
           check=True, timeout=120)  # fmt: skip
    return container_ip(vm, name)


def container_ip(vm: Vm, name: str) -> str:
    proc = vm.ssh(f"docker inspect -f '{{{{.NetworkSettings.IPAddress}}}}' {name}", check=True)
    return proc.stdout.strip()


@dataclass(frozen=True)
class PingResult:
    transmitted: int
    received: int
    output: str

    @property
    def loss(self) -> float:
        return 1.0 if not self.transmitted else 1 - self.received / self.transmitted


_PING_RE = re.compile(r"(\d+) packets transmitted, (\d+) (?:packets )?received")


def parse_ping(output: str) -> PingResult:
    match = _PING_RE.search(output)
    if not match:
        return PingResult(0, 0, output)
    return PingResult(int(match.group(1)), int(match.group(2)), output)


def container_ping(vm: Vm, container: str, target: str, count: int = 3) -> PingResult:
    """`count` echoes from a container; a ping that does not end in time received nothing."""
    timeout = 30 + 3 * count
    try:
        proc = vm.ssh(
            f"docker exec {container} ping -c {count} -i 0.2 -W 2 {target}", timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return PingResult(count, 0, f"no answer from {vm.name} within {timeout} s")
    return parse_ping(proc.stdout + proc.stderr)


def failures_of_every_pair(vms: Sequence[Vm], check: Callable[[Vm, Vm], str | None]) -> list[str]:
    """`check(src, dst)` for every ordered pair of VMs; what the failed ones said.

    The sources at once, each source's pairs one after the other: one pair after the other, a
    mesh's six ping checks took 1-2 minutes; all six at once put two `docker exec`s on each
    emulated CPU, and on a slow machine a one-echo ping then took over 30 s."""

    def from_source(src: Vm) -> list[str]:
        return [failed for dst in vms if dst is not src if (failed := check(src, dst))]

    with ThreadPoolExecutor(max_workers=max(1, len(vms))) as pool:
        return list(itertools.chain.from_iterable(pool.map(from_source, vms)))


def parse_keyed_esp_pairs(listing: str, mode: str | None = "transport") -> set[tuple[str, str]]:
    """(src, dst) of every keyed ESP SA of `mode` (None: any) in an `ip xfrm state` listing.

    Keyed: with an algorithm (larval states, SPI allocations and acquires, carry none). The
    default leaves tunnel-mode SAs out: in these labs one is ovs-monitor-ipsec's catch-all shunt
    connection, which a responder that had not loaded the tunnel's own connection yet may have
    matched; it is not the tunnel's."""
    found: set[tuple[str, str]] = set()
    head, sa_mode = None, None
    for line in listing.splitlines():
        words = line.split()
        if line.startswith("src ") and len(words) >= 4:
            head, sa_mode = (words[1], words[3]), None
        elif "mode" in words[:-1]:
            sa_mode = words[words.index("mode") + 1]
        elif head and words and words[0] in ("aead", "enc") and mode in (None, sa_mode):
            found.add(head)
    return found


def keyed_esp_pairs(vm: Vm, mode: str | None = "transport") -> set[tuple[str, str]]:
    """parse_keyed_esp_pairs of the VM's kernel, from one listing (one ssh)."""
    return parse_keyed_esp_pairs(vm.ssh("ip xfrm state list proto esp").stdout, mode)


def sysctl(vm: Vm, key: str) -> str:
    return vm.ssh(f"sysctl -n {key}", check=True).stdout.strip()


def ping_rtt_ms(vm: Vm, target: str, count: int = 20) -> float:
    """Average round trip from the VM itself to target, in ms (emulated: compare as ratios)."""
    proc = vm.ssh(f"ping -q -c {count} -i 0.2 -W 2 {target}", check=True, timeout=30 + count)
    match = re.search(r"= [\d.]+/([\d.]+)/", proc.stdout)
    if match is None:
        raise AssertionError(f"no round-trip summary from ping on {vm.name}:\n{proc.stdout}")
    return round(float(match.group(1)), 2)


def iperf3_mbit_s(client: Vm, server: Vm, server_ip: str, seconds: int = 5) -> float:
    """TCP throughput client -> server_ip (an address of `server`), Mbit/s as received.

    Under qemu's software emulation these are emulated figures: compare them as ratios only.
    """
    pidfile = "/run/vmlab-iperf3.pid"
    server.ssh(f"[ -f {pidfile} ] && kill $(cat {pidfile}) 2>/dev/null; "
               f"iperf3 -s -D -1 --pidfile {pidfile}", check=True)  # fmt: skip
    wait_until(lambda: server.ssh("ss -Hltn 'sport = :5201' | grep -q 5201").returncode == 0,
               30, f"iperf3 server on {server.name}")  # fmt: skip
    proc = client.ssh(f"iperf3 -J -t {seconds} -c {server_ip}", check=True,
                      timeout=60 + 3 * seconds)  # fmt: skip
    result = json.loads(proc.stdout)
    return round(result["end"]["sum_received"]["bits_per_second"] / 1e6, 1)
