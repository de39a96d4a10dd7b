"""The lab: N emulated hosts (network namespaces) on one emulated switch.

Each host has its own Open vSwitch (userspace datapath, underlay address on `br-phy`) and, by
default, its own real dockerd configured for the host's /24 of the overlay. See
docs/testing.md ("The netns lab") and `ovsnet lab --help`.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from ovsnet.errors import InvalidInput, NotReady
from ovsnet.lab import cleanup, dockerd, image, netns, ovs
from ovsnet.lab import state as lab_state
from ovsnet.lab.layout import (
    HOST_NIC,
    SWITCH_BRIDGE,
    UNDERLAY_MTU,
    HostLayout,
    check_host_count,
    new_lab_name,
    new_token,
)
from ovsnet.lab.proc import SYSTEM_PATH, LabError, cmdline, is_alive, run, stop_pids
from ovsnet.lab.state import LabState, Owner

PING_INTERVAL = "0.2"
_LOOKUPS_RE = re.compile(r"lookups:\s*hit:(\d+)\s+missed:(\d+)\s+lost:(\d+)")
_TOOLS = (
    "ip",
    "nsenter",
    "umount",
    "ovsdb-tool",
    "ovsdb-server",
    "ovs-vswitchd",
    "ovs-vsctl",
    "ovs-appctl",
)
_DOCKER_TOOLS = ("dockerd", "docker", "ethtool")


class LabContainer:
    """A real Docker container on a lab host (busybox image, restart policy `always`)."""

    def __init__(self, host: LabHost, name: str):
        self.host = host
        self.name = name
        self.id = ""
        self.pid = 0
        self.ip = ""
        self.mac = ""

    def __repr__(self) -> str:
        return f"<LabContainer {self.host.name}/{self.name} {self.ip}>"

    def inspect(self) -> dict:
        return dockerd.containers_json(self.host.layout, self.name)[0]

    def refresh(self, timeout: float = 30.0) -> LabContainer:
        """Wait until running, re-read PID and address, switch tx checksum offload off again.

        Needed after a dockerd restart: the container comes back (restart policy) with a new
        veth, whose offload is on again.
        """
        deadline = time.monotonic() + timeout
        while True:
            info = self.inspect()
            if info["State"].get("Running") and info["State"].get("Pid") and _ip_of(info):
                break
            if time.monotonic() > deadline:
                raise LabError(
                    f"container {self.name} on {self.host.name} is not running",
                    f"state: {info['State'].get('Status')}",
                )
            time.sleep(0.1)
        self._apply(info)
        self.disable_tx_offload()
        return self

    def _apply(self, info: dict) -> LabContainer:
        self.id, self.pid = info["Id"], info["State"].get("Pid", 0)
        self.ip, self.mac = _ip_of(info), _mac_of(info)
        return self

    def _in_netns(self, argv: Sequence[str], check: bool = True) -> subprocess.CompletedProcess:
        return run(["nsenter", "-t", str(self.pid), "-n", *argv], check=check, timeout=30)

    def disable_tx_offload(self) -> None:
        """Userspace datapath requirement: without it, TCP between containers stalls."""
        self._in_netns(["ethtool", "-K", "eth0", "tx", "off"])

    def tx_offload(self) -> bool:
        """Whether transmit checksum offload is on (it should be off)."""
        out = self._in_netns(["ethtool", "-k", "eth0"]).stdout
        return "tx-checksumming: on" in out

    def exec(
        self,
        argv: Sequence[str],
        check: bool = False,
        timeout: float = 60,
        input: str | None = None,
    ) -> subprocess.CompletedProcess:
        flags = ["-i"] if input is not None else []
        return self.host.docker(
            "exec", *flags, self.name, *argv, check=check, timeout=timeout, input=input
        )

    def ping(self, ip: str, count: int = 3, timeout: float = 5.0) -> bool:
        """True when every one of `count` echo requests is answered within `timeout` s.

        ping itself exits 0 when a single reply arrives: a path that loses packets must not pass.
        """
        argv = [
            "ping",
            "-c",
            str(count),
            "-i",
            PING_INTERVAL,
            "-W",
            str(int(max(1, timeout))),
            str(ip),
        ]
        done = self.exec(argv, timeout=timeout + count + 10)
        return done.returncode == 0 and answered(done.stdout) == count

    def remove(self) -> None:
        self.host.docker("rm", "-f", self.name, check=False)
        self.host._forget(self)


_PING_SUMMARY = re.compile(r"(\d+) packets transmitted, (\d+) (?:packets )?received")


def answered(ping_output: str) -> int:
    """Echo replies counted in ping's summary line (busybox and iputils word it alike)."""
    match = _PING_SUMMARY.search(ping_output)
    return int(match.group(2)) if match else 0


