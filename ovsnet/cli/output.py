"""One renderer for every command: rich text for people, one JSON document for `--json`."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass
class Settings:
    """Global options, shared by every command through typer's context."""

    db: str
    json: bool = False
    lock_wait: float | None = None  # None: OVSNET_LOCK_WAIT or ovsnet.hostlock.DEFAULT_WAIT


# Whether this process already wrote its one JSON document: a command that reports and then
# fails (`status --check`, `doctor`) has said everything, and stdout must stay one document.
json_written = False


class Result(Protocol):
    """What a command hands to `emit`: named `...Result` (or `ChangeReport`, the changing
    commands' shared shape) and defined beside the code that builds it, never in a CLI module
    (docs/decisions.md, "Command results: one suffix, beside their producer")."""

    def as_json(self) -> Any: ...

    def render(self, console) -> None: ...


def emit(settings: Settings, result: Result) -> None:
    if settings.json:
        # NOTE(perf): indented JSON goes through the json module's pure-Python encoder (0.04 s
        # for `status` at 1,000 peers); piped output, for programs, takes the C one.
        indent = 2 if sys.stdout.isatty() else None
        sys.stdout.write(json.dumps(result.as_json(), indent=indent, sort_keys=True) + "\n")
        global json_written
        json_written = True
        return
    from rich.console import Console

    # Piped output keeps whole table rows: rich would squeeze them into 80 columns.
    width = None if sys.stdout.isatty() else 120
    result.render(Console(highlight=False, width=width))
