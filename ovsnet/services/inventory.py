"""`ovsnet inventory allocate`: give every host of an inventory file its /24 and write it back.

Place: docs/architecture.md, "Packages and what they own": the services layer (the pure
allocation is `ovsnet.inventory.allocate`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ovsnet import inventory
from ovsnet.inventory import AllocationReport


@dataclass(frozen=True)
class AllocateResult:
    """What `ovsnet inventory allocate` did to one inventory file (with --dry-run: would do)."""

    path: str
    report: AllocationReport
    written: bool
    dry_run: bool

    def as_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "changed": self.report.changed,
            "written": self.written,
            "hosts": [entry.as_json() for entry in self.report.hosts],
            "removed": [{"name": n, "prefix": p} for n, p in self.report.removed],
        }

    def render(self, console: Any) -> None:  # a rich Console, imported only to print
        from rich.table import Table

        table = Table("host", "underlay IP", "subnet", "status")
        for entry in self.report.hosts:
            table.add_row(entry.name, str(entry.ip), f"{entry.prefix}.0/24", entry.status)
        console.print(table)
        for name, prefix in self.report.removed:
            console.print(
                f"removed host {name} still holds {prefix}.0/24 (reserved: delete its line "
                "under allocations to free it)"
            )
        if not self.report.changed:
            console.print(f"nothing to do: {self.path} is already allocated")
        elif self.dry_run:
            console.print(f"dry run: {self.path} not written")
        else:
            console.print(f"wrote {self.path}")


def allocate_file(path: Path, dry_run: bool = False) -> AllocateResult:
    """`ovsnet inventory allocate`: allocate the inventory at `path` and write it back, unless
    nothing changed or `dry_run`."""
    report = inventory.allocate(inventory.load(path))
    written = report.changed and not dry_run
    if written:
        inventory.save(path, report.inventory)
    return AllocateResult(str(path), report, written, dry_run)
