"""The IPsec repair history: one small JSON file that the healer writes and status reads.

A file under /run/ovsnet (tmpfs: it starts empty at boot, as the kernel's SAs do) rather than
OVSDB external_ids: the healer writes it on every tick, and an OVSDB write would wake
ovs-vswitchd and ovs-monitor-ipsec each time. Written atomically (temporary file + rename), so
a reader never sees half a document. Holds addresses, port names and times, never a secret.

Place: docs/architecture.md, "Layers": facade layer (one JSON file under /run/ovsnet).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ovsnet.errors import OperationFailed
from ovsnet.ipsec_healing import RepairRecord

DEFAULT_PATH = Path("/run/ovsnet/ipsec-repairs.json")
ENV = "OVSNET_IPSEC_REPAIRS"  # another path (tests, or a host whose /run is elsewhere)


def state_path(path: str | os.PathLike | None = None) -> Path:
    return Path(path or os.environ.get(ENV) or DEFAULT_PATH)


def repair_history(path: str | os.PathLike | None = None) -> dict[str, RepairRecord]:
    """Peer address -> its record; empty when nothing was ever repaired or the file is unreadable
    (a damaged history must not stop the healer: it starts afresh)."""
    try:
        data = json.loads(state_path(path).read_text())
    except (OSError, ValueError):
        return {}
    peers = data.get("peers") if isinstance(data, dict) else None
    if not isinstance(peers, dict):
        return {}
    return {
        str(peer): RepairRecord.from_json(record)
        for peer, record in peers.items()
        if isinstance(record, dict)
    }


def save_history(records: dict[str, RepairRecord], path: str | os.PathLike | None = None) -> None:
    from ovsnet.files import write_atomically

    target = state_path(path)
    document = {"peers": {peer: record.as_json() for peer, record in sorted(records.items())}}
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(target, (json.dumps(document, indent=1) + "\n").encode(), 0o644)
    except OSError as exc:
        raise OperationFailed(f"cannot write the IPsec repair history {target}: {exc}") from None
