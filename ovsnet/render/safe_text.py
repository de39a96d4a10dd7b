"""What may land in a rendered file unquoted (pure): command-line tokens, host paths, images.

Rendered values are addresses, numbers, paths or image references; anything else is refused
rather than quoted (systemd treats `%` and `$` specially, shells more).
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath

from ovsnet.errors import InvalidInput

_SAFE_TOKEN = re.compile(r"^[A-Za-z0-9._:/@=+,-]+$")
_SAFE_PATH = re.compile(r"^[A-Za-z0-9._/-]+$")


def command_line(argv: list[str]) -> str:
    """A command line for an Exec*= setting or a shell script.

    Every token ovsnet renders is an address, a number, a path or an image reference; refuse
    anything else rather than quote it (systemd treats `%` and `$` specially, shells more).
    """
    for token in argv:
        if not _SAFE_TOKEN.fullmatch(token):
            raise InvalidInput(f"{token!r} cannot be used in a rendered command line")
    return " ".join(argv)


def check_tls_dir(directory: str) -> str:
    return check_host_path(directory, "Docker TLS folder", "a folder like /etc/docker/tls")


def check_host_path(given: str, what: str, example: str = "/var/lib/ovsnet/image.tar.gz") -> str:
    path = PurePosixPath(given.strip())
    text = str(path)
    if (
        not path.is_absolute()
        or text == "/"
        or ".." in path.parts
        or not _SAFE_PATH.fullmatch(text)
    ):
        raise InvalidInput(
            f"{what} {given!r} is not an absolute path on the host",
            f"give {example} (letters, digits, . _ - / only)",
        )
    return text


def check_image(image: str) -> str:
    image = image.strip()
    if not _SAFE_TOKEN.fullmatch(image) or image.startswith("-"):
        raise InvalidInput(
            f"image {image!r} is not a container image reference",
            "give a reference like ghcr.io/ovsnet/ovsnet:0.1.0",
        )
    return image
