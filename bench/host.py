"""The benchmark's hosts, built by the netns lab (ovsnet.lab): nothing here starts OVS itself.

The control plane needs one host with its own ovsdb-server + ovs-vswitchd (userspace datapath)
and `ovsnet init` done. Docker is not part of those figures, so that lab runs without dockerd
and `docker0` is a plain Linux bridge holding the address `dockerd --bip` would give it (all
`ovsnet init` reads). The data plane uses a full lab with Docker (bench/dataplane.py).
"""

from __future__ import annotations

import json
import os
import resource
import secrets
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ovsnet.lab import Lab, LabHost
from ovsnet.lab import netns as lab_netns
from ovsnet.lab.proc import run as lab_run


class BenchError(RuntimeError):
    pass


def lab_name(kind: str) -> str:
    """Random, recognisable names: other labs run on this machine at the same time."""
    return f"bench-{kind}-{secrets.token_hex(3)}"


def ovsnet_argv() -> list[str]:
    """The `ovsnet` console script of this interpreter's environment (what users run)."""
    script = Path(sys.executable).parent / "ovsnet"
    return [str(script)] if script.exists() else [sys.executable, "-m", "ovsnet"]


def run(argv: list, *, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
    done = lab_run([str(a) for a in argv], check=False, timeout=timeout)
    if check and done.returncode != 0:
        tail = " | ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
        raise BenchError(f"`{' '.join(map(str, argv[:6]))} ...` exited {done.returncode}: {tail}")
    return done


class BenchHost:
    """A lab host seen from the benchmark: run ovsnet in it, read its tunnel ports."""

    def __init__(self, host: LabHost, bridge: str = "br0"):
        self.lab_host = host
        self.bridge = bridge

    netns = property(lambda self: self.lab_host.netns)
    db = property(lambda self: self.lab_host.db)
    rundir = property(lambda self: self.lab_host.rundir)

    def daemon_pids(self) -> list[int]:
        return [pid for pid in self.lab_host.pids().values() if pid]

    def cpu_clock(self) -> tuple[float, float]:
        """(CPU s of this process's waited-for children, CPU s of this host's OVS daemons)."""
        return children_cpu(), sum(process_cpu(pid) for pid in self.daemon_pids())

    def in_netns(self, argv: list) -> list:
        return lab_netns.exec_argv(self.netns, [str(a) for a in argv])

    def ovsnet(self, *args: str, check: bool = True, timeout: float = 120):
        return run(self.in_netns([*ovsnet_argv(), "--db", self.db, *args]), check=check,
                   timeout=timeout)  # fmt: skip

    def vsctl(self, *args: str, timeout: float = 300):
        return self.lab_host.vsctl(*args, timeout=timeout)

    def docker_bridge_stand_in(self) -> None:
        """What dockerd --bip=<gateway>/8 leaves behind: docker0 up with the gateway address."""
        lab_netns.add_bridge(self.netns, "docker0")
        lab_netns.add_address(
            self.netns, "docker0", f"{self.lab_host.gateway}/{self.lab_host.supernet.split('/')[1]}"
        )

    def init(self) -> None:
        self.ovsnet("init", "--prefix", self.lab_host.prefix, "--datapath", "netdev")

    def interfaces(self, iface_type: str = "gre") -> dict[str, tuple[int | None, str | None]]:
        """name -> (ofport, error) of every interface of this type."""
        out = self.vsctl(
            "--format=json", "--columns=name,ofport,error", "find", "Interface",
            f"type={iface_type}",
        ).stdout  # fmt: skip
        return {name: (_scalar(ofport), _scalar(error)) for name, ofport, error in
                json.loads(out)["data"]}  # fmt: skip

    def clear_tunnels(self) -> None:
        """Remove every tunnel port in one transaction (bench housekeeping, never timed)."""
        args: list[str] = []
        for name in self.interfaces():
            args += ["--", "--if-exists", "del-port", self.bridge, name]
        if args:
            self.vsctl(*args)


@contextmanager
def control_host() -> Iterator[BenchHost]:
    """One lab host without Docker, `ovsnet init` done; torn down (by PID) on the way out."""
    with Lab.up(hosts=1, docker=False, name=lab_name("cp")) as lab:
        host = BenchHost(lab.hosts[0])
        host.docker_bridge_stand_in()
        host.init()
        yield host


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


_TICK = os.sysconf("SC_CLK_TCK")


def process_cpu(pid: int) -> float:
    """utime + stime of a running process, from /proc (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK


def _scalar(value):
    """ovs-vsctl JSON gives an empty optional column as ["set", []]."""
    if isinstance(value, list):
        return None
    return value
