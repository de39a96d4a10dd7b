"""One emulated host of the lab: a network namespace with its own OVS and, optionally, dockerd.

`LabHost` runs commands inside the host (`run`, `ovsnet`, `vsctl`, `appctl`, `docker`), starts
its containers (`container.LabContainer`) and stops and starts its dockerd. Building and
tearing down the namespaces and daemons is the lab's (`lab.Lab`).

Place: docs/architecture.md, "Packages and what they own": the netns lab (`ovsnet.lab`).
"""

from __future__ import annotations

import re
import subprocess
import sys
import threading
from collections.abc import Sequence
from typing import Protocol

from ovsnet.errors import InvalidInput
from ovsnet.lab import dockerd, image, netns, ovs
from ovsnet.lab.container import LabContainer
from ovsnet.lab.layout import UNDERLAY_MTU, HostLayout
from ovsnet.lab.proc import LabError, is_alive, run
from ovsnet.lab.state import LabState

_LOOKUPS_RE = re.compile(r"lookups:\s*hit:(\d+)\s+missed:(\d+)\s+lost:(\d+)")


class HostsLab(Protocol):
    """What a host needs of its lab (`ovsnet.lab.lab.Lab`): its name, whether it runs Docker,
    its state (dockerd's PIDs and arguments), and where to record a new dockerd."""

    @property
    def name(self) -> str: ...

    @property
    def has_docker(self) -> bool: ...

    @property
    def state(self) -> LabState: ...

    def record_dockerd(self, host: str, pid: int) -> None: ...


