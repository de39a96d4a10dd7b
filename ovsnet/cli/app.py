"""The root typer app: global options and the command groups."""

from __future__ import annotations

import os

import typer

from ovsnet.cli.output import Settings

DEFAULT_DB = "unix:/var/run/openvswitch/db.sock"

app = typer.Typer(
    help="One flat, optionally encrypted network for Docker containers on many hosts, over OVS.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # locals may hold secrets (PSKs, keys)
    add_completion=False,
    # Plain click help: typer's rich help imports rich and markdown-it, ~0.15 s of CPU that
    # kept `ovsnet --help` above its 0.3 s target.
    rich_markup_mode=None,
)


@app.callback()
def _global_options(
    ctx: typer.Context,
    db: str = typer.Option(
        None, "--db", help="OVSDB to talk to (env OVSNET_DB; default " + DEFAULT_DB + ")"
    ),
    json_output: bool = typer.Option(False, "--json", help="Print one JSON document on stdout."),
    db_ssl_key: str = typer.Option(
        None, "--db-ssl-key", envvar="OVSNET_DB_SSL_KEY", help="--db ssl:...: client key (0600)."
    ),
    db_ssl_cert: str = typer.Option(
        None, "--db-ssl-cert", envvar="OVSNET_DB_SSL_CERT", help="--db ssl:...: client cert."
    ),
    db_ssl_ca: str = typer.Option(
        None, "--db-ssl-ca", envvar="OVSNET_DB_SSL_CA", help="--db ssl:...: the server's CA."
    ),
) -> None:
    ctx.obj = Settings(db=db or os.environ.get("OVSNET_DB") or DEFAULT_DB, json=json_output)
    if db_ssl_key or db_ssl_cert or db_ssl_ca:
        _use_db_ssl(ctx.obj.db, db_ssl_key, db_ssl_cert, db_ssl_ca)


def _use_db_ssl(db: str, key: str | None, cert: str | None, ca: str | None) -> None:
    from ovsnet.errors import InvalidInput
    from ovsnet.ovsdb import SslFiles, use_ssl
    from ovsnet.secrets import check_secret_file

    if not db.startswith("ssl:"):
        raise InvalidInput(f"--db-ssl-* given, but --db {db} is not ssl:HOST:PORT")
    if not (key and cert and ca):
        raise InvalidInput("give all three of --db-ssl-key, --db-ssl-cert and --db-ssl-ca")
    check_secret_file(key, "OVSDB client key")
    use_ssl(SslFiles(key, cert, ca))


def _register() -> None:
    # Each command group lives in its own module; keep this list the only shared edit point.
    from ovsnet.cli import (
        cluster_commands,
        host_commands,
        inventory_commands,
        ipsec_commands,
        lab_commands,
        peer_commands,
        pki_commands,
        render_commands,
        supervise_commands,
        vmlab_commands,
    )

    host_commands.register(app)
    peer_commands.register(app)
    lab_commands.register(app)
    pki_commands.register(app)
    cluster_commands.register(app)
    ipsec_commands.register(app)
    render_commands.register(app)
    inventory_commands.register(app)
    vmlab_commands.register(app)
    supervise_commands.register(app)


_register()
