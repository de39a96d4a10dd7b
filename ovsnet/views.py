"""Rich tables for people; `--json` never comes here.

Place: docs/architecture.md, "Layers": CLI edge (rich rendering).
"""

from __future__ import annotations


def _human_bytes(count: int) -> str:
    n = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def peer_table(peers: list[dict]):
    from rich.table import Table

    table = Table(title=f"{len(peers)} peer(s)", title_justify="left")
    for column in ("peer", "port", "type", "ipsec", "sources pinned", "state", "rx", "tx"):
        table.add_column(column, justify="right" if column in ("rx", "tx") else "left")
    for peer in peers:
        state = peer["state"]
        style = {"up": "green", "down": "red", "error": "red"}.get(state, "yellow")
        table.add_row(
            peer["remote_ip"],
            peer["port"],
            peer["type"],
            peer.get("ipsec_state", "yes") if peer["ipsec"] else "no",
            f"yes ({peer['subnet']})" if peer.get("sources_pinned") else "no",
            f"[{style}]{state}[/]" + (f" ({peer['error']})" if peer.get("error") else ""),
            f"{peer['rx_packets']} pkts / {_human_bytes(peer['rx_bytes'])}",
            f"{peer['tx_packets']} pkts / {_human_bytes(peer['tx_bytes'])}",
        )
    return table
