"""Every command that accepts a shared option takes it from ovsnet/cli/options.py: same help
text, same environment variable. A command declaring its own --dry-run, --bridge, --datapath
(or any other shared option) with different words or a missing env var fails here."""

from __future__ import annotations

import typing

import click
import pytest
import typer.main
from typer.models import OptionInfo

from ovsnet.cli import options
from ovsnet.cli.app import app
from ovsnet.manpage import walk


def _vocabulary() -> dict[str, set[tuple[str | None, str | None]]]:
    """Each shared option name -> the (help, envvar) pairs options.py allows for it."""
    allowed: dict[str, set[tuple[str | None, str | None]]] = {}
    for value in vars(options).values():
        if typing.get_origin(value) is not typing.Annotated:
            continue
        for info in value.__metadata__:
            if isinstance(info, OptionInfo):
                envvar = info.envvar if isinstance(info.envvar, str | None) else None
                # In Annotated, typer takes the first positional (`default`) as a name.
                names = [info.default, *info.param_decls]
                for name in (n for n in names if isinstance(n, str) and n.startswith("-")):
                    allowed.setdefault(name, set()).add((info.help, envvar))
    return allowed


VOCABULARY = _vocabulary()
ROOT = typer.main.get_command(app)
COMMANDS = [(path, command) for path, command in walk(ROOT, "ovsnet")]


def _shared_options(command: click.Command):
    for param in command.params:
        if isinstance(param, click.Option):
            for name in param.opts:
                if name in VOCABULARY:
                    yield name, param


def test_the_vocabulary_holds_the_options_this_test_guards():
    for name in ("--dry-run", "--bridge", "--docker-bridge", "--datapath", "--etcd"):
        assert name in VOCABULARY


@pytest.mark.parametrize("path,command", COMMANDS, ids=[path for path, _ in COMMANDS])
def test_shared_options_come_from_the_vocabulary(path, command):
    for name, param in _shared_options(command):
        assert (param.help, param.envvar) in VOCABULARY[name], (
            f"{path} declares {name} itself (help {param.help!r}, envvar {param.envvar!r}): "
            "use the alias in ovsnet/cli/options.py"
        )


def test_every_datapath_option_reads_ovsnet_datapath():
    datapaths = [param for _, c in COMMANDS for n, param in _shared_options(c) if n == "--datapath"]
    assert len(datapaths) >= 3  # init, agent, supervise
    assert {param.envvar for param in datapaths} == {"OVSNET_DATAPATH"}


def test_one_dry_run_help_text():
    helps = {param.help for _, c in COMMANDS for n, param in _shared_options(c) if n == "--dry-run"}
    assert helps == {options.DRY_RUN_HELP}
