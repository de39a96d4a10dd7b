"""`ovsnet peer add/remove/sync/list`."""

from __future__ import annotations

from ipaddress import IPv4Network
from pathlib import Path
from typing import Annotated

import typer

from ovsnet.cli.hot_commands import add_peers, sync_peers
from ovsnet.cli.locking import changing_host
from ovsnet.cli.options import Bridge, DryRun
from ovsnet.cli.output import Settings, emit
from ovsnet.errors import InvalidInput
from ovsnet.model import DEFAULT_BRIDGE

peer_app = typer.Typer(help="Tunnels to other hosts.", no_args_is_help=True)

# Options of `peer add`, most of them also of `peer sync` (only these commands take them, so
# they live here rather than in ovsnet/cli/options.py).
TunnelType = Annotated[str, typer.Option("--type", help="Tunnel type: gre, vxlan or geneve.")]
Ipsec = Annotated[bool, typer.Option("--ipsec", help="Encrypt and authenticate with IPsec.")]
PskFile = Annotated[
    Path | None,
    typer.Option(
        "--psk-file", help="File holding the pre-shared key (default: `ovsnet ipsec psk set`)."
    ),
]
RemoteName = Annotated[
    str | None,
    typer.Option("--remote-name", help="Certificate auth: the CN of the peer's certificate."),
]
RemoteCert = Annotated[
    str | None,
    typer.Option(
        "--remote-cert", help="Certificate auth with a self-signed peer certificate file."
    ),
]
RequireEncryption = Annotated[
    bool,
    typer.Option(
        "--require-encryption/--allow-plaintext",
        help="Drop tunnel traffic that IPsec did not protect (default), or allow plaintext "
        "fallback.",
    ),
]
PeerSubnets = Annotated[
    list[str] | None,
    typer.Option(
        "--subnet",
        metavar="CIDR",
        help="The peer's container subnet: IPv4 and ARP from its tunnel must come from it. "
        "Several peers: one --subnet each, in the peers' order.",
    ),
]
AllowDowngrade = Annotated[
    bool,
    typer.Option(
        "--allow-downgrade",
        help="Allow turning an existing IPsec tunnel into plaintext, or certificates into a PSK.",
    ),
]


def _ipsec_choice(ipsec, psk_file, remote_name, remote_cert, require_encryption):
    from ovsnet.services.peers import IpsecChoice

    if not ipsec:
        if psk_file or remote_name or remote_cert:
            raise InvalidInput("--psk-file/--remote-name/--remote-cert need --ipsec")
        return None
    return IpsecChoice(psk_file, remote_name, remote_cert, require_encryption)


@peer_app.command("add")
def add(
    ctx: typer.Context,
    remote_ips: Annotated[
        list[str], typer.Argument(metavar="REMOTE_IP...", help="Peers' underlay IPs.")
    ],
    ipsec: Ipsec = False,
    psk_file: PskFile = None,
    remote_name: RemoteName = None,
    remote_cert: RemoteCert = None,
    require_encryption: RequireEncryption = True,
    allow_downgrade: AllowDowngrade = False,
    subnets: PeerSubnets = None,
    bridge: Bridge = DEFAULT_BRIDGE,
    tunnel_type: TunnelType = "gre",
    dry_run: DryRun = False,
) -> None:
    """Add a tunnel port to each peer (all in one OVSDB transaction)."""
    choice = _ipsec_choice(ipsec, psk_file, remote_name, remote_cert, require_encryption)
    parsed: tuple[IPv4Network, ...] = ()
    if subnets:
        from ovsnet.antispoof import parse_subnet

        if len(subnets) != len(remote_ips):
            raise InvalidInput(
                f"{len(subnets)} --subnet for {len(remote_ips)} peers",
                "give one --subnet per peer, in the peers' order, or none",
            )
        parsed = tuple(parse_subnet(subnet) for subnet in subnets)
    add_peers(ctx.obj, remote_ips, bridge, tunnel_type, dry_run, ipsec=choice,
              allow_downgrade=allow_downgrade, subnets=parsed)  # fmt: skip


@peer_app.command("sync")
def sync(
    ctx: typer.Context,
    peers_file: Annotated[
        Path,
        typer.Argument(
            metavar="FILE", help="One peer IP per line, optionally its subnet (# comments)."
        ),
    ],
    ipsec: Ipsec = False,
    psk_file: PskFile = None,
    require_encryption: RequireEncryption = True,
    allow_downgrade: AllowDowngrade = False,
    bridge: Bridge = DEFAULT_BRIDGE,
    tunnel_type: TunnelType = "gre",
    dry_run: DryRun = False,
) -> None:
    """Make the tunnels exactly the file's peers: add the missing, remove the rest."""
    choice = _ipsec_choice(ipsec, psk_file, None, None, require_encryption)
    sync_peers(ctx.obj, peers_file, bridge, tunnel_type, dry_run, choice, allow_downgrade)


@peer_app.command("remove")
def remove(
    ctx: typer.Context,
    remote_ips: Annotated[
        list[str], typer.Argument(metavar="REMOTE_IP...", help="Peers to remove.")
    ],
    bridge: Bridge = DEFAULT_BRIDGE,
    dry_run: DryRun = False,
) -> None:
    """Remove the tunnel port to each peer."""
    from ovsnet.ovsdb.client import OvsDb
    from ovsnet.services.peers import remove_peers

    settings: Settings = ctx.obj
    with changing_host(settings, "peer remove", dry_run), OvsDb(settings.db) as db:
        emit(settings, remove_peers(db, bridge, tuple(remote_ips), dry_run=dry_run))


@peer_app.command("list")
def list_(ctx: typer.Context, bridge: Bridge = DEFAULT_BRIDGE) -> None:
    """List peers with tunnel type, encryption and state."""
    from ovsnet.ovsdb.client import OvsDb
    from ovsnet.services.peers import list_peers

    settings: Settings = ctx.obj
    with OvsDb(settings.db) as db:
        emit(settings, list_peers(db, bridge))


def register(app: typer.Typer) -> None:
    app.add_typer(peer_app, name="peer")
