"""What authenticates an IPsec tunnel, checked before OVS sees it: the pre-shared key (its value
never in repr or str), the peer's certificate name, PEM file paths.

ovs-monitor-ipsec copies these values into ipsec.conf/ipsec.secrets, so anything that could add
configuration of its own (newlines, quotes) is refused here.

Place: docs/architecture.md, "Layers": pure layer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ovsnet.errors import InvalidInput

PSK_MIN_LENGTH = 32
PSK_MAX_LENGTH = 512
# What ovs-monitor-ipsec copies into ipsec.conf/ipsec.secrets unquoted or in double quotes:
# a newline or quote there would let a value add configuration of its own.
_PSK_CHARS = re.compile(r"^[\x21\x23-\x7e]+$")  # printable ASCII except space and '"'
_NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,62}[A-Za-z0-9])?$")
_PATH = re.compile(r"^/[^\s\"'#,]+$")


@dataclass(frozen=True, repr=False)
class Psk:
    """A pre-shared key. Its repr and str never show the value (tracebacks, logs, f-strings)."""

    value: str = field(repr=False)

    def __repr__(self) -> str:
        return f"Psk(<{len(self.value)} characters>)"

    __str__ = __repr__


def validate_psk(text: str, source: str = "the PSK") -> Psk:
    """A PSK ovs-monitor-ipsec can write safely and that is long enough to resist guessing."""
    if len(text) < PSK_MIN_LENGTH:
        raise InvalidInput(
            f"{source} has {len(text)} characters; at least {PSK_MIN_LENGTH} are required",
            "generate one with `openssl rand -base64 48`",
        )
    if len(text) > PSK_MAX_LENGTH:
        raise InvalidInput(f"{source} is longer than {PSK_MAX_LENGTH} characters")
    if not _PSK_CHARS.fullmatch(text):
        # Never say which character: that would reveal part of the secret.
        raise InvalidInput(
            f"{source} contains spaces, quotes, control or non-ASCII characters",
            "use printable ASCII without spaces or double quotes (e.g. openssl rand -base64 48)",
        )
    return Psk(text)


def psk_from_file_bytes(data: bytes, source: str) -> Psk:
    """The PSK in a file's content: one line, the trailing newline stripped."""
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise InvalidInput(f"{source} is not ASCII text", "put the PSK on one line") from None
    if text.endswith("\r\n"):
        text = text[:-2]
    elif text.endswith("\n"):
        text = text[:-1]
    if "\n" in text or "\r" in text:
        raise InvalidInput(f"{source} holds more than one line", "put only the PSK in the file")
    return validate_psk(text, source)


def check_remote_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise InvalidInput(
            f"remote name {name!r} is not a certificate common name ovsnet can use",
            "give the peer's host name as in `ovsnet pki issue HOST`",
        )
    return name


def check_pem_path(path: str, what: str) -> str:
    if not _PATH.fullmatch(path):
        raise InvalidInput(
            f"{what} path {path!r} must be absolute, without spaces, quotes, ',' or '#'",
            "strongSwan reads it from ipsec.conf, which cannot quote such paths",
        )
    return path
