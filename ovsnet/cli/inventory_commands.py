"""`ovsnet inventory allocate`: give every host of a fleet inventory its own /24."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ovsnet.cli.options import DryRun

inventory_app = typer.Typer(help="Fleet inventory: hosts, underlay IPs and their /24s.")


@inventory_app.command("allocate")
def allocate_command(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="The inventory (YAML), rewritten in place.")],
    dry_run: DryRun = False,
) -> None:
    """Give every host without a prefix a free /24 of the supernet; write the file back."""
    from ovsnet.cli.output import emit
    from ovsnet.services.inventory import allocate_file

    emit(ctx.obj, allocate_file(path, dry_run))


def register(app: typer.Typer) -> None:
    app.add_typer(inventory_app, name="inventory")
