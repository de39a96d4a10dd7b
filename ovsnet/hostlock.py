"""One writer at a time per host: an flock on a lock file derived from the OVSDB target.

Every ovsnet process that changes a host (CLI commands, the companion's heal, the cluster
agent's apply) holds this lock while it reads, plans and applies, so two of them never plan
from the same observation and overwrite each other (an OVSDB row or the read-modify-write of
the plaintext guard). The kernel releases an flock when its holder dies, even by SIGKILL, so a
crashed command never leaves the host locked.

Where the lock lives:
- `unix:` targets: next to the socket (`<dir>/ovsnet-<socket>.lock`), i.e. in the OVS run
  directory. The companion container mounts that directory from the host, so the CLI on the
  host, the companion and `docker exec ovsnet ovsnet ...` all meet on the same file, and each
  lab host (its own run directory) has a lock of its own.
- other targets (`tcp:`, `ssl:`): `/run/ovsnet/ovsnet-<target>.lock`.
`OVSNET_LOCK_DIR` puts every lock file in that directory instead (named after the target).

The holder writes one line into the file (pid, what it does, since when); a process that gives
up waiting names it in its error. No secret ever reaches the file: only the command's name.

Place: docs/architecture.md, "Layers": below the services (the CLI edge, the companion
and the agent hold it around every change).
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from ovsnet.errors import InvalidInput, NotReady, OperationFailed

DEFAULT_WAIT = 30.0  # seconds; env OVSNET_LOCK_WAIT, or the global --lock-wait
DEFAULT_DIR = Path("/run/ovsnet")
POLL = 0.05  # seconds between tries while another process holds the lock


def wait_from_env(default: float = DEFAULT_WAIT) -> float:
    """OVSNET_LOCK_WAIT in seconds, or the default when unset."""
    text = os.environ.get("OVSNET_LOCK_WAIT")
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:  # also refuses nan
        raise InvalidInput(f"OVSNET_LOCK_WAIT={text!r} is not a number of seconds (>= 0)")
    return value


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")[:48] or "db"


def lock_path(db: str, lock_dir: str | os.PathLike | None = None) -> Path:
    """The lock file for the host behind OVSDB target `db` (pure: no file is touched)."""
    lock_dir = lock_dir if lock_dir is not None else os.environ.get("OVSNET_LOCK_DIR")
    if db.startswith("unix:"):
        # /var/run is a link to /run on current distributions: one socket, one lock.
        socket = Path(os.path.realpath(db[len("unix:") :]))
        if not lock_dir:
            return socket.parent / f"ovsnet-{socket.name}.lock"
        key = str(socket)
    else:
        key = db
    digest = hashlib.sha256(key.encode()).hexdigest()[:10]
    return Path(lock_dir or DEFAULT_DIR) / f"ovsnet-{_slug(key)}-{digest}.lock"


@dataclass(frozen=True)
class Holder:
    """Who holds the lock, as written in the lock file."""

    pid: int
    what: str
    since: float

    def line(self) -> str:
        return json.dumps({"pid": self.pid, "what": self.what, "since": self.since}) + "\n"

    @classmethod
    def parse(cls, text: str) -> Holder | None:
        try:
            data = json.loads(text.strip().splitlines()[0])
            return cls(int(data["pid"]), str(data["what"]), float(data["since"]))
        except (ValueError, KeyError, IndexError, TypeError):
            return None

    def describe(self, now: float) -> str:
        started = time.strftime("%H:%M:%S", time.localtime(self.since))
        return f"pid {self.pid} ({self.what}, since {started}, {now - self.since:.0f} s ago)"


# Locks this process holds: path -> [fd, depth, owning thread]. A process that already holds
# the lock (the companion's heal runs init, then peer sync) must not wait for itself: flock
# conflicts between two open files of the same process.
_held: dict[Path, list] = {}
_guard = threading.Lock()
_thread_locks: dict[Path, threading.Lock] = {}


def _thread_lock(path: Path) -> threading.Lock:
    with _guard:
        return _thread_locks.setdefault(path, threading.Lock())


@contextmanager
def host_lock(
    db: str,
    holder: str,
    wait: float | None = None,
    lock_dir: str | os.PathLike | None = None,
) -> Iterator[Path]:
    """Hold the host's lock for the block; wait at most `wait` seconds for it (then NotReady,
    naming the holder). Re-entrant within one thread."""
    path = lock_path(db, lock_dir)
    wait = wait_from_env() if wait is None else wait
    held = _held.get(path)
    if held is not None and held[2] == threading.get_ident():
        held[1] += 1
        try:
            yield path
        finally:
            held[1] -= 1
        return
    deadline = time.monotonic() + wait
    in_process = _thread_lock(path)
    if not in_process.acquire(timeout=max(wait, 0.0)):
        raise _busy(path, wait)
    try:
        fd = _acquire(path, db, deadline, wait)
        if fd is None:
            yield path
            return
        _held[path] = [fd, 1, threading.get_ident()]
        try:
            _write_holder(fd, Holder(os.getpid(), holder, time.time()))
            yield path
        finally:
            del _held[path]
            # Empty the file before unlocking: a waiter that times out later must not name a
            # holder that is gone.
            with suppress(OSError):
                os.ftruncate(fd, 0)
            os.close(fd)  # releases the flock
    finally:
        in_process.release()


def _open(path: Path, db: str) -> int | None:
    beside_socket = (
        db.startswith("unix:") and path.parent == Path(os.path.realpath(db[len("unix:") :])).parent
    )
    if beside_socket and not path.parent.is_dir():
        # Never create OVS's run directory. Without it there is no OVSDB to change either:
        # the command goes on unlocked and reports that (after checking its own input).
        return None
    try:
        if not beside_socket:
            path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise OperationFailed(
            f"cannot open the host lock {path}: {exc.strerror}",
            "run as root, or set OVSNET_LOCK_DIR to a writable directory",
        ) from None


def _acquire(path: Path, db: str, deadline: float, wait: float) -> int | None:
    fd = _open(path, db)
    if fd is None:
        return None  # no OVS run directory: nothing to lock (see _open)
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                os.close(fd)
                raise OperationFailed(f"cannot lock {path}: {exc.strerror}") from None
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            os.close(fd)
            raise _busy(path, wait)
        time.sleep(min(POLL, remaining))


def _write_holder(fd: int, holder: Holder) -> None:
    os.ftruncate(fd, 0)
    os.pwrite(fd, holder.line().encode(), 0)


def read_holder(path: Path) -> Holder | None:
    try:
        return Holder.parse(path.read_text())
    except OSError:
        return None


def _busy(path: Path, wait: float) -> NotReady:
    holder = read_holder(path)
    who = holder.describe(time.time()) if holder else "another ovsnet process"
    return NotReady(
        f"another ovsnet process is changing this host: {who} still holds {path} after {wait:g} s",
        "wait for it to finish (or raise --lock-wait / OVSNET_LOCK_WAIT)",
    )
