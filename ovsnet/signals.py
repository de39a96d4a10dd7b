"""Waiting in the foreground until SIGTERM or SIGINT, for commands that serve until stopped.

Place: docs/architecture.md, "Layers": CLI edge.
"""

from __future__ import annotations

import signal
import threading


def wait_for_stop() -> int:
    """Block until SIGTERM/SIGINT; return the signal number. Restores the old handlers."""
    stopped = threading.Event()
    received: list[int] = []

    def handler(signum, frame):
        received.append(signum)
        stopped.set()

    old = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        while not stopped.wait(1.0):
            pass
    finally:
        for sig, previous in old.items():
            signal.signal(sig, previous)
    return received[0]
