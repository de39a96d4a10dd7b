"""Turning OVSDB's select rows into ObservedPort, with and without vswitchd's state columns."""

from __future__ import annotations

from ovsnet.ovsdb.connection import COLUMNS, STATE_COLUMNS, interface_columns
from ovsnet.ovsdb.datum import observed_port

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
