"""The lab: N emulated hosts (network namespaces) on one emulated switch, built and torn down.

Each host (`host.LabHost`) has its own Open vSwitch (userspace datapath, underlay address on
`br-phy`) and, by default, its own real dockerd configured for the host's /24 of the overlay.
This module owns the lab's life cycle: the checks before building (`preflight`), building the
switch and the hosts in parallel, tearing everything down by PID, finding what was left behind,
and the labs of other processes (`list_labs`, `prune_labs`). See docs/testing.md ("The netns
lab") and `ovsnet lab --help`.

Place: docs/architecture.md, "Packages and what they own": the netns lab (`ovsnet.lab`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from ovsnet.errors import InvalidInput, NotReady
from ovsnet.lab import cleanup, dockerd, image, netns, ovs
from ovsnet.lab import state as lab_state
from ovsnet.lab.host import LabHost
from ovsnet.lab.layout import (
    HOST_NIC,
    SWITCH_BRIDGE,
    check_host_count,
    new_lab_name,
    new_token,
)
from ovsnet.lab.proc import SYSTEM_PATH, LabError, cmdline, stop_pids
from ovsnet.lab.state import LabState, Owner

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
            self.record_dockerd(host.name, pid)
            dockerd.wait_ready(layout, pid)
            dockerd.import_image(layout)

    def _down_after_failure(self, exc: BaseException) -> None:
        try:
            self.down()
        except LabError as cleanup_error:
            exc.add_note(f"cleanup after the failure also failed: {cleanup_error.one_line()}")
        with contextlib.suppress(AttributeError):
            exc.lab = self  # type: ignore[attr-defined]  # lets a caller (a test) check that nothing was left behind

    def record_dockerd(self, host: str, pid: int) -> None:
        """Remember a host's new dockerd PID (in the state file, so `down` finds it)."""
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
