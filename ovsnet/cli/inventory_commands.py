"""`ovsnet inventory allocate`: give every host of a fleet inventory its own /24."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ovsnet.cli.options import DryRun

if TYPE_CHECKING:  # loaded only when the command runs: `ovsnet --help` stays fast
    from ovsnet.inventory import AllocationReport

inventory_app = typer.Typer(help="Fleet inventory: hosts, underlay IPs and their /24s.")


@dataclass
class AllocateResult:
    path: str
    report: AllocationReport
    written: bool
    dry_run: bool

    def as_json(self) -> dict:
        return {
            "path": self.path,
            "changed": self.report.changed,
            "written": self.written,
            "hosts": [entry.as_json() for entry in self.report.hosts],
            "removed": [{"name": n, "prefix": p} for n, p in self.report.removed],
        }

    def render(self, console) -> None:
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


@inventory_app.command("allocate")
def allocate_command(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="The inventory (YAML), rewritten in place.")],
    dry_run: DryRun = False,
) -> None:
    """Give every host without a prefix a free /24 of the supernet; write the file back."""
    from ovsnet import inventory
    from ovsnet.cli.output import emit

    report = inventory.allocate(inventory.load(path))
    written = report.changed and not dry_run
    if written:
        inventory.save(path, report.inventory)
    emit(ctx.obj, AllocateResult(str(path), report, written, dry_run))


def register(app: typer.Typer) -> None:
    app.add_typer(inventory_app, name="inventory")
