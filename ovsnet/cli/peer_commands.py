"""`ovsnet peer add/remove/sync/list`."""

from __future__ import annotations

from pathlib import Path

import typer

from ovsnet.cli.output import Settings, emit
from ovsnet.errors import InvalidInput

peer_app = typer.Typer(help="Tunnels to other hosts.", no_args_is_help=True)

BRIDGE = typer.Option("br0", "--bridge", help="OVS bridge that carries the overlay.")
TYPE = typer.Option("gre", "--type", help="Tunnel type: gre, vxlan or geneve.")
DRY_RUN = typer.Option(False, "--dry-run", help="Show what would change.")


def _add(settings: Settings, peers, bridge, tunnel_type, dry_run, exact=False) -> None:
    from ovsnet.netlink import Netlink
    from ovsnet.ovsdb import OvsDb
    from ovsnet.services.peers import PeerRequest, add_peers

    request = PeerRequest(bridge=bridge, peers=tuple(peers), tunnel_type=tunnel_type)
    with OvsDb(settings.db) as db, Netlink() as net:
        emit(settings, add_peers(db, net, request, dry_run=dry_run, exact=exact))


@peer_app.command("add")
def add(
    ctx: typer.Context,
    remote_ips: list[str] = typer.Argument(
        ..., metavar="REMOTE_IP...", help="Peers' underlay IPs."
    ),
    ipsec: bool = typer.Option(False, "--ipsec", help="Encrypt and authenticate with IPsec."),
    bridge: str = BRIDGE,
    tunnel_type: str = TYPE,
    dry_run: bool = DRY_RUN,
) -> None:
    """Add a tunnel port to each peer (all in one OVSDB transaction)."""
    if ipsec:
        raise InvalidInput("--ipsec is not yet supported", "add the peer without --ipsec for now")
    _add(ctx.obj, remote_ips, bridge, tunnel_type, dry_run)


@peer_app.command("sync")
def sync(
    ctx: typer.Context,
    peers_file: Path = typer.Argument(
        ..., metavar="FILE", help="One peer IP per line (# comments)."
    ),
    bridge: str = BRIDGE,
    tunnel_type: str = TYPE,
    dry_run: bool = DRY_RUN,
) -> None:
    """Make the tunnels exactly the file's peers: add the missing, remove the rest."""
    _add(ctx.obj, read_peers_file(peers_file), bridge, tunnel_type, dry_run, exact=True)


def read_peers_file(path: Path) -> list[str]:
    try:
        text = path.read_text() if str(path) != "-" else __import__("sys").stdin.read()
    except OSError as exc:
        raise InvalidInput(f"cannot read peers file {path}: {exc.strerror}") from None
    return [
        line.split("#", 1)[0].strip() for line in text.splitlines() if line.split("#", 1)[0].strip()
    ]


@peer_app.command("remove")
def remove(
    ctx: typer.Context,
    remote_ips: list[str] = typer.Argument(..., metavar="REMOTE_IP...", help="Peers to remove."),
    bridge: str = BRIDGE,
    dry_run: bool = DRY_RUN,
) -> None:
    """Remove the tunnel port to each peer."""
    from ovsnet.ovsdb import OvsDb
    from ovsnet.services.peers import remove_peers

    settings: Settings = ctx.obj
    with OvsDb(settings.db) as db:
        emit(settings, remove_peers(db, bridge, tuple(remote_ips), dry_run=dry_run))


@peer_app.command("list")
def list_(ctx: typer.Context, bridge: str = BRIDGE) -> None:
    """List peers with tunnel type, encryption and state."""
    from ovsnet.ovsdb import OvsDb
    from ovsnet.services.peers import list_peers

    settings: Settings = ctx.obj
    with OvsDb(settings.db) as db:
        emit(settings, list_peers(db, bridge))


def register(app: typer.Typer) -> None:
    app.add_typer(peer_app, name="peer")
