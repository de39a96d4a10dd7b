"""Polling a condition until a deadline: the VM lab's only way to wait (no fixed sleeps)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from ovsnet.errors import OperationFailed

T = TypeVar("T")


def wait_until(check: Callable[[], T], timeout: float, what: str, interval: float = 0.5) -> T:
    """Call `check` until it returns something truthy; fail naming `what` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise OperationFailed(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)
