"""The agent's view of the host records: a full read, then the watch's changes folded in.

Records are checked field by field when read; a bad one is left out, reported once per key and
reason (`bad-record`), and never stops the reconcile of the others. A change older than the
last full read is old news and never applied over it.

Place: docs/architecture.md, "Packages and what they own": cluster mode.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from ovsnet.cluster import telemetry
from ovsnet.cluster.keys import ClusterKeys
from ovsnet.cluster.records import BadRecord, HostRecord, parse_host_entry
from ovsnet.etcd.items import Change, Snapshot
from ovsnet.validate import printable

Event = Callable[..., None]  # Agent._event: (kind, level=..., **fields)


class HostView:
    def __init__(self, keys: ClusterKeys, event: Event):
        self.keys = keys
        self._event = event
        self.records: dict[str, HostRecord] = {}
        self.bad: dict[str, str] = {}  # key -> why its value was left out
        self.revision = 0  # the revision of the last full read

    def replace(self, snapshot: Snapshot) -> None:
        """Everything from a full read of the host records."""
        self.records = {}
        for key in [key for key in self.bad if key not in snapshot.items]:
            del self.bad[key]
        for key, item in snapshot.items.items():
            self._store(key, item.value)
        self.revision = snapshot.revision

    def apply(self, changes: list[Change]) -> None:
        """Fold the watch's changes into the view."""
        for change in changes:
            # A change the last full read already includes: never apply old news over it.
            if change.mod_revision <= self.revision:
                continue
            self._store(change.key, change.value)

    def _store(self, key: str, value: bytes | None) -> None:
        keys = self.keys
        name = keys.name_of(key) if key.startswith(keys.hosts) else None
        if value is None:
            self._forget(name)
            self.bad.pop(key, None)
            return
        try:
            record = parse_host_entry(keys, key, value)
        except BadRecord as exc:
            self._forget(name)
            self._bad_record(key, str(exc))
            return
        if self.bad.pop(key, None) is not None:
            self._event("bad-record-fixed", key=printable(key), bad_records=len(self.bad))
        self.records[record.name] = record  # parse_host_entry checked it is the key's name
        telemetry.record_seen(str(record.underlay_ip))

    def _forget(self, name: str | None) -> None:
        """Drop host `name`'s record; None (the key names no host): no record was kept."""
        if name is not None:
            self.records.pop(name, None)

    def _bad_record(self, key: str, reason: str) -> None:
        """Leave the value out; log it once per key and reason, not on every read."""
        if self.bad.get(key) == reason:
            return
        self.bad[key] = reason
        self._event(
            "bad-record",
            level=logging.WARNING,
            key=printable(key),
            reason=printable(reason),
            bad_records=len(self.bad),
        )