class LabHost:
    """One emulated host: a network namespace with its own OVS and (optionally) dockerd."""

    underlay_mtu = UNDERLAY_MTU

    def __init__(self, lab: HostsLab, layout: HostLayout):
        self.lab = lab
        self.layout = layout
        self._containers: list[LabContainer] = []
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<LabHost {self.name} {self.netns} {self.underlay_ip} {self.prefix}>"

    # -- facts --------------------------------------------------------------------------------
    name = property(lambda self: self.layout.name)
    index = property(lambda self: self.layout.index)
    netns = property(lambda self: self.layout.netns)
    underlay_ip = property(lambda self: self.layout.underlay_ip)
    underlay_cidr = property(lambda self: str(self.layout.underlay))
    prefix = property(lambda self: self.layout.prefix)
    supernet = property(lambda self: self.layout.supernet)
    subnet = property(lambda self: str(self.layout.addressing.subnet))
    gateway = property(lambda self: str(self.layout.addressing.gateway))
    overlay_mtu = property(lambda self: self.layout.overlay_mtu)
    db = property(lambda self: self.layout.db)
    docker_host = property(lambda self: self.layout.docker_host)
    rundir = property(lambda self: self.layout.rundir)
    has_docker = property(lambda self: self.lab.has_docker)

    @property
    def env(self) -> dict[str, str]:
        """What a shell on this host sees: its own OVSDB and Docker engine."""
        env = {"OVSNET_DB": self.db}
        if self.has_docker:
            env |= {"DOCKER_HOST": self.docker_host, "OVSNET_DOCKER_HOST": self.docker_host}
        return env

    # -- commands -----------------------------------------------------------------------------
    def run(
        self,
        argv: Sequence[str],
        check: bool = True,
        timeout: float = 60,
        input: str | None = None,
    ) -> subprocess.CompletedProcess:
        """Run a command inside the host's namespace (text mode, output captured)."""
        return run(
            netns.exec_argv(self.netns, [str(a) for a in argv]),
            check=check,
            timeout=timeout,
            input=input,
            env=self.env,
        )

    def ovsnet(
        self, *args: str, check: bool = False, timeout: float = 120
    ) -> subprocess.CompletedProcess:
        """`python -m ovsnet --db <this host's db> ARGS` inside the host's namespace."""
        return self.run(
            [sys.executable, "-m", "ovsnet", "--db", self.db, *args], check=check, timeout=timeout
        )

    def vsctl(
        self, *args: str, check: bool = True, timeout: float = 30
    ) -> subprocess.CompletedProcess:
        return run(ovs.vsctl_argv(self.layout, *args), check=check, timeout=timeout)

    def appctl(
        self, *args: str, check: bool = True, timeout: float = 30
    ) -> subprocess.CompletedProcess:
        return run(ovs.appctl_argv(self.layout, *args), check=check, timeout=timeout)

    def docker(
        self, *args: str, check: bool = True, timeout: float = 60, input: str | None = None
    ) -> subprocess.CompletedProcess:
        self._need_docker()
        return run(
            dockerd.docker_argv(self.layout, *args), check=check, timeout=timeout, input=input
        )

    def datapath_lookups(self) -> int:
        """Total hit + missed + lost lookups of the userspace datapath (a storm makes it soar)."""
        out = self.appctl("dpctl/show").stdout
        counts = _LOOKUPS_RE.findall(out)
        if not counts:
            raise LabError(f"no datapath lookup counters on {self.name}: {out.strip()!r}")
        return sum(int(n) for triple in counts for n in triple)

    def pids(self) -> dict[str, int | None]:
        found = dict(ovs.pids(self.layout))
        if self.has_docker:
            found["dockerd"] = self.dockerd_pid
        return {name: pid if pid and is_alive(pid) else None for name, pid in found.items()}

    # -- containers ---------------------------------------------------------------------------
    def start_container(self, name: str | None = None) -> LabContainer:
        """Run a busybox container (restart policy `always`), offload off, address known."""
        with self._lock:  # picking a free name and taking it is one step
            name = name or self._next_container_name()
            self.docker(
                "run",
                "-d",
                "--name",
                name,
                "--hostname",
                name,
                "--restart",
                "always",
                "--init",
                image.IMAGE,
                "sleep",
                "2147483647",
            )
        container = LabContainer(self, name).refresh()
        with self._lock:
            self._containers.append(container)
        return container

    def containers(self) -> list[LabContainer]:
        """Every container of this host's engine, freshly inspected."""
        names = self.docker("ps", "-a", "--format", "{{.Names}}").stdout.split()
        found = [LabContainer(self, name) for name in names]
        return [container._apply(container.inspect()) for container in found]

    def _next_container_name(self) -> str:
        taken = set(self.docker("ps", "-a", "--format", "{{.Names}}").stdout.split())
        number = 1
        while f"{self.name}-c{number}" in taken:
            number += 1
        return f"{self.name}-c{number}"

    def forget(self, container: LabContainer) -> None:
        """Stop tracking a container (it was removed)."""
        with self._lock:
            self._containers = [c for c in self._containers if c is not container]

    # -- docker engine ------------------------------------------------------------------------
    @property
    def dockerd_pid(self) -> int | None:
        return dockerd.current_pid(self.layout, self.lab.state.dockerd_pids.get(self.name))

    def stop_docker(self) -> None:
        """Like `systemctl stop docker`: SIGTERM to dockerd's PID, wait until it is gone."""
        self._need_docker()
        dockerd.stop(self.layout, self.lab.state.dockerd_pids.get(self.name))

    def start_docker(self, refresh: bool = True) -> None:
        """Start dockerd again and wait for its API; refresh the containers this object made."""
        self._need_docker()
        if self.dockerd_pid is not None:
            raise InvalidInput(f"dockerd of {self.name} is already running")
        pid = dockerd.start(self.layout, self.lab.state.dockerd_args)
        self.lab.record_dockerd(self.name, pid)
        dockerd.wait_ready(self.layout, pid)
        if refresh:
            for container in list(self._containers):
                container.refresh()

    def restart_docker(self) -> None:
        """Like `systemctl restart docker`: docker0 gets its address back, containers restart."""
        self.stop_docker()
        self.start_docker()

    def _need_docker(self) -> None:
        if not self.has_docker:
            raise InvalidInput(
                f"lab {self.lab.name!r} runs without Docker", "start it without --no-docker"
            )
