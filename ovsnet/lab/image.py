"""The lab's container image, built offline: a root file system holding only a static busybox."""

from __future__ import annotations

import functools
import io
import tarfile
from pathlib import Path

from ovsnet.errors import NotReady
from ovsnet.lab.proc import run

IMAGE = "ovsnet-lab:busybox"
BUSYBOX = Path("/bin/busybox")
_DIRS = {
    "bin": 0o755,
    "etc": 0o755,
    "tmp": 0o1777,
    "root": 0o700,
    "proc": 0o755,
    "sys": 0o755,
    "dev": 0o755,
}
_FILES = {
    "etc/passwd": "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
    "etc/group": "root:x:0:\nnogroup:x:65534:\n",
}


def _is_static(binary: bytes) -> bool:
    # A dynamically linked ELF names its loader near the start of the file.
    return b"ld-linux" not in binary[:8192]


@functools.lru_cache(maxsize=1)
def rootfs_tar(busybox: Path = BUSYBOX) -> bytes:
    """A tar of the image's root: /bin/busybox plus one symlink per applet."""
    try:
        binary = busybox.read_bytes()
    except OSError:
        raise NotReady(f"{busybox} is missing", "install busybox-static") from None
    if not _is_static(binary):
        raise NotReady(f"{busybox} is not statically linked", "install busybox-static")
    applets = run([busybox, "--list"]).stdout.split()
    return build_tar(binary, applets)


def build_tar(binary: bytes, applets: list[str]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, mode in _DIRS.items():
            tar.addfile(_entry(name, tarfile.DIRTYPE, mode))
        for name, content in _FILES.items():
            data = content.encode()
            tar.addfile(_entry(name, tarfile.REGTYPE, 0o644, size=len(data)), io.BytesIO(data))
        tar.addfile(
            _entry("bin/busybox", tarfile.REGTYPE, 0o755, size=len(binary)), io.BytesIO(binary)
        )
        for applet in sorted(set(applets) - {"busybox"}):
            if "/" not in applet:
                link = _entry(f"bin/{applet}", tarfile.SYMTYPE, 0o777)
                link.linkname = "busybox"
                tar.addfile(link)
    return buffer.getvalue()


def _entry(name: str, kind: bytes, mode: int, size: int = 0) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.size = size
    return info