def _ip_of(info: dict) -> str:
    settings = info.get("NetworkSettings") or {}
    if settings.get("IPAddress"):
        return settings["IPAddress"]
    for network in (settings.get("Networks") or {}).values():
        if network.get("IPAddress"):
            return network["IPAddress"]
    return ""


def _mac_of(info: dict) -> str:
    settings = info.get("NetworkSettings") or {}
    if settings.get("MacAddress"):
        return settings["MacAddress"]
    return next((n.get("MacAddress", "") for n in (settings.get("Networks") or {}).values()), "")


class LabHost:
    """One emulated host: a network namespace with its own OVS and (optionally) dockerd."""

    underlay_mtu = UNDERLAY_MTU

    def __init__(self, lab: Lab, layout: HostLayout):
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

    def _forget(self, container: LabContainer) -> None:
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
        self.lab._record_dockerd(self.name, pid)
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


class Lab:
    """N emulated hosts on one switch. Use `Lab.up(...)` (a context manager) or `Lab.load(name)`."""

    def __init__(self, state: LabState):
        self.state = state
        self.layout = state.layout()
        self.hosts = [LabHost(self, host) for host in self.layout.hosts]
        self._state_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<Lab {self.name} hosts={len(self.hosts)} docker={self.has_docker}>"

    name = property(lambda self: self.state.name)
    token = property(lambda self: self.state.token)
    has_docker = property(lambda self: self.state.docker)
    directory = property(lambda self: self.layout.directory)
    switch_netns = property(lambda self: self.layout.switch_netns)

    def host(self, name: str) -> LabHost:
        self.layout.host(name)  # raises a clear error for an unknown name
        return next(h for h in self.hosts if h.name == name)

    def __getitem__(self, key: str | int) -> LabHost:
        return self.hosts[key] if isinstance(key, int) else self.host(key)

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc_info) -> None:
        self.down()

    # -- life cycle ---------------------------------------------------------------------------
    @classmethod
    def up(
        cls,
        hosts: int = 3,
        *,
        docker: bool = True,
        name: str | None = None,
        workdir: str | os.PathLike | None = None,
        dockerd_args: Sequence[str] = (),
    ) -> Lab:
        """Build a lab; on any failure (even Ctrl-C) tear down what was built, then re-raise."""
        check_host_count(hosts)
        preflight(docker)
        state = LabState(
            name=name or new_lab_name(),
            token=new_token(),
            hosts=hosts,
            docker=docker,
            base_dir=str(lab_state.base_dir(workdir)),
            owner=Owner.me(),
            dockerd_args=list(dockerd_args),
        )
        lab = cls(state)
        lab._claim_directory()
        try:
            lab._build()
        except BaseException as exc:
            lab._down_after_failure(exc)
            raise
        return lab

    @classmethod
    def load(cls, name: str, workdir: str | os.PathLike | None = None) -> Lab:
        """Attach to a lab built earlier (e.g. by `ovsnet lab up` in another process)."""
        return cls(lab_state.load(name, workdir))

    def disown(self) -> None:
        """Keep the lab after this process exits (`ovsnet lab up`): no longer a leak."""
        self.state.owner = None
        self._save()

    def down(self) -> None:
        """Stop everything by PID, delete namespaces, mounts and files. Idempotent.

        Raises LabError naming what could not be removed (after trying everything).
        """
        problems: list[str] = []
        if self.has_docker:
            self._each_host(lambda h: _attempt(problems, self._stop_host_docker, h))
        _attempt(problems, self._stop_ovs)
        seen_ids = self._container_ids()
        footprint = self._footprint(seen_ids)
        _attempt(problems, cleanup.kill_processes, footprint)
        _attempt(problems, cleanup.remove_container_cgroups, seen_ids)
        _attempt(problems, cleanup.unmount_under, self.directory)
        for name in self._netns_names():
            _attempt(problems, netns.delete, name)
        if not cleanup.mounts_under(self.directory):
            shutil.rmtree(self.directory, ignore_errors=True)
        left = self.leftovers(footprint)
        if left:
            raise LabError(
                f"lab {self.name} left behind: {'; '.join(left)}", "; ".join(problems) or None
            )

    def leftovers(self, footprint: cleanup.Footprint | None = None) -> list[str]:
        """What of this lab still exists: namespaces, processes, mounts, cgroups, files."""
        footprint = footprint or self._footprint(self._container_ids())
        left = [f"netns {n}" for n in self._netns_names() if netns.exists(n)]
        left += [f"process {pid} ({_cmd(pid)})" for pid in sorted(cleanup.processes(footprint))]
        left += [f"mount {m}" for m in cleanup.mounts_under(self.directory)]
        left += [f"cgroup {c}" for c in cleanup.leftover_cgroups(footprint.container_ids)]
        if self.directory.exists():
            left.append(f"directory {self.directory}")
        return left

    def status(self) -> dict:
        """A JSON-able picture of the lab: hosts, addresses, sockets, daemons alive."""
        return {
            "name": self.name,
            "token": self.token,
            "directory": str(self.directory),
            "switch_netns": self.switch_netns,
            "docker": self.has_docker,
            "created": self.state.created,
            "kept": self.state.owner is None,
            "hosts": [_host_status(h) for h in self.hosts],
        }

    # -- building -----------------------------------------------------------------------------
    def _claim_directory(self) -> None:
        self.directory.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.directory.mkdir()
        except FileExistsError:
            raise InvalidInput(
                f"a lab named {self.name!r} already exists in {self.directory.parent}",
                f"use it, or remove it with `ovsnet lab down --name {self.name}`",
            ) from None
        self._save()  # first thing: a crash from here on leaves a lab `down` can find

    def _build(self) -> None:
        netns.create(self.switch_netns)
        netns.add_bridge(self.switch_netns, SWITCH_BRIDGE)
        # Hosts come up in parallel; the pool's exit waits for every thread (even on Ctrl-C),
        # so nothing is still being built while down() runs.
        with ThreadPoolExecutor(max_workers=min(8, len(self.hosts))) as pool:
            futures = [pool.submit(self._build_host, h) for h in self.hosts]
            errors = [f.exception() for f in futures]
        for error in errors:
            if error is not None:
                raise error
        self._save()

    def _build_host(self, host: LabHost) -> None:
        layout = host.layout
        netns.create(layout.netns)
        netns.cable(self.switch_netns, SWITCH_BRIDGE, layout.switch_port, layout.netns, HOST_NIC)
        ovs.start(layout)
        ovs.add_phy_bridge(layout)
        if self.has_docker:
            pid = dockerd.start(layout, self.state.dockerd_args)
            self._record_dockerd(host.name, pid)
            dockerd.wait_ready(layout, pid)
            dockerd.import_image(layout)

    def _down_after_failure(self, exc: BaseException) -> None:
        try:
            self.down()
        except LabError as cleanup_error:
            exc.add_note(f"cleanup after the failure also failed: {cleanup_error.one_line()}")
        with contextlib.suppress(AttributeError):
            exc.lab = self  # type: ignore[attr-defined]  # lets a caller (a test) check that nothing was left behind

    def _record_dockerd(self, host: str, pid: int) -> None:
        with self._state_lock:
            self.state.dockerd_pids[host] = pid
            if self.directory.exists():
                self._save()

    def _save(self) -> None:
        lab_state.save(self.state)

    # -- tearing down -------------------------------------------------------------------------
    def _each_host(self, fn) -> None:
        with ThreadPoolExecutor(max_workers=min(8, len(self.hosts))) as pool:
            list(pool.map(fn, self.hosts))

    def _stop_host_docker(self, host: LabHost) -> None:
        if host.dockerd_pid is None:
            return
        if dockerd.ping(host.layout):
            dockerd.remove_containers(host.layout)
        dockerd.stop(host.layout, self.state.dockerd_pids.get(host.name))

    def _stop_ovs(self) -> None:
        targets = {
            pid: str(h.rundir) + "/"
            for h in self.hosts
            for pid in ovs.pids(h.layout).values()
            if pid
        }
        stop_pids(targets, timeout=10)

    def _netns_names(self) -> list[str]:
        return [h.netns for h in self.hosts] + [self.switch_netns]

    def _container_ids(self) -> frozenset[str]:
        return frozenset(cid for h in self.hosts for cid in dockerd.container_ids_on_disk(h.layout))

    def _footprint(self, container_ids: frozenset[str]) -> cleanup.Footprint:
        inodes = frozenset(i for n in self._netns_names() if (i := netns.inode(n)) is not None)
        return cleanup.Footprint(self.directory, inodes, container_ids)


