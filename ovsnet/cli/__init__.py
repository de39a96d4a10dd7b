"""The CLI edge: the only place that turns ovsnet's errors into messages and exit codes."""

from __future__ import annotations

import sys

import click

from ovsnet.errors import OvsnetError


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `ovsnet` command. Returns (and exits with) the exit code."""
    from ovsnet.cli.app import app_for

    args = sys.argv[1:] if argv is None else argv
    try:
        result = app_for(args)(args=args, prog_name="ovsnet", standalone_mode=False)
        code = result if isinstance(result, int) else 0
    except OvsnetError as exc:
        print(f"ovsnet: error: {exc.one_line()}", file=sys.stderr)
        code = exc.exit_code
    except click.exceptions.Exit as exc:
        code = exc.exit_code
    except click.UsageError as exc:
        command = exc.ctx.command_path if exc.ctx else "ovsnet"
        print(f"ovsnet: error: {exc.format_message()} (see `{command} --help`)", file=sys.stderr)
        code = 2
    except click.ClickException as exc:
        print(f"ovsnet: error: {exc.format_message()}", file=sys.stderr)
        code = exc.exit_code
    except click.exceptions.Abort:
        print("ovsnet: aborted", file=sys.stderr)
        code = 1
    if argv is None:
        sys.exit(code)
    return code
