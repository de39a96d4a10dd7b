"""Turning OVSDB's select rows into ObservedPort, with and without vswitchd's state columns."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from ovsnet.model import ObservedBridge
from ovsnet.ovsdb.connection import COLUMNS, STATE_COLUMNS, interface_columns
from ovsnet.ovsdb.datum import datum, observed_port
from ovsnet.services.peer_rows import sorted_peers

PORT = {"name": "gre-1", "external_ids": ["map", [["ovsnet-peer", "192.0.2.2"]]],
        "protected": True}  # fmt: skip
IFACE = {
    "type": "gre",
    "options": ["map", [["remote_ip", "192.0.2.2"]]],
    "external_ids": ["map", []],
    "bfd": ["map", [["enable", "true"]]],
    "error": ["set", []],
    "ofport": 7,
    "mtu_request": ["set", []],
}
STATE = {
    "bfd_status": ["map", [["state", "up"]]],
    "link_state": "up",
    "statistics": ["map", [["rx_packets", 3]]],
}


def test_a_read_that_plans_a_change_leaves_vswitchds_counters_out():
    assert interface_columns(False) == COLUMNS["Interface"]
    assert set(STATE_COLUMNS["Interface"]) <= set(interface_columns(True))
    assert not set(STATE_COLUMNS["Interface"]) & set(interface_columns(False))


def test_ports_read_without_state_columns_have_the_same_configuration():
    full = observed_port(PORT, IFACE | STATE)
    planned = observed_port(PORT, IFACE)
    assert (full.bfd_status, full.link_state, full.statistics) == (
        {"state": "up"}, "up", {"rx_packets": 3})  # fmt: skip
    assert (planned.bfd_status, planned.link_state, planned.statistics) == ({}, None, {})
    for field in ("name", "type", "options", "external_ids", "protected", "bfd", "error",
                  "ofport", "mtu_request", "peer"):  # fmt: skip
        assert getattr(planned, field) == getattr(full, field), field
    assert planned.peer == "192.0.2.2" and planned.ofport == 7


# -- datum: the C fast path for maps and sets of atoms decodes as the general rule does --------


def _reference_datum(value):
    """The general rule, one element at a time (what datum did before its fast path)."""
    if type(value) is list and len(value) == 2:
        kind, body = value
        if kind == "map":
            return {_reference_datum(k): _reference_datum(v) for k, v in body}
        if kind == "set":
            return [_reference_datum(v) for v in body]
        if kind in ("uuid", "named-uuid"):
            return body
    return value


_uuid = st.uuids().map(lambda u: ["uuid", str(u)])
_atoms = st.one_of(st.text(max_size=5), st.integers(), st.booleans(), st.floats(allow_nan=False))
_elements = st.one_of(_atoms, _uuid)
_maps = st.lists(st.tuples(st.one_of(st.text(max_size=5), st.integers(), _uuid), _elements),
                 max_size=6, unique_by=lambda kv: str(kv[0])).map(
                     lambda kvs: ["map", [[k, v] for k, v in kvs]])  # fmt: skip
_sets = st.lists(_elements, max_size=6).map(lambda items: ["set", items])


@settings(deadline=None)
@given(st.one_of(_maps, _sets, _elements))
def test_datum_decodes_every_map_and_set_as_the_general_rule(value):
    assert datum(value) == _reference_datum(value)


def test_peers_are_listed_in_numeric_address_order():
    ports = {
        name: observed_port(
            PORT | {"name": name, "external_ids": ["map", [["ovsnet-peer", ip]]]}, IFACE
        )  # fmt: skip
        for name, ip in (("a", "192.0.2.10"), ("b", "192.0.2.9"), ("c", "10.0.0.200"))
    }
    bridge = ObservedBridge("br0", "system", {}, ports)
    assert [row["remote_ip"] for row in sorted_peers(bridge)] == [
        "10.0.0.200", "192.0.2.9", "192.0.2.10"]  # fmt: skip
