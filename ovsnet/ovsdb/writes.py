"""The rows one `Changes` writes, inside an ovsdbapp IDL transaction.

`client.OvsDb.apply` opens the transaction and waits for ovs-vswitchd; `write` fills it: the
bridge and its internal port, system ports, tunnels added and updated, ports and bridges
removed, `Open_vSwitch.other_config`. Every verb is an "ensure": a row that is already as
wanted is left as it is. Runs inside the IDL's transaction (rows are ovsdbapp's IDL rows).

Place: docs/architecture.md, "Layers": facade layer (the OVSDB facade's writers).
"""

from __future__ import annotations

from ovsnet.model import PEER_SUBNET_KEY, BridgeSpec, Changes, TunnelSpec


def write(api, txn, changes: Changes) -> None:
    """Every row `changes` asks for, into the open transaction `txn` of `api`."""
    tables = api.tables
    if changes.bridge:
        bridge = _ensure_bridge(api, txn, changes.bridge)
    else:
        bridge = _find(tables["Bridge"], changes.tunnel_bridge or "")
    _remove_ports(tables, changes.remove_ports)
    for name, external_ids in changes.system_ports:
        _ensure_port(tables, txn, bridge, name, "", {}, external_ids)
    if changes.update_tunnels:
        ports = {row.name: row for row in tables["Port"].rows.values()}
        for spec in changes.update_tunnels:
            port = ports[spec.port]
            port.protected = True
            _set_tunnel_interface(port.interfaces[0], spec)
            if spec.subnet is not None:
                port.setkey("external_ids", PEER_SUBNET_KEY, str(spec.subnet))
    for spec in changes.add_tunnels:
        _insert_tunnel(tables, txn, bridge, spec)
    if changes.tunnel_options:
        interfaces = {row.name: row for row in tables["Interface"].rows.values()}
        for port, options in changes.tunnel_options.items():
            for option, setting in options.items():
                interfaces[port].setkey("options", option, setting)
    if changes.delete_bridge:
        _delete_bridge(api, changes.delete_bridge)
    if changes.other_config:
        ovs = next(iter(tables["Open_vSwitch"].rows.values()))
        for key, value in changes.other_config.items():
            if value is None:
                ovs.delkey("other_config", key)
            else:
                ovs.setkey("other_config", key, value)


def _find(table, name: str):
    """The row of `table` with this name, or None."""
    for row in table.rows.values():
        if row.name == name:
            return row
    return None


def _ensure_bridge(api, txn, spec: BridgeSpec):
    tables = api.tables
    row = _find(tables["Bridge"], spec.name)
    if row is None:
        row = txn.insert(tables["Bridge"])
        row.name = spec.name
        api._ovs.addvalue("bridges", row)
    row.datapath_type = spec.datapath_type
    for key, value in spec.external_ids.items():
        row.setkey("external_ids", key, value)
    internal = _ensure_port(tables, txn, row, spec.name, "internal", {}, {})
    internal.mtu_request = [spec.mtu]
    return row


def _ensure_port(tables, txn, bridge, name, iface_type, options, external_ids):
    """Ensure a single-interface port on the bridge; return its Interface row."""
    port = _find(tables["Port"], name)
    if port is None:
        iface = txn.insert(tables["Interface"])
        iface.name = name
        port = txn.insert(tables["Port"])
        port.name = name
        port.interfaces = [iface]
        bridge.addvalue("ports", port)
    else:
        iface = port.interfaces[0]
    iface.type = iface_type
    if options:
        iface.options = options
    for key, value in external_ids.items():
        port.setkey("external_ids", key, value)
    return iface


def _insert_tunnel(tables, txn, bridge, spec: TunnelSpec) -> None:
    iface = txn.insert(tables["Interface"])
    iface.name = spec.port
    _set_tunnel_interface(iface, spec)
    iface.external_ids = spec.external_ids
    port = txn.insert(tables["Port"])
    port.name = spec.port
    port.interfaces = [iface]
    # Split horizon: frames never go from one tunnel to another, so a full mesh cannot loop.
    port.protected = True
    port.external_ids = spec.external_ids
    bridge.addvalue("ports", port)


def _set_tunnel_interface(iface, spec: TunnelSpec) -> None:
    iface.type = spec.type
    iface.options = spec.options
    iface.bfd = spec.bfd


def _remove_ports(tables, names: list[str]) -> None:
    """Remove ports (and their interfaces), reading each table once.

    NOTE(perf): every read of an IDL column converts the whole cell to Python (a 1,000-port
    `Bridge.ports` builds 1,000 Row objects), so looking up and unlinking port by port made
    removing 1,000 peers O(n^2): ~12 s of CPU, past the transaction timeout (it failed).
    """
    wanted = set(names)
    doomed = [row for row in tables["Port"].rows.values() if row.name in wanted] if names else []
    if not doomed:
        return
    doomed_uuids = {row.uuid for row in doomed}
    for bridge in tables["Bridge"].rows.values():
        for port in bridge.ports:
            if port.uuid in doomed_uuids:
                bridge.delvalue("ports", port)
    for port in doomed:
        for iface in port.interfaces:
            iface.delete()
        port.delete()


def _delete_bridge(api, name: str) -> None:
    row = _find(api.tables["Bridge"], name)
    if row is None:
        return
    for port in row.ports:
        for iface in port.interfaces:
            iface.delete()
        port.delete()
    api._ovs.delvalue("bridges", row)
    row.delete()
