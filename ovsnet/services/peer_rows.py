"""The rows `status` and `peer list` show per tunnel, from the bridge as OVSDB holds it.

Pure, and kept apart from ovsnet.services.peers so that `status` does not load what changing
peers needs (nftables, strongSwan, the planners: NOTE(perf) ~15 ms of its start-up).

Place: docs/architecture.md, "Packages and what they own": the services layer.
"""

from __future__ import annotations

from ovsnet.model import ObservedBridge, ObservedPort


def peer_row(port: ObservedPort) -> dict:
    stats = port.statistics
    return {
        "remote_ip": port.peer,
        "port": port.name,
        "type": port.type,
        "ipsec": port.ipsec,
        "subnet": port.peer_subnet,
        # A tunnel without a recorded peer subnet carries any source address, as before.
        "sources_pinned": port.peer_subnet is not None,
        "state": port.state(),
        "link_state": port.link_state,
        "bfd_state": port.bfd_status.get("state"),
        "rx_packets": stats.get("rx_packets", 0),
        "tx_packets": stats.get("tx_packets", 0),
        "rx_bytes": stats.get("rx_bytes", 0),
        "tx_bytes": stats.get("tx_bytes", 0),
        "error": port.error,
    }


def sorted_peers(bridge: ObservedBridge) -> list[dict]:
    """One row per tunnel, in the numeric order of the peers' addresses."""
    return [peer_row(port) for port in sorted(bridge.tunnels.values(), key=_address_order)]


def _address_order(port: ObservedPort) -> tuple[int, ...]:
    """A dotted quad's numeric order, the order IPv4Address gives (which costs ~5 ms at 1,000
    peers). ovsnet records only dotted quads here (tunnels.parse_peer checks them)."""
    return tuple(int(octet) for octet in (port.peer or "").split("."))
