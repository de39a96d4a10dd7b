"""Read-only facts from the running kernel: loaded modules, sysctls, clock sync state.

The one module that reads /proc and /sys for `ovsnet doctor`; no writes.

Place: docs/architecture.md, "Layers": facade layer (/proc and /sys).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
from pathlib import Path

TIME_ERROR = 5  # adjtimex(2): the clock is not synchronised


def modules() -> set[str]:
    """Modules loaded now or built into the kernel."""
    found: set[str] = set()
    with contextlib.suppress(OSError):
        found |= {line.split()[0] for line in Path("/proc/modules").read_text().splitlines()}
    with contextlib.suppress(OSError):
        found |= set(os.listdir("/sys/module"))
    builtin = Path("/lib/modules", os.uname().release, "modules.builtin")
    with contextlib.suppress(OSError):
        found |= {Path(line).name.removesuffix(".ko") for line in builtin.read_text().split()}
    # /proc/modules says ip_gre, modules.builtin may say ip-gre: one spelling.
    return {name.replace("-", "_") for name in found}


def sysctl(name: str) -> str | None:
    """A sysctl of the current network namespace, None when it does not exist."""
    try:
        return Path("/proc/sys", *name.split(".")).read_text().strip()
    except OSError:
        return None


class _Timex(ctypes.Structure):
    # struct timex (x86-64/aarch64 layout): we only read the return value, but the kernel
    # writes the whole struct, so it must be full size.
    _fields_ = [("modes", ctypes.c_uint), ("_rest", ctypes.c_byte * 204)]


def clock_synchronised() -> bool | None:
    """Whether the kernel clock is NTP-synchronised (adjtimex read-only), None if unknown."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        state = libc.adjtimex(ctypes.byref(_Timex()))
    except (OSError, AttributeError):
        return None
    if state < 0:
        return None
    return state != TIME_ERROR
