"""Options shared by the long-running commands (`supervise`, `agent`), so they read alike."""

from __future__ import annotations

import typer

METRICS_LISTEN = typer.Option(
    None,
    "--metrics-listen",
    envvar="OVSNET_METRICS_LISTEN",
    help="Serve Prometheus /metrics and /healthz on HOST:PORT (off by default).",
)
LOG_FORMAT = typer.Option(
    "text", "--log-format", envvar="OVSNET_LOG_FORMAT", help="Log lines: text or json."
)
