"""`ovsnet doctor`: check what usually breaks an overlay and say how to fix each."""

from __future__ import annotations

from typing import Annotated

import typer

from ovsnet.cli.options import Bridge
from ovsnet.cli.output import Settings, emit
from ovsnet.errors import OperationFailed
from ovsnet.model import DEFAULT_BRIDGE


def doctor(
    ctx: typer.Context,
    bridge: Bridge = DEFAULT_BRIDGE,
    docker_host: Annotated[
        str | None,
        typer.Option("--docker-host", envvar="OVSNET_DOCKER_HOST", help="Docker API to check."),
    ] = None,
    docker_tls: Annotated[
        str | None,
        typer.Option("--docker-tls", help="Client certificate dir for a tcp:// Docker API."),
    ] = None,
    probe_timeout: Annotated[
        float,
        typer.Option("--probe-timeout", min=0.1, help="Seconds to wait for MTU probe replies."),
    ] = 1.5,
) -> None:
    """Check path MTU per tunnel, br_netfilter, Docker options, the plaintext guard, IKE and BFD
    per peer, the clock and kernel modules. Exits 1 when any check fails."""
    from ovsnet.netlink import Netlink
    from ovsnet.ovsdb.client import OvsDb
    from ovsnet.services.doctor import DoctorRequest, run_doctor

    settings: Settings = ctx.obj
    request = DoctorRequest(bridge, docker_host, docker_tls, probe_timeout)
    with OvsDb(settings.db) as db, Netlink() as net:
        report = run_doctor(db, net, request)
    emit(settings, report)
    if report.failed:
        names = ", ".join(c.check for c in report.failed)
        raise OperationFailed(f"{len(report.failed)} check(s) failed: {names}")


def register(app: typer.Typer) -> None:
    app.command()(doctor)
