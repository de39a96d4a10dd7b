"""Running the lab's plumbing commands and stopping its processes by PID.

The lab emulates hardware, so it may drive `ip`, `ovs-vsctl` and friends directly; ovsnet's
product code never does (docs/architecture.md, "Layers").
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ovsnet.errors import NotReady, OperationFailed

# Daemons live in /usr/sbin, which a non-login root shell may lack.
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class LabError(OperationFailed):
    """The lab could not be built or torn down. `lab` is set when up() failed and cleaned up."""

    lab = None


class LabCommandError(LabError):
    """A plumbing command failed; carries its output for the test report."""

    def __init__(
        self, argv: Sequence[str | os.PathLike], returncode: int | None, stdout: str, stderr: str
    ):
        self.argv = [str(arg) for arg in argv]
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        what = "timed out" if returncode is None else f"exited {returncode}"
        detail = (stderr or stdout or "").strip().splitlines()[-3:]
        super().__init__(f"`{' '.join(map(str, argv))}` {what}: {' | '.join(detail)}")


def plumbing_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    path = env.get("PATH", "")
    env["PATH"] = f"{path}:{SYSTEM_PATH}" if path else SYSTEM_PATH
    env.update(extra or {})
    return env


def run(
    argv: Sequence[str | os.PathLike],
    *,
    check: bool = True,
    timeout: float = 60,
    input: str | bytes | None = None,
    env: Mapping[str, str] | None = None,
    text: bool = True,
) -> subprocess.CompletedProcess:
    """Run a command, capture its output; raise LabCommandError when check and it fails."""
    argv = [str(a) for a in argv]
    try:
        done = subprocess.run(
            argv,
            capture_output=True,
            text=text,
            timeout=timeout,
            input=input,
            env=plumbing_env(env),
            stdin=None if input is not None else subprocess.DEVNULL,
        )
    except FileNotFoundError:
        raise NotReady(f"{argv[0]} is not installed", "run `bash scripts/setup.sh`") from None
    except subprocess.TimeoutExpired as exc:
        if check:
            raise LabCommandError(argv, None, _text(exc.stdout), _text(exc.stderr)) from None
        return subprocess.CompletedProcess(argv, -signal.SIGKILL, _text(exc.stdout), "timeout")
    if check and done.returncode != 0:
        raise LabCommandError(argv, done.returncode, _text(done.stdout), _text(done.stderr))
    return done


def _text(data: str | bytes | None) -> str:
    if data is None:
        return ""
    return data.decode(errors="replace") if isinstance(data, bytes) else data


# --- processes -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProcessInfo:
    pid: int
    ppid: int
    cmdline: str
    netns_inode: int | None
    cgroup: str


def _reap(pid: int) -> None:
    """Collect our own exited child so it does not linger as a zombie."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name is in parentheses and may contain spaces: split after the last ')'.
    return raw[raw.rindex(")") + 2 :].split()


def is_alive(pid: int) -> bool:
    _reap(pid)
    fields = _stat_fields(pid)
    return fields is not None and fields[0] not in ("Z", "X")


def start_time(pid: int) -> int | None:
    """Kernel start time of a process (clock ticks since boot): tells a PID from its reuse."""
    fields = _stat_fields(pid)
    return int(fields[19]) if fields else None


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""


def read_pidfile(path: Path) -> int | None:
    try:
        return int(Path(path).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def process_table() -> list[ProcessInfo]:
    table = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        fields = _stat_fields(pid)
        if fields is None or fields[0] in ("Z", "X"):
            continue
        table.append(
            ProcessInfo(
                pid=pid,
                ppid=int(fields[1]),
                cmdline=cmdline(pid),
                netns_inode=_netns_inode_of(pid),
                cgroup=_read(entry / "cgroup"),
            )
        )
    return table


def _netns_inode_of(pid: int) -> int | None:
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino
    except OSError:
        return None


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def protected_pids() -> set[int]:
    """This process and its ancestors: a sweep must never kill the caller (e.g. `lab exec`)."""
    pids = set()
    pid = os.getpid()
    while pid > 1:
        pids.add(pid)
        fields = _stat_fields(pid)
        if fields is None:
            break
        pid = int(fields[1])
    pids.add(1)
    return pids


def with_descendants(roots: Iterable[int], table: list[ProcessInfo]) -> set[int]:
    children: dict[int, list[int]] = {}
    for proc in table:
        children.setdefault(proc.ppid, []).append(proc.pid)
    found, todo = set(), list(roots)
    while todo:
        pid = todo.pop()
        if pid in found:
            continue
        found.add(pid)
        todo.extend(children.get(pid, []))
    return found


def is_ours(pid: int, marker: str | None = None) -> bool:
    """True if the process is alive and (when given) its command line holds `marker`.

    The marker check guards against a recycled PID: every lab daemon's command line names its
    own run directory.
    """
    return is_alive(pid) and (marker is None or marker in cmdline(pid))


def signal_pid(pid: int, sig: int, marker: str | None = None) -> bool:
    """Send a signal if the process is ours (see `is_ours`); False if it was not."""
    if not is_ours(pid, marker):
        return False
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return False
    return True


def wait_gone(pids: Iterable[int], timeout: float) -> set[int]:
    """Wait until the processes exit; return those still alive at the deadline."""
    remaining = set(pids)
    deadline = time.monotonic() + timeout
    while remaining:
        remaining = {pid for pid in remaining if is_alive(pid)}
        if not remaining or time.monotonic() >= deadline:
            break
        time.sleep(0.05)
    return remaining


def stop_pids(
    targets: Mapping[int, str | None], timeout: float = 15.0, sig: int = signal.SIGTERM
) -> set[int]:
    """Signal each PID (checked against its marker), wait, SIGKILL what is left.

    Returns the PIDs that survived even SIGKILL (should be empty).
    """
    signalled = {pid for pid, marker in targets.items() if signal_pid(pid, sig, marker)}
    stubborn = wait_gone(signalled, timeout)
    for pid in stubborn:
        signal_pid(pid, signal.SIGKILL)
    return wait_gone(stubborn, 5.0)


def kill_pids(pids: Iterable[int]) -> set[int]:
    pids = set(pids) - protected_pids()
    for pid in pids:
        signal_pid(pid, signal.SIGKILL)
    return wait_gone(pids, 5.0)
