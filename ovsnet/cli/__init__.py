"""The CLI edge: the only place that turns ovsnet's errors into messages and exit codes.

Place: docs/architecture.md, "Packages and what they own": the CLI edge.
"""

from __future__ import annotations

import json
import os
import sys

from ovsnet.errors import OvsnetError


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `ovsnet` command. Returns (and exits with) the exit code."""
    from ovsnet.cli import output
    from ovsnet.cli.fast import recognise

    output.json_written = False  # main() may run more than once in a process (tests)

    if "_OVSNET_COMPLETE" in os.environ:
        # A request from the script of `ovsnet completion SHELL`: answer with typer's classes
        # for zsh/fish/bash (registered only here: app.py leaves typer's completion options off).
        from typer._completion_classes import completion_init

        completion_init()
    args = sys.argv[1:] if argv is None else argv
    fast = recognise(args, os.environ)
    code = _run_fast(args, fast) if fast is not None else _run_typer(args)
    if argv is None:
        sys.exit(code)
    return code


def _run_fast(args: list[str], command) -> int:
    """A status or peer sync command line, without typer and click (ovsnet.cli.fast)."""
    from ovsnet.cli.hot_commands import run_fast

    try:
        run_fast(command)
    except OvsnetError as exc:
        return _fail(args, exc.exit_code, exc.message, exc.hint)
    except KeyboardInterrupt:
        print(file=sys.stderr)  # as click does on ^C: end the line the terminal was on
        return _fail(args, 1, "aborted")
    return 0


def _run_typer(args: list[str]) -> int:
    import click

    from ovsnet.cli.app import app_for

    try:
        result = app_for(args)(args=args, prog_name="ovsnet", standalone_mode=False)
        code = result if isinstance(result, int) else 0
    except OvsnetError as exc:
        code = _fail(args, exc.exit_code, exc.message, exc.hint)
    except click.exceptions.Exit as exc:
        code = exc.exit_code
    except click.UsageError as exc:
        command = exc.ctx.command_path if exc.ctx else "ovsnet"
        hint = f"see `{command} --help`"
        code = _fail(args, 2, exc.format_message(), hint, line=f"{exc.format_message()} ({hint})")
    except click.ClickException as exc:
        code = _fail(args, exc.exit_code, exc.format_message())
    except click.exceptions.Abort:
        code = _fail(args, 1, "aborted")
    return code


def _fail(
    args: list[str], code: int, message: str, hint: str | None = None, line: str | None = None
) -> int:
    """One line on stderr; with --json also one error document on stdout, for scripts."""
    text = line or (message if not hint else f"{message}; {hint}")
    print(f"ovsnet: error: {' '.join(text.split())}", file=sys.stderr)
    from ovsnet.cli import output

    if _wants_json(args) and not output.json_written:
        document = {"error": {"code": code, "message": " ".join(message.split()), "hint": hint}}
        sys.stdout.write(json.dumps(document, indent=2, sort_keys=True) + "\n")
    return code


def _wants_json(args: list[str]) -> bool:
    """Whether the global --json came before the command (read from argv: a failure may come
    before typer has parsed the global options)."""
    value_of_db = False
    for arg in args:
        if value_of_db:
            value_of_db = False
        elif arg == "--json":
            return True
        elif arg == "--db":
            value_of_db = True
        elif not arg.startswith("-"):
            return False  # the command: its own options are not global
    return False
