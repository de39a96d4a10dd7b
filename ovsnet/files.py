"""Writing files so that they are never seen half-written or with looser permissions: key files,
PSK files, rendered first-boot files, the repair history.

Place: docs/architecture.md, "Layers": facade layer (the file system).
"""

from __future__ import annotations

import os
from pathlib import Path


def write_atomically(path: Path, data: bytes, mode: int) -> None:
    """Write `path` via a temporary file created with `mode`, so it never exists looser."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    try:
        os.fchmod(fd, mode)  # before any byte is written: the umask may have removed bits
        os.write(fd, data)
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    os.close(fd)
    os.replace(tmp, path)
