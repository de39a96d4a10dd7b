"""One error family for everything a user can cause or fix.

Adapters wrap foreign exceptions (ovsdbapp, ovs, pyroute2, docker, the etcd client, and the OS's
for the commands they run) into these where they call them; only the CLI edge catches them and
turns them into a one-line message and an exit code (docs/architecture.md, "CLI contract").
A real bug is not an OvsnetError and still shows its traceback.

Place: docs/architecture.md, "Layers": shared by every layer; caught only at the CLI edge.
"""

from __future__ import annotations


class OvsnetError(Exception):
    """Base class: a message for the user, optionally a hint saying what to do."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def one_line(self) -> str:
        text = self.message if not self.hint else f"{self.message}; {self.hint}"
        return " ".join(text.split())


class InvalidInput(OvsnetError):
    """Bad input or usage; nothing was changed."""

    exit_code = 2


class NotReady(OvsnetError):
    """The environment is not ready (OVSDB unreachable, no docker bridge, OVS too old)."""

    exit_code = 3


class OperationFailed(OvsnetError):
    """Anything else that went wrong while applying a change (after rollback)."""

    exit_code = 1
