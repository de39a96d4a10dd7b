"""OVSDB's JSON rows, as a `select` returns them, decoded into ovsnet's observed model.

Pure: no I/O. `client.OvsDb`'s reads fetch plain JSON rows and hand them here; the
`ObservedBridge` and `ObservedPort` that come back are what the planners compare with what
they want.

Place: docs/architecture.md, "Layers": pure layer (inside the OVSDB facade's package).
"""

from __future__ import annotations

from typing import Any

from ovsnet.model import ObservedBridge, ObservedPort

Row = dict[str, Any]


def datum(value: Any) -> Any:
    """OVSDB's JSON to Python: ["map", pairs] -> dict, ["set", items] -> list, uuids -> str."""
    if type(value) is list and len(value) == 2:
        kind, body = value
        # NOTE(perf): atoms (str, int, bool) are most cells: test them inline rather than
        # recursing once per key and value (statistics maps alone are ~12,000 atoms at 1,000
        # peers).
        if kind == "map":
            return _map(body)
        if kind == "set":
            # NOTE(perf): a set of atoms (most sets) is copied in C, without a loop in Python.
            if list not in map(type, body):
                return list(body)
            return [datum(v) if type(v) is list else v for v in body]
        if kind in ("uuid", "named-uuid"):
            return body
    return value


def _map(pairs: list[Any]) -> dict[Any, Any]:
    """["map", pairs]'s pairs as a dict.

    NOTE(perf): the maps ovsnet reads (statistics, options, external_ids, bfd, bfd_status) hold
    atoms only: dict() builds them in C, ~3x faster than a comprehension over ~10,000 pairs at
    1,000 peers. A key that is a datum itself (a uuid) is a list, which dict() refuses as
    unhashable; a value that is one is found after. Either takes the general way."""
    try:
        decoded = dict(pairs)
    except TypeError:
        decoded = None
    if decoded is not None and list not in map(type, decoded.values()):
        return decoded
    return {
        (datum(k) if type(k) is list else k): (datum(v) if type(v) is list else v) for k, v in pairs
    }


def optional(value: Any) -> Any:
    """Optional OVSDB columns come back as [] or [value]."""
    if isinstance(value, list):
        return value[0] if value else None
    return value


def as_list(value: Any) -> list[Any]:
    """A set column holding exactly one element comes back as that element."""
    return value if isinstance(value, list) else [value]


def by_uuid(rows: list[Row]) -> dict[str, Row]:
    return {row["_uuid"][1]: row for row in rows}


def observed_bridge(row: Row, ports: dict[str, Row], interfaces: dict[str, Row]) -> ObservedBridge:
    """The bridge of a Bridge row, given every Port and Interface row by uuid."""
    observed = {}
    for ref in as_list(datum(row["ports"])):
        port = ports.get(ref)
        if port is not None:
            iface_refs = as_list(datum(port["interfaces"]))
            iface = interfaces.get(iface_refs[0]) if iface_refs else None
            observed[port["name"]] = observed_port(port, iface)
    return ObservedBridge(
        name=row["name"],
        datapath_type=row["datapath_type"],
        external_ids=datum(row["external_ids"]),
        ports=observed,
    )


# What a read without vswitchd's state columns decodes them as.
_NO_STATE = {"bfd_status": ["map", []], "link_state": ["set", []], "statistics": ["map", []]}


def observed_port(port: Row, iface: Row | None) -> ObservedPort:
    port_ids = datum(port["external_ids"])
    if iface is None:
        return ObservedPort(name=port["name"], type="", external_ids=port_ids)
    return ObservedPort(
        name=port["name"],
        type=iface["type"],
        options=datum(iface["options"]),
        external_ids={**datum(iface["external_ids"]), **port_ids},
        protected=bool(optional(datum(port["protected"]))),
        bfd=datum(iface["bfd"]),
        bfd_status=datum(iface.get("bfd_status", _NO_STATE["bfd_status"])),
        link_state=optional(datum(iface.get("link_state", _NO_STATE["link_state"]))),
        statistics=datum(iface.get("statistics", _NO_STATE["statistics"])),
        error=optional(datum(iface["error"])),
        ofport=optional(datum(iface["ofport"])),
        mtu_request=optional(datum(iface["mtu_request"])),
    )
