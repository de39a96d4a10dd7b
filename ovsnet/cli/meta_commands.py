"""`ovsnet completion SHELL` and `ovsnet man`: the CLI describing itself."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import click
import typer

SHELLS = ("bash", "zsh", "fish")


def completion_command(
    shell: Annotated[str, typer.Argument(click_type=click.Choice(SHELLS), show_default=False)],
) -> None:
    """Print the shell completion script (bash: `ovsnet completion bash >
    /etc/bash_completion.d/ovsnet`; zsh: into a file named _ovsnet on $fpath; fish: into
    ~/.config/fish/completions/ovsnet.fish)."""
    # typer's own script: its completion classes answer the _OVSNET_COMPLETE requests the
    # script makes, whatever shell asked.
    from typer._completion_shared import get_completion_script

    script = get_completion_script(prog_name="ovsnet", complete_var="_OVSNET_COMPLETE", shell=shell)
    sys.stdout.write(script.rstrip("\n") + "\n")


def man_command(
    ctx: typer.Context,
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Write here, not to stdout.")
    ] = None,
) -> None:
    """Print the man page (roff) of every command, e.g. `ovsnet man | man -l -`."""
    from ovsnet import __version__
    from ovsnet.manpage import manpage

    root = ctx.find_root().command
    # The release date would make the page change on every run; the version dates it enough.
    text = manpage(root, "ovsnet", __version__, date=__version__)
    if output is None:
        sys.stdout.write(text)
        return
    try:
        output.write_text(text)
    except OSError as exc:
        from ovsnet.errors import InvalidInput

        raise InvalidInput(f"cannot write {output}: {exc.strerror}") from exc


def register(app: typer.Typer) -> None:
    app.command("completion")(completion_command)
    app.command("man")(man_command)
