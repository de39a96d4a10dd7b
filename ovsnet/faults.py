"""Named crash points for the kill-anywhere tests.

`checkpoint("init:after-bridge")` marks an instant between two steps of a command. When the
environment variable OVSNET_KILL_AT names that checkpoint, the process SIGKILLs itself there:
no cleanup, no `finally`, exactly what a power cut or an OOM kill leaves behind. The next run
of the same command must heal the host (tests/lab/test_kill_anywhere.py runs every point).

Costs one dictionary lookup when the variable is unset. CHECKPOINTS lists every point, so the
test can tell a checkpoint that no longer exists from one it forgot.

Place: docs/architecture.md, "Layers": shared by services and facades (a test hook).
"""

from __future__ import annotations

import os
import signal

ENV = "OVSNET_KILL_AT"

CHECKPOINTS = {
    "init": (
        "init:after-bridge",
        "init:after-links-up",
        "init:after-address-added",
        "init:after-address-moved",
        "init:after-firewall",
    ),
    # peer add/remove/sync with IPsec peers: the guard is widened before OVSDB changes and
    # narrowed after (services/guard.py).
    "peers": ("guard:after-widened", "ovsdb:after-commit", "guard:after-ovsdb"),
    "reset": (
        "reset:after-address-added",
        "reset:after-address-moved",
        "reset:after-firewall",
        "reset:after-bridge-deleted",
    ),
}


def checkpoint(name: str) -> None:
    """Die here (SIGKILL) if OVSNET_KILL_AT names this checkpoint."""
    if os.environ.get(ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
