"""A man page (roff) for the whole command tree, generated from click's commands and options.

Pure: takes the root click command and returns text, so the page never drifts from `--help`.

Place: docs/architecture.md, "Layers": CLI edge (pure: click commands in, roff out).
"""

from __future__ import annotations

from collections.abc import Iterator

import click

SECTION = "1"


def manpage(root: click.Command, name: str, version: str, date: str) -> str:
    """The page for `name`: a synopsis, then every visible command in tree order."""
    lines = [
        f'.TH {_upper(name)} {SECTION} "{date}" "{name} {version}" "User Commands"',
        ".SH NAME",
        f"{name} \\- {_escape(_first_sentence(root.help or ''))}",
        ".SH SYNOPSIS",
        f".B {name}",
        "[\\fIOPTIONS\\fR] \\fICOMMAND\\fR [\\fIARGS\\fR]...",
        ".SH DESCRIPTION",
        _escape(root.help or ""),
        ".SH GLOBAL OPTIONS",
        *_options(root),
        ".SH COMMANDS",
    ]
    for path, command in walk(root, name):
        if command is root:
            continue
        lines += [".SS " + _escape(path), _escape(command.help or command.short_help or "")]
        lines += _options(command)
    lines += [
        ".SH EXIT STATUS",
        "0 success (including nothing to do); 2 bad input or usage; 3 the environment is not "
        "ready; 1 any other failure. \\fBdoctor\\fR exits 1 when a check fails.",
    ]
    return "\n".join(lines) + "\n"


def walk(command: click.Command, path: str) -> Iterator[tuple[str, click.Command]]:
    """(path, command) for `command` and every visible subcommand below it, sorted by name."""
    yield path, command
    if isinstance(command, click.Group):
        for sub_name in sorted(command.commands):
            sub = command.commands[sub_name]
            if not sub.hidden:
                yield from walk(sub, f"{path} {sub_name}")


def _options(command: click.Command) -> list[str]:
    lines = []
    ctx = click.Context(command, info_name=command.name)
    for param in command.get_params(ctx):
        record = param.get_help_record(ctx)
        if record is None:
            if isinstance(param, click.Argument):
                lines += [".TP", f"\\fI{_escape(param.human_readable_name)}\\fR", "argument"]
            continue
        synopsis, text = record
        lines += [".TP", f"\\fB{_escape(synopsis)}\\fR", _escape(text)]
    return lines


def _first_sentence(text: str) -> str:
    return text.strip().split("\n")[0].rstrip(".")


def _upper(name: str) -> str:
    return name.upper().replace(" ", "-")


def _escape(text: str) -> str:
    """roff: backslashes doubled, hyphens literal, no line may start with a control character."""
    text = " ".join(text.replace("\b", "").split())
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return "\\&" + text if text.startswith((".", "'")) else text
