"""`ovsnet ipsec repair [PEER...] [--restart-daemon]`: re-negotiate IPsec peers on request.

The named peers, or every ovsnet IPsec peer not established, each from a clean kernel state
(`ipsec_owned_peers.repair_and_log`); `--restart-daemon` restarts strongSwan instead, which
re-negotiates every peer. Only ovsnet's own peers, only while the plaintext guard is in place.
Each repair is added to the history `ovsnet status` shows (`ovsnet.repair_history`).

Place: docs/architecture.md, "Packages and what they own": the services layer.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from ipaddress import IPv4Address

from ovsnet import strongswan
from ovsnet.errors import InvalidInput, NotReady, OperationFailed
from ovsnet.ipsec_healing import RepairRecord, record_repair
from ovsnet.ovsdb.client import OvsDb
from ovsnet.plaintext_guard import Guard, guard_for_tunnels
from ovsnet.repair_history import repair_history, save_history
from ovsnet.report import ChangeReport
from ovsnet.services.ipsec_owned_peers import (
    OwnedPeer,
    guard_problem,
    owned_peers,
    read_monitor,
    repair_and_log,
    repairable,
)


@dataclass
class RepairRequest:
    peers: tuple[str, ...] = ()  # none: every ovsnet IPsec peer that is not established
    restart_daemon: bool = False  # the old whole-daemon repair: every peer re-negotiates
    run_dir: str | None = None
    state_file: str | None = None
    dry_run: bool = False


def _selected(peers: list[OwnedPeer], wanted: tuple[str, ...]) -> list[OwnedPeer]:
    by_address = {str(p.peer): p for p in peers}
    chosen = []
    for text in wanted:
        try:
            address = str(IPv4Address(text))
        except ValueError:
            raise InvalidInput(f"{text!r} is not an IPv4 address", "name peers by IP") from None
        if address not in by_address:
            raise InvalidInput(
                f"{address} is not an IPsec peer of ovsnet here", "see `ovsnet peer list`"
            )
        chosen.append(by_address[address])
    return chosen


def repair_peers(db: OvsDb, request: RepairRequest) -> ChangeReport:
    """`ovsnet ipsec repair [PEER...] [--restart-daemon]`: re-negotiate the named peers (or every
    one not established) from a clean kernel state; only ovsnet's peers, only behind the guard."""
    snapshot = db.snapshot()
    if not owned_peers(snapshot, None):
        raise NotReady("no IPsec tunnel of ovsnet here to repair", "add peers with --ipsec first")
    problem = guard_problem(snapshot)
    if problem:
        raise NotReady(problem, "run `ovsnet init` first (it restores the guard)")
    try:
        monitor = read_monitor(request.run_dir)
    except NotReady:
        if not request.restart_daemon:
            raise
        monitor = None  # the whole-daemon repair needs no per-tunnel view
    peers = owned_peers(snapshot, monitor)
    if request.restart_daemon:
        return _restart_daemon(_selected(peers, request.peers) or peers, request.dry_run)
    if request.peers:
        chosen = _selected(peers, request.peers)
        unknown = [str(p.peer) for p in chosen if p not in repairable(chosen)]
        if unknown:
            raise NotReady(
                f"ovs-monitor-ipsec has no valid connection for {', '.join(unknown)}",
                "see `ovsnet status` for why",
            )
    else:
        chosen = [p for p in repairable(peers) if p.summary() != "established"]
    # every chosen peer is repairable (checked above), so ovs-monitor-ipsec sees it
    steps = [f"re-negotiate IPsec with {p.peer} ({p.port}: {p.summary()})" for p in chosen]
    errors = []
    if not request.dry_run and chosen:
        records = repair_history(request.state_file)
        now = time.time()
        for peer in chosen:
            reason = f"manual (ovsnet ipsec repair): {peer.summary()}"
            error = repair_and_log(peer, reason)
            if error:
                errors.append(f"{peer.peer}: {error}")
            base = records.get(str(peer.peer)) or RepairRecord(port=peer.port)
            records[str(peer.peer)] = record_repair(base, reason, now)
        save_history(records, request.state_file)
    details = {"peers": [str(p.peer) for p in chosen]}
    if errors:
        raise OperationFailed("IPsec repair failed for " + "; ".join(errors))
    return ChangeReport("ipsec repair", steps, request.dry_run, details)


def _restart_daemon(peers: list[OwnedPeer], dry_run: bool) -> ChangeReport:
    guard = Guard()
    for peer in peers:
        guard |= guard_for_tunnels([peer.tunnel])
    steps = [
        "stop strongSwan (ipsec stop): every IPsec peer of this host re-negotiates",
        f"delete the kernel's SAs and tunnel policies of {len(guard.peers)} ovsnet IPsec peer(s)",
        "start strongSwan (ipsec start): it reloads ovs-monitor-ipsec's connections",
    ]
    if not dry_run:
        strongswan.restart_clean(guard)
    details = {"peers": [str(peer) for peer in sorted(guard.peers)], "restart_daemon": True}
    return ChangeReport("ipsec repair", steps, dry_run, details)
