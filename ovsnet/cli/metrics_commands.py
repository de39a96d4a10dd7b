"""`ovsnet metrics`: Prometheus metrics and /healthz for a host run by other means."""

from __future__ import annotations

from typing import Annotated

import typer

from ovsnet.cli.options import Bridge
from ovsnet.cli.output import Settings
from ovsnet.model import DEFAULT_BRIDGE

METRICS_LISTEN_HELP = "Serve Prometheus /metrics and /healthz on HOST:PORT (off by default)."


def metrics(
    ctx: typer.Context,
    listen: Annotated[
        str, typer.Option("--listen", envvar="OVSNET_METRICS_LISTEN", help="HOST:PORT to serve on.")
    ],
    bridge: Bridge = DEFAULT_BRIDGE,
) -> None:
    """Serve /metrics (read from OVSDB at each scrape) and /healthz until SIGTERM/SIGINT.

    /healthz answers 200 when `ovsnet status --check` would pass, else 503 with the problems.
    `ovsnet supervise` and `ovsnet agent` serve the same with --metrics-listen.
    """
    from ovsnet.metrics import parse_listen, serve_host
    from ovsnet.signals import wait_for_stop

    settings: Settings = ctx.obj
    parse_listen(listen)  # a bad address is bad input: exit 2 before anything starts
    server = serve_host(listen, settings.db, bridge)
    try:
        wait_for_stop()
    finally:
        server.close()


def register(app: typer.Typer) -> None:
    app.command()(metrics)
