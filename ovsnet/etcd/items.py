"""What reads and watches of etcd return: a key's value and revisions, the keys under a prefix
at one revision, one change seen by a watch; built from the client's protobuf messages.

Place: docs/architecture.md, "Layers": facade layer.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Item:
    """One key's value and metadata."""

    value: bytes
    lease: int
    create_revision: int
    mod_revision: int


@dataclass(frozen=True)
class Snapshot:
    """The keys under a prefix at one revision."""

    revision: int
    items: dict[str, Item]


@dataclass(frozen=True)
class Change:
    key: str
    value: bytes | None  # None: deleted (or expired with its lease)
    mod_revision: int


def key_name(raw: bytes) -> str:
    """A key as ovsnet names it."""
    # Keys are bytes in etcd; one that is not UTF-8 still gets a name (and is then refused
    # as a bad record) instead of stopping the reader.
    return raw.decode(errors="backslashreplace")


def items_of(kvs) -> dict[str, Item]:
    """The key-values of a range response (mvccpb.KeyValue), by key."""
    return {
        key_name(kv.key): Item(kv.value, kv.lease, kv.create_revision, kv.mod_revision)
        for kv in kvs
    }


def change_of(event) -> Change:
    """A watch event (mvccpb.Event); a delete's kv carries the key and the delete revision."""
    deleted = event.type == event.DELETE
    return Change(
        key_name(event.kv.key), None if deleted else event.kv.value, event.kv.mod_revision
    )
