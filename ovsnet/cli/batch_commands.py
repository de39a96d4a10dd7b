"""`ovsnet batch`: several ovsnet commands, in order, in one process."""

from __future__ import annotations

from typing import Annotated

import typer

from ovsnet.batch import SEPARATOR, split_steps
from ovsnet.cli.output import Settings
from ovsnet.errors import InvalidInput


def batch(
    ctx: typer.Context,
    commands: Annotated[
        list[str],
        typer.Argument(
            metavar=f"COMMAND [{SEPARATOR} COMMAND]...",
            help="ovsnet commands as you would type them after `ovsnet`.",
            show_default=False,
        ),
    ],
) -> int:
    """Run ovsnet commands one after the other in one process, stopping at the first that fails
    (the batch exits with its code): `ovsnet batch init --prefix 10.0.42 --then peer add
    198.51.100.2`. The rendered boot units use it: every ovsnet process pays for Python's
    start, which takes seconds on a small VM."""
    from ovsnet.cli import main

    settings: Settings = ctx.obj
    if settings.json:
        raise InvalidInput("--json is not for the batch", "give --json to one of its commands")
    shared = ["--db", settings.db]
    if settings.lock_wait is not None:
        shared += ["--lock-wait", str(settings.lock_wait)]
    for step in split_steps(commands):
        if code := main([*shared, *step]):
            return code
    return 0


def register(app: typer.Typer) -> None:
    app.command(
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    )(batch)
