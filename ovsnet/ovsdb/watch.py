"""What OVSDB says changed, as the IDL connection hears it: for a long-lived caller that keeps
its own copy of what it wrote (the cluster agent) and must know when someone else wrote too.

One `RowChange` per row the server reports created, updated or deleted in the monitored columns
(`connection.COLUMNS`), handed to each listener in the IDL's own thread: a listener only
records, it must be quick and must not raise. A reconnect that reloads the database reports
every row again (created), so a listener also hears that the server may have been replaced.

Place: docs/architecture.md, "Layers": facade layer (the OVSDB facade's change feed).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger("ovsnet.ovsdb")


@dataclass(frozen=True)
class RowChange:
    table: str
    kind: str  # "create", "update" or "delete"
    name: str | None  # the row's `name` (Bridge, Port, Interface), None for Open_vSwitch
    columns: frozenset[str] = field(default=frozenset())  # an update's changed columns


Listener = Callable[[RowChange], None]


def row_change(event: str, row, updates=None) -> RowChange:
    """The IDL's notice (`ovs.db.idl.Idl.notify`'s arguments) in ovsnet's terms."""
    name = getattr(row, "name", None) if "name" in row._table.columns else None
    columns = frozenset(updates._data) if updates is not None and updates._data else frozenset()
    return RowChange(row._table.name, event, name if isinstance(name, str) else None, columns)


def tell(listeners: list[Listener], event: str, row, updates=None) -> None:
    """Hand one notice to every listener. A listener's bug is logged, never raised into the
    IDL (that would break its connection for every other use)."""
    if not listeners:
        return
    try:
        change = row_change(event, row, updates)
        for listener in listeners:
            listener(change)
    except Exception:
        log.exception("an OVSDB change listener failed")
