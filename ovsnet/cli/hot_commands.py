"""The bodies of `status` and `peer sync`, free of typer: the typer commands call them, and
so does the fast path (ovsnet.cli.fast) that runs these command lines without typer or click.

Place: docs/architecture.md, "Packages and what they own": the CLI edge.
"""

from __future__ import annotations

import sys
from pathlib import Path

from ovsnet.cli.locking import changing_host
from ovsnet.cli.output import Settings, emit
from ovsnet.errors import InvalidInput, OperationFailed


def show_status(settings: Settings, bridge: str, check: bool, check_peers: bool) -> None:
    """`ovsnet status`: the host's overlay; with check/check_peers, fail when unhealthy."""
    from ovsnet.netlink import Netlink
    from ovsnet.ovsdb.client import OvsDb
    from ovsnet.services.status import host_status

    with OvsDb(settings.db) as db, Netlink() as net:
        result = host_status(db, net, bridge)
    emit(settings, result)
    if check or check_peers:
        problems = result.health_problems(check_peers=check_peers)
        if problems:
            raise OperationFailed("unhealthy: " + "; ".join(problems))


def add_peers(
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
    """`peer add` (exact=False) and `peer sync` (exact=True), under the host lock."""
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


def sync_peers(
    settings: Settings,
    peers_file: Path,
    bridge: str,
    tunnel_type: str = "gre",
    dry_run: bool = False,
    ipsec=None,
    allow_downgrade: bool = False,
) -> None:
    """`peer sync FILE`: the tunnels become exactly the file's peers."""
    lines = read_peers_file(peers_file)
    add_peers(settings, [str(ip) for ip, _ in lines], bridge, tunnel_type, dry_run, exact=True,
              ipsec=ipsec, allow_downgrade=allow_downgrade,
              subnets=[subnet for _, subnet in lines])  # fmt: skip


def read_peers_file(path: Path) -> list:
    """(peer address, its subnet or None) per line of a `peer sync` file."""
    from ovsnet.tunnels import parse_peer_lines

    try:
        data = path.read_bytes() if str(path) != "-" else sys.stdin.buffer.read()
    except OSError as exc:
        raise InvalidInput(f"cannot read peers file {path}: {exc.strerror}") from None
    return parse_peer_lines(data, str(path))


def run_fast(command) -> None:
    """Run a command line ovsnet.cli.fast recognised (a FastCommand), as typer would have."""
    from ovsnet.validate import check_interface_name

    settings = Settings(db=command.db, json=command.json)
    bridge = check_interface_name(command.bridge, "--bridge")  # the --bridge option's check
    if command.command == "status":
        show_status(settings, bridge, command.check, command.check_peers)
    else:
        sync_peers(settings, Path(command.peers_file), bridge)
