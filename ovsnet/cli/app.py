"""The root typer app: global options and the command groups."""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterable, Sequence
from typing import Annotated

import typer
import typer.core

from ovsnet import __version__
from ovsnet.cli.fast import DEFAULT_DB
from ovsnet.cli.output import Settings

# NOTE: typer escapes every "[default: ...]" for rich whenever rich is importable, even with
# rich_markup_mode=None, so plain click help printed a literal "\\[default: ...]". Telling its
# help formatter that rich is absent turns that off (rich stays in use for our own output).
typer.core.HAS_RICH = False

# Each command group lives in its own module; keep this table the only shared edit point.
# The first word of a command line -> the module that registers that command.
COMMAND_MODULES = {
    "init": "host_commands",
    "status": "host_commands",
    "reset": "host_commands",
    "peer": "peer_commands",
    "lab": "lab_commands",
    "pki": "pki_commands",
    "agent": "cluster_commands",
    "cluster": "cluster_commands",
    "ipsec": "ipsec_commands",
    "render": "render_commands",
    "render-examples": "render_commands",
    "inventory": "inventory_commands",
    "vmlab": "vmlab_commands",
    "supervise": "supervise_commands",
    "metrics": "metrics_commands",
    "doctor": "doctor_commands",
    "batch": "batch_commands",
    "completion": "meta_commands",
    "man": "meta_commands",
}
# Commands that read the whole command tree (the man page, completion scripts).
_WHOLE_TREE = {"man", "completion"}
# Global options that take a value (so the command is the word after it).
_VALUE_OPTIONS = {"--db", "--lock-wait", "--db-ssl-key", "--db-ssl-cert", "--db-ssl-ca"}


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"ovsnet {__version__}")
        raise typer.Exit()


def _global_options(
    ctx: typer.Context,
    db: Annotated[
        str | None,
        typer.Option(
            "--db", envvar="OVSNET_DB", help="OVSDB to talk to (default " + DEFAULT_DB + ")"
        ),
    ] = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print one JSON document on stdout.")
    ] = False,
    _version: Annotated[
        bool,
        typer.Option(
            "--version",
            is_eager=True,
            expose_value=False,
            callback=_print_version,
            help="Print the version and exit.",
        ),
    ] = False,
    lock_wait: Annotated[
        float | None,
        typer.Option(
            "--lock-wait",
            min=0,
            help="Seconds to wait for another ovsnet process changing this host "
            "(env OVSNET_LOCK_WAIT; default 30).",
        ),
    ] = None,
    db_ssl_key: Annotated[
        str | None,
        typer.Option(
            "--db-ssl-key", envvar="OVSNET_DB_SSL_KEY", help="--db ssl:...: client key (0600)."
        ),
    ] = None,
    db_ssl_cert: Annotated[
        str | None,
        typer.Option(
            "--db-ssl-cert", envvar="OVSNET_DB_SSL_CERT", help="--db ssl:...: client cert."
        ),
    ] = None,
    db_ssl_ca: Annotated[
        str | None,
        typer.Option(
            "--db-ssl-ca", envvar="OVSNET_DB_SSL_CA", help="--db ssl:...: the server's CA."
        ),
    ] = None,
) -> None:
    ctx.obj = Settings(db=db or DEFAULT_DB, json=json_output, lock_wait=lock_wait)
    if db_ssl_key or db_ssl_cert or db_ssl_ca:
        _use_db_ssl(ctx.obj.db, db_ssl_key, db_ssl_cert, db_ssl_ca)


def _use_db_ssl(db: str, key: str | None, cert: str | None, ca: str | None) -> None:
    from ovsnet.errors import InvalidInput
    from ovsnet.ovsdb.connection import SslFiles, use_ssl
    from ovsnet.secrets import check_secret_file

    if not db.startswith("ssl:"):
        raise InvalidInput(f"--db-ssl-* given, but --db {db} is not ssl:HOST:PORT")
    if not (key and cert and ca):
        raise InvalidInput("give all three of --db-ssl-key, --db-ssl-cert and --db-ssl-ca")
    check_secret_file(key, "OVSDB client key")
    use_ssl(SslFiles(key, cert, ca))


def build_app(modules: Iterable[str] | None = None) -> typer.Typer:
    """The root app with these command modules (default: all, in the table's order)."""
    root = typer.Typer(
        help="One flat, optionally encrypted network for Docker containers on many hosts, "
        "over OVS.",
        no_args_is_help=True,
        pretty_exceptions_show_locals=False,  # locals may hold secrets (PSKs, keys)
        # typer's --install-completion/--show-completion options import shellingham and probe
        # the parent process on every run; `ovsnet completion SHELL` prints the script instead.
        # Answering a completion request (_OVSNET_COMPLETE set) needs no option.
        add_completion=False,
        # Plain click help: typer's rich help imports rich and markdown-it, ~0.15 s of CPU
        # that kept `ovsnet --help` above its 0.3 s target.
        rich_markup_mode=None,
    )
    root.callback()(_global_options)
    for module in dict.fromkeys(modules or COMMAND_MODULES.values()):
        importlib.import_module(f"ovsnet.cli.{module}").register(root)
    return root


def app_for(argv: Sequence[str]) -> typer.Typer:
    """An app with only the command argv runs, when argv plainly names one; else every command.

    NOTE(perf): typer turns every registered command into a click command on each run (type
    hints evaluated, parameters built): with all 42 commands that was ~0.06 s of CPU, a third
    of what `status` spends beyond OVSDB at 1,000 peers. Help, completion and anything unusual
    get the full app.
    """
    args = list(argv)
    while args and args[0].startswith("-"):
        option = args.pop(0)
        if option in _VALUE_OPTIONS:
            if not args:
                return build_app()
            args.pop(0)
        elif option.split("=", 1)[0] not in _VALUE_OPTIONS | {"--json"}:
            return build_app()  # --help, --version, ...: they need every command
    if (
        not args
        or args[0] not in COMMAND_MODULES
        or args[0] in _WHOLE_TREE
        or "_OVSNET_COMPLETE" in os.environ
    ):
        return build_app()
    return build_app([COMMAND_MODULES[args[0]]])


app: typer.Typer  # `from ovsnet.cli.app import app`: set by __getattr__ below on first use


def __getattr__(name: str):
    # `from ovsnet.cli.app import app`: the full app, built on first use.
    if name == "app":
        global app
        app = build_app()
        return app
    raise AttributeError(name)
