"""Results that commands return and the CLI renders (rich text or one JSON document).

Place: docs/architecture.md, "Layers": results, passed from services to the CLI edge.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class ChangeReport:
    """What a changing command did (or, with --dry-run, would do)."""

    command: str
    steps: list[str]
    dry_run: bool = False
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return bool(self.steps) and not self.dry_run

    def as_json(self) -> dict[str, Any]:
        return {
            "command": self.command,
            "changed": self.changed,
            "dry_run": self.dry_run,
            "steps": self.steps,
            **self.details,
        }

    def render(self, console: Any) -> None:  # a rich Console, imported only to print
        if not self.steps:
            console.print(f"{self.command}: nothing to do")
        else:
            verb = "would" if self.dry_run else "did"
            console.print(f"{self.command}: {verb}:")
            for step in self.steps:
                console.print(f"  - {step}")
        for key, value in self.details.items():
            if isinstance(value, (str, int, float)):
                console.print(f"  {key}: {value}")
