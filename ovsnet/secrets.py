"""One rule for every secret file ovsnet reads: PSK files, private keys, the etcd client key.

A secret file must be a regular file owned by root or by the user running ovsnet, with no
permission bits for its group or for others (0600 or 0400). Anything else is refused before
the secret is used, with the same one-line message and exit 2: a key others could read may
already be in their hands, and one others can write may be theirs.

Place: docs/architecture.md, "Layers": shared by facades and services (reading secret
files).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from ovsnet.errors import InvalidInput

MAX_SECRET_FILE = 65536  # a PEM key with its chain fits many times over


def file_problem(mode: int, owner: int, user: int) -> str | None:
    """What is wrong with a secret file's owner and mode, or None. Pure."""
    if not stat.S_ISREG(mode):
        return "is not a regular file"
    if owner not in (0, user):
        return f"belongs to uid {owner}, not to root or the user running ovsnet"
    if mode & 0o077:
        return f"is open to its group or to others (mode {stat.S_IMODE(mode):04o})"
    return None


def read_secret_file(path: str | os.PathLike, what: str, limit: int = MAX_SECRET_FILE) -> bytes:
    """The content of a secret file that passes the rule (one open: no check-then-read race)."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise InvalidInput(
            f"cannot read {what} {path}: {exc.strerror}", "give a readable file"
        ) from None
    try:
        info = os.fstat(fd)
        problem = file_problem(info.st_mode, info.st_uid, os.geteuid())
        if problem:
            raise InvalidInput(
                f"{what} {path} {problem}",
                f"make it a regular file, owned by root (or you), mode 0600: chmod 600 {path}; "
                "if others could read it, replace the secret",
            )
        data = os.read(fd, limit + 1)
    finally:
        os.close(fd)
    if len(data) > limit:
        raise InvalidInput(f"{what} {path} is larger than {limit} bytes", "give the right file")
    return data


def check_secret_file(path: str | os.PathLike, what: str) -> None:
    """Apply the rule to a secret file another library reads (the etcd client key, gRPC)."""
    read_secret_file(path, what)