def _attempt(problems: list[str], fn, *args) -> None:
    """Teardown is best effort: record a failure and carry on with the next step."""
    try:
        fn(*args)
    except Exception as exc:  # noqa: BLE001 - reported by down() with everything left behind
        problems.append(f"{getattr(fn, '__name__', fn)}: {exc}")


def _cmd(pid: int) -> str:
    return cmdline(pid)[:80]


def _host_status(host: LabHost) -> dict:
    return {
        "name": host.name,
        "netns": host.netns,
        "netns_exists": netns.exists(host.netns),
        "underlay_ip": host.underlay_ip,
        "prefix": host.prefix,
        "subnet": host.subnet,
        "db": host.db,
        "docker_host": host.docker_host if host.has_docker else None,
        "rundir": str(host.rundir),
        "pids": host.pids(),
    }


def preflight(docker: bool) -> None:
    """Refuse early, with the fix, when the lab cannot run here."""
    if os.geteuid() != 0:
        raise NotReady(
            "the lab needs root (network namespaces, OVS and Docker daemons)",
            "run it as root, e.g. with sudo",
        )
    tools = _TOOLS + (_DOCKER_TOOLS if docker else ())
    path = f"{os.environ.get('PATH', '')}:{SYSTEM_PATH}"
    missing = [tool for tool in tools if shutil.which(tool, path=path) is None]
    if not ovs.SCHEMA.exists():
        missing.append(str(ovs.SCHEMA))
    if missing:
        raise NotReady(f"the lab needs {', '.join(missing)}", "run `bash scripts/setup.sh`")
    if docker:
        image.rootfs_tar()  # checks busybox-static early


def list_labs(workdir: str | os.PathLike | None = None) -> list[Lab]:
    """Every lab with a state file under the base directory (all owners)."""
    return [Lab(s) for s in lab_state.list_states(workdir)]


def prune_labs(workdir: str | os.PathLike | None = None) -> list[str]:
    """Remove the labs whose owning process is gone (e.g. a killed test run); their names."""
    leaked = [
        lab
        for lab in list_labs(workdir)
        if lab.state.owner is not None and not lab.state.owner.alive()
    ]
    for lab in leaked:
        lab.down()
    return [lab.name for lab in leaked]


def find_leaked_netns(prefix: str = "ovl-") -> list[str]:
    """Lab namespaces that belong to no known lab (e.g. a state directory removed by hand)."""
    known = {n for lab in list_labs() for n in lab._netns_names()}
    return [n for n in netns.list_names(prefix) if n not in known]
