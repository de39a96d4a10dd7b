"""Fault checkpoints for tests: die at a named point as a SIGKILL would kill a command there.

`OVSNET_KILL_AT=<name>` makes `checkpoint(name)` kill the process with SIGKILL, no cleanup: the
tests then check that what is left behind (OVSDB, the plaintext guard) is still safe.
"""

from __future__ import annotations

import os
import signal


def checkpoint(name: str) -> None:
    if os.environ.get("OVSNET_KILL_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)
