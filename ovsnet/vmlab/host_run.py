"""Host commands for building the VM lab's disks: run one and fail with its stderr, hold a cache
lock, run in a private mount namespace, and the progress log.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

from ovsnet.errors import OperationFailed

Log = Callable[[str], None]


def stderr_log(message: str) -> None:
    print(f"vmlab: {message}", file=sys.stderr, flush=True)


@contextmanager
def cache_lock(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def in_private_mounts(argv: list[str], extra_env: dict[str, str] | None = None) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env.update(extra_env or {})
    run(["unshare", "--mount", "--propagation", "private", *argv], env=env)


def run(argv: list[str], capture: bool = False, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(argv, text=True, capture_output=True, env=env)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-15:]
        raise OperationFailed(
            f"`{' '.join(argv[:6])}` failed (exit {proc.returncode}): " + " | ".join(tail)
        )
    return proc.stdout if capture else ""
