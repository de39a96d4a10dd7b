"""`ovsnet peer add/remove/sync/list`."""

from __future__ import annotations

import sys
from ipaddress import IPv4Network
from pathlib import Path
from typing import Annotated

import typer

from ovsnet.cli.locking import changing_host
from ovsnet.cli.options import Bridge, DryRun
from ovsnet.cli.output import Settings, emit
from ovsnet.errors import InvalidInput

peer_app = typer.Typer(help="Tunnels to other hosts.", no_args_is_help=True)
TYPE = typer.Option("gre", "--type", help="Tunnel type: gre, vxlan or geneve.")


IPSEC = typer.Option(False, "--ipsec", help="Encrypt and authenticate with IPsec.")
PSK_FILE = typer.Option(
    None, "--psk-file", help="File holding the pre-shared key (default: `ovsnet ipsec psk set`)."
)
REMOTE_NAME = typer.Option(
    None, "--remote-name", help="Certificate auth: the CN of the peer's certificate."
)
REMOTE_CERT = typer.Option(
    None, "--remote-cert", help="Certificate auth with a self-signed peer certificate file."
)
REQUIRE_ENCRYPTION = typer.Option(
    True,
    "--require-encryption/--allow-plaintext",
    help="Drop tunnel traffic that IPsec did not protect (default), or allow plaintext fallback.",
)

SUBNET = typer.Option(
    None,
    "--subnet",
    metavar="CIDR",
    help="The peer's container subnet: IPv4 and ARP from its tunnel must come from it.",
)
ALLOW_DOWNGRADE = typer.Option(
    False,
    "--allow-downgrade",
    help="Allow turning an existing IPsec tunnel into plaintext, or certificates into a PSK.",
)


def _ipsec_choice(ipsec, psk_file, remote_name, remote_cert, require_encryption):
    from ovsnet.services.peers import IpsecChoice

    if not ipsec:
        if psk_file or remote_name or remote_cert:
            raise InvalidInput("--psk-file/--remote-name/--remote-cert need --ipsec")
        return None
    return IpsecChoice(psk_file, remote_name, remote_cert, require_encryption)


def _add(
    settings: Settings,
    peers,
    bridge,
    tunnel_type,
    dry_run,
    exact=False,
    ipsec=None,
    allow_downgrade=False,
    subnets=(),
) -> None:
    from ovsnet.netlink import Netlink
    from ovsnet.ovsdb.client import OvsDb
    from ovsnet.services.peers import PeerRequest, add_peers

    request = PeerRequest(
        bridge=bridge,
        peers=tuple(peers),
        tunnel_type=tunnel_type,
        ipsec=ipsec,
        allow_downgrade=allow_downgrade,
        subnets=tuple(subnets),
    )
    holder = "peer sync" if exact else "peer add"
    with changing_host(settings, holder, dry_run), OvsDb(settings.db) as db, Netlink() as net:
        emit(settings, add_peers(db, net, request, dry_run=dry_run, exact=exact))


@peer_app.command("add")
def add(
    ctx: typer.Context,
    remote_ips: Annotated[
        list[str], typer.Argument(metavar="REMOTE_IP...", help="Peers' underlay IPs.")
    ],
    ipsec: bool = IPSEC,
    psk_file: Path = PSK_FILE,
    remote_name: str = REMOTE_NAME,
    remote_cert: str = REMOTE_CERT,
    require_encryption: bool = REQUIRE_ENCRYPTION,
    allow_downgrade: bool = ALLOW_DOWNGRADE,
    subnet: str = SUBNET,
    bridge: Bridge = "br0",
    tunnel_type: str = TYPE,
    dry_run: DryRun = False,
) -> None:
    """Add a tunnel port to each peer (all in one OVSDB transaction)."""
    choice = _ipsec_choice(ipsec, psk_file, remote_name, remote_cert, require_encryption)
    subnets: tuple[IPv4Network, ...] = ()
    if subnet is not None:
        from ovsnet.antispoof import parse_subnet

        if len(remote_ips) != 1:
            raise InvalidInput("--subnet names one peer's subnet", "add such peers one per call")
        subnets = (parse_subnet(subnet),)
    _add(ctx.obj, remote_ips, bridge, tunnel_type, dry_run, ipsec=choice,
         allow_downgrade=allow_downgrade, subnets=subnets)  # fmt: skip


@peer_app.command("sync")
def sync(
    ctx: typer.Context,
    peers_file: Annotated[
        Path,
        typer.Argument(
            metavar="FILE", help="One peer IP per line, optionally its subnet (# comments)."
        ),
    ],
    ipsec: bool = IPSEC,
    psk_file: Path = PSK_FILE,
    require_encryption: bool = REQUIRE_ENCRYPTION,
    allow_downgrade: bool = ALLOW_DOWNGRADE,
    bridge: Bridge = "br0",
    tunnel_type: str = TYPE,
    dry_run: DryRun = False,
) -> None:
    """Make the tunnels exactly the file's peers: add the missing, remove the rest."""
    choice = _ipsec_choice(ipsec, psk_file, None, None, require_encryption)
    lines = read_peers_file(peers_file)
    _add(ctx.obj, [str(ip) for ip, _ in lines], bridge, tunnel_type, dry_run, exact=True,
         ipsec=choice, allow_downgrade=allow_downgrade,
         subnets=[subnet for _, subnet in lines])  # fmt: skip


def read_peers_file(path: Path) -> list:
    """(peer address, its subnet or None) per line of a `peer sync` file."""
    from ovsnet.tunnels import parse_peer_lines

    try:
        data = path.read_bytes() if str(path) != "-" else sys.stdin.buffer.read()
    except OSError as exc:
        raise InvalidInput(f"cannot read peers file {path}: {exc.strerror}") from None
    return parse_peer_lines(data, str(path))


@peer_app.command("remove")
def remove(
    ctx: typer.Context,
    remote_ips: Annotated[
        list[str], typer.Argument(metavar="REMOTE_IP...", help="Peers to remove.")
    ],
    bridge: Bridge = "br0",
    dry_run: DryRun = False,
) -> None:
    """Remove the tunnel port to each peer."""
    from ovsnet.ovsdb.client import OvsDb
    from ovsnet.services.peers import remove_peers

    settings: Settings = ctx.obj
    with changing_host(settings, "peer remove", dry_run), OvsDb(settings.db) as db:
        emit(settings, remove_peers(db, bridge, tuple(remote_ips), dry_run=dry_run))


@peer_app.command("list")
def list_(ctx: typer.Context, bridge: Bridge = "br0") -> None:
    """List peers with tunnel type, encryption and state."""
    from ovsnet.ovsdb.client import OvsDb
    from ovsnet.services.peers import list_peers

    settings: Settings = ctx.obj
    with OvsDb(settings.db) as db:
        emit(settings, list_peers(db, bridge))


def register(app: typer.Typer) -> None:
    app.add_typer(peer_app, name="peer")
