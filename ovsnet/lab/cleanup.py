"""Finding and removing whatever a lab left running or mounted, whatever state it is in."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ovsnet.lab.proc import (
    ProcessInfo,
    kill_pids,
    process_table,
    protected_pids,
    run,
    with_descendants,
)

CGROUP_ROOT = Path("/sys/fs/cgroup")


@dataclass(frozen=True)
class Footprint:
    """How to recognise what belongs to one lab."""

    directory: Path  # every lab daemon names a path below it on its command line
    netns_inodes: frozenset[int]  # processes in the lab's namespaces
    container_ids: frozenset[str]  # container processes sit in cgroups named after them

    def owns(self, proc: ProcessInfo) -> bool:
        return (
            f"{self.directory}/" in f"{proc.cmdline} "
            or (proc.netns_inode is not None and proc.netns_inode in self.netns_inodes)
            or any(cid in proc.cgroup for cid in self.container_ids)
        )


def processes(footprint: Footprint) -> set[int]:
    """PIDs of the lab's processes and all their descendants, never the caller's own chain."""
    table = process_table()
    roots = {proc.pid for proc in table if footprint.owns(proc)}
    return with_descendants(roots, table) - protected_pids()


def kill_processes(footprint: Footprint) -> set[int]:
    """SIGKILL everything left; returns survivors."""
    return kill_pids(processes(footprint))


def mounts_under(directory: Path) -> list[str]:
    """Mount points at or below the directory, deepest first."""
    prefix = f"{directory}/"
    points = []
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            point = _unescape(line.split()[4])
            if point == str(directory) or point.startswith(prefix):
                points.append(point)
    return sorted(set(points), key=len, reverse=True)


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo
    return field.encode().decode("unicode_escape") if "\\" in field else field


def unmount_under(directory: Path) -> None:
    for point in mounts_under(directory):
        run(["umount", "-l", point], check=False, timeout=30)


def remove_container_cgroups(container_ids: Iterable[str]) -> None:
    """Empty cgroups runc leaves behind when a container was killed rather than stopped."""
    ids = set(container_ids)
    if not ids:
        return
    for controller in CGROUP_ROOT.iterdir():
        for cid in ids:
            with contextlib.suppress(OSError):
                (controller / "docker" / cid).rmdir()


def leftover_cgroups(container_ids: Iterable[str]) -> list[str]:
    found = []
    for cid in set(container_ids):
        found += [str(p) for p in CGROUP_ROOT.glob(f"*/docker/{cid}")]
    return found
