"""Options shared by several commands, defined once so they read and check the same everywhere."""

from __future__ import annotations

import typer

from ovsnet.validate import check_interface_name

METRICS_LISTEN = typer.Option(
    None,
    "--metrics-listen",
    envvar="OVSNET_METRICS_LISTEN",
    help="Serve Prometheus /metrics and /healthz on HOST:PORT (off by default).",
)
LOG_FORMAT = typer.Option(
    "text", "--log-format", envvar="OVSNET_LOG_FORMAT", help="Log lines: text or json."
)


def interface_name_option(ctx: typer.Context, param: typer.CallbackParam, value: str | None):
    """Refuse a name Linux cannot use before the command touches anything (exit 2)."""
    if value is None or ctx.resilient_parsing:
        return value
    return check_interface_name(value, f"--{param.name.replace('_', '-')}")


BRIDGE = typer.Option(
    "br0",
    "--bridge",
    callback=interface_name_option,
    help="OVS bridge that carries the overlay.",
)
DOCKER_BRIDGE = typer.Option(
    "docker0", "--docker-bridge", callback=interface_name_option, help="Docker's bridge."
)
DOCKER_BRIDGE_RECORDED = typer.Option(
    None, "--docker-bridge", callback=interface_name_option, help="Default: as init recorded."
)
