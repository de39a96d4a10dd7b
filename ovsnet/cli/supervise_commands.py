"""`ovsnet supervise`: the companion container's foreground process."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ovsnet.cli.options import (
    Datapath,
    LogFormat,
    MetricsListen,
    SupervisedBridge,
    SupervisedDockerBridge,
    SupervisedSupernet,
)
from ovsnet.cli.output import Settings
from ovsnet.errors import InvalidInput
from ovsnet.model import DEFAULT_BRIDGE, DEFAULT_DOCKER_BRIDGE


def supervise(
    ctx: typer.Context,
    datapath: Datapath = "system",
    prefix: Annotated[
        str | None,
        typer.Option("--prefix", envvar="OVSNET_PREFIX", help="Run `init` for this /24 (A.B.C)."),
    ] = None,
    subnet: Annotated[
        str | None, typer.Option("--subnet", envvar="OVSNET_SUBNET", help="Or as a CIDR.")
    ] = None,
    supernet: SupervisedSupernet = "10.0.0.0/8",
    underlay_mtu: Annotated[
        int | None, typer.Option("--underlay-mtu", envvar="OVSNET_UNDERLAY_MTU")
    ] = None,
    peers: Annotated[
        str | None,
        typer.Option(
            "--peers", envvar="OVSNET_PEERS", help="Peers' underlay IPs, comma-separated."
        ),
    ] = None,
    peers_file: Annotated[
        Path | None,
        typer.Option(
            "--peers-file",
            envvar="OVSNET_PEERS_FILE",
            help="A `peer sync` file (re-read when it changes): exactly these peers.",
        ),
    ] = None,
    bridge: SupervisedBridge = DEFAULT_BRIDGE,
    docker_bridge: SupervisedDockerBridge = DEFAULT_DOCKER_BRIDGE,
    ipsec: Annotated[
        bool,
        typer.Option(
            "--ipsec/--no-ipsec",
            envvar="OVSNET_IPSEC",
            help="Run strongSwan and ovs-monitor-ipsec from the start (else once a peer uses "
            "IPsec).",
        ),
    ] = False,
    psk_file: Annotated[
        Path | None,
        typer.Option(
            "--psk-file",
            envvar="OVSNET_PSK_FILE",
            help="With --ipsec: the configured peers' PSK file (default: `ovsnet ipsec psk set`).",
        ),
    ] = None,
    allow_downgrade: Annotated[
        bool,
        typer.Option(
            "--allow-downgrade",
            envvar="OVSNET_ALLOW_DOWNGRADE",
            help="Allow rewriting existing IPsec tunnels to the configured peers as plaintext.",
        ),
    ] = False,
    hook_dir: Annotated[
        Path,
        typer.Option(
            "--hook-dir", envvar="OVSNET_HOOK_DIR", help="Executables run after OVS (re)starts."
        ),
    ] = Path("/etc/ovsnet/hooks.d"),
    metrics_listen: MetricsListen = None,
    log_format: LogFormat = "text",
) -> None:
    """Run OVS, join the overlay and keep it healed (the companion container's entry point).

    Starts ovsdb-server and ovs-vswitchd, runs `init` and adds the peers when a prefix or
    subnet is given, then stays in the foreground: re-attaches the docker bridge whenever
    Docker puts the gateway back on it, restarts a daemon that dies, stops them on SIGTERM.
    """
    from ovsnet import logs
    from ovsnet.companion.config import CompanionConfig, parse_peers
    from ovsnet.companion.daemons import OvsPaths
    from ovsnet.companion.supervisor import Supervisor

    settings: Settings = ctx.obj
    config = CompanionConfig(
        datapath=datapath,
        prefix=prefix or None,
        subnet=subnet or None,
        supernet=supernet,
        underlay_mtu=underlay_mtu,
        peers=parse_peers(peers),
        peers_file=peers_file,
        bridge=bridge,
        docker_bridge=docker_bridge,
        ipsec=ipsec,
        psk_file=psk_file,
        allow_downgrade=allow_downgrade,
        hook_dir=hook_dir,
    )
    if not settings.db.startswith("unix:"):
        raise InvalidInput(
            f"supervise runs its own ovsdb-server, so --db {settings.db} cannot be used",
            "give a unix: socket path (default unix:/var/run/openvswitch/db.sock)",
        )
    paths = OvsPaths(rundir=Path(settings.db.removeprefix("unix:")).parent)
    logs.check_log_format(log_format)
    if metrics_listen:
        from ovsnet.metrics import parse_listen

        parse_listen(metrics_listen)  # bad input: exit 2 before OVS starts
    logs.configure(log_format, "ovsnet supervise")
    server = None
    if metrics_listen:
        from ovsnet.metrics import serve_host

        server = serve_host(metrics_listen, settings.db, bridge)
    try:
        code = Supervisor(config, paths).run()
    finally:
        if server is not None:
            server.close()
    raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    app.command()(supervise)
