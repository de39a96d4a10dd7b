"""`ovsnet init`, `ovsnet status`, `ovsnet reset`."""

from __future__ import annotations

from typing import Annotated

import typer

from ovsnet.cli.locking import changing_host
from ovsnet.cli.options import (
    Bridge,
    Datapath,
    DockerBridge,
    DockerBridgeRecorded,
    DryRun,
    Supernet,
)
from ovsnet.cli.output import Settings, emit
from ovsnet.model import DEFAULT_BRIDGE, DEFAULT_DOCKER_BRIDGE


def init(
    ctx: typer.Context,
    prefix: Annotated[
        str | None, typer.Option("--prefix", help="The host's /24 as A.B.C (10.0.42).")
    ] = None,
    subnet: Annotated[
        str | None, typer.Option("--subnet", help="The host's subnet as a CIDR.")
    ] = None,
    supernet: Supernet = "10.0.0.0/8",
    bridge: Bridge = DEFAULT_BRIDGE,
    docker_bridge: DockerBridge = DEFAULT_DOCKER_BRIDGE,
    datapath: Datapath = "system",
    underlay_mtu: Annotated[
        int | None, typer.Option("--underlay-mtu", help="Default: detected.")
    ] = None,
    ipsec: Annotated[
        bool, typer.Option("--ipsec", help="Leave room in the MTU for IPsec.")
    ] = False,
    docker_host: Annotated[
        str | None,
        typer.Option(
            "--docker-host",
            envvar="OVSNET_DOCKER_HOST",
            help="Docker API to check the options against (default: the local socket, if any).",
        ),
    ] = None,
    docker_tls: Annotated[
        str | None,
        typer.Option(
            "--docker-tls", help="Client certificate dir for a tcp:// Docker API (mutual TLS)."
        ),
    ] = None,
    docker_check: Annotated[
        bool,
        typer.Option(
            "--docker-check/--no-docker-check", help="Compare Docker's bip, fixed-cidr, mtu."
        ),
    ] = True,
    dry_run: DryRun = False,
) -> None:
    """Create the OVS bridge, move the docker bridge's address onto it and attach it."""
    from ovsnet.addressing import host_addressing
    from ovsnet.netlink import Netlink
    from ovsnet.ovsdb.client import OvsDb
    from ovsnet.services.host import DockerCheck, InitRequest, init_host

    settings: Settings = ctx.obj
    addressing = host_addressing(prefix=prefix, subnet=subnet, supernet=supernet)
    check = DockerCheck(docker_host, docker_tls, required=bool(docker_host or docker_tls))
    request = InitRequest(
        addressing=addressing,
        bridge=bridge,
        docker_bridge=docker_bridge,
        datapath=datapath,
        underlay_mtu=underlay_mtu,
        ipsec=ipsec,
        docker=check if docker_check else None,
    )
    with changing_host(settings, "init", dry_run), OvsDb(settings.db) as db, Netlink() as net:
        emit(settings, init_host(db, net, request, dry_run=dry_run))


def status(
    ctx: typer.Context,
    bridge: Bridge = DEFAULT_BRIDGE,
    check: Annotated[
        bool,
        typer.Option(
            "--check",
            help="Exit 1 unless this host is healthy: bridge with the gateway, docker bridge "
            "attached, plaintext guard, ovs-vswitchd, IKE daemon with IPsec peers (peers not "
            "judged).",
        ),
    ] = False,
    check_peers: Annotated[
        bool,
        typer.Option("--check-peers", help="Like --check, and also exit 1 when a peer is down."),
    ] = False,
) -> None:
    """Show the bridge, subnet, gateway, MTU, docker bridge and every peer."""
    from ovsnet.cli.hot_commands import show_status

    show_status(ctx.obj, bridge, check, check_peers)


def reset(
    ctx: typer.Context,
    bridge: Bridge = DEFAULT_BRIDGE,
    docker_bridge: DockerBridgeRecorded = None,
    dry_run: DryRun = False,
) -> None:
    """Remove ovsnet's tunnels and bridge and give the address back to the docker bridge."""
    from ovsnet.netlink import Netlink
    from ovsnet.ovsdb.client import OvsDb
    from ovsnet.services.host import reset_host

    settings: Settings = ctx.obj
    with changing_host(settings, "reset", dry_run), OvsDb(settings.db) as db, Netlink() as net:
        emit(settings, reset_host(db, net, bridge, docker_bridge, dry_run=dry_run))


def register(app: typer.Typer) -> None:
    app.command()(init)
    app.command()(status)
    app.command()(reset)
