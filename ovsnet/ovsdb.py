"""The OVSDB facade: every read and write ovsnet makes to Open vSwitch's database.

Nothing else in ovsnet imports ovsdbapp or ovs. Reads are plain read-only `transact`s of
selects; the IDL connects lazily, only for writes: every change is one transaction that waits
until ovs-vswitchd has applied it (`cur_cfg` catches up with `next_cfg`), then reports each
interface that vswitchd refused (`Interface.error`).

Place: docs/architecture.md, "Layers": facade layer.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ovsnet import jsonrpc
from ovsnet.errors import InvalidInput, NotReady, OperationFailed
from ovsnet.faults import checkpoint
from ovsnet.model import PEER_SUBNET_KEY, BridgeSpec, ObservedBridge, ObservedPort, TunnelSpec

# Only the columns ovsnet writes or checks after a write: the IDL turns every monitored cell of
# every row into Python objects, so monitoring whole tables makes a 1,000-peer bridge slow.
COLUMNS = {
    "Open_vSwitch": ["bridges", "ovs_version", "other_config", "cur_cfg", "next_cfg"],
    "Bridge": ["name", "ports", "datapath_type", "external_ids"],
    "Port": ["name", "interfaces", "external_ids", "protected"],
    "Interface": [
        "name",
        "type",
        "options",
        "external_ids",
        "bfd",
        "error",
        "ofport",
        "mtu_request",
    ],
}
# What vswitchd reports about each interface: read (status, peer list), never written. The IDL
# does not monitor these: they are the bulkiest cells and vswitchd rewrites them while a write
# waits for it.
STATE_COLUMNS = {"Interface": ["bfd_status", "link_state", "statistics"]}
# OVSNET_OVSDB_TIMEOUT: slow hosts need more (seen: a Debian VM under software emulation takes
# over 10 s to fetch the database with the pure-Python ovs library).
DEFAULT_TIMEOUT = float(os.environ.get("OVSNET_OVSDB_TIMEOUT") or 10.0)

_HINT = "start ovsdb-server and ovs-vswitchd (or the ovsnet container), or pass --db"

# ovsdbapp logs post-commit problems with tracebacks and then ignores them; ovsnet checks the
# same conditions itself and reports them as one-line errors.
logging.getLogger("ovsdbapp").addHandler(logging.NullHandler())
logging.getLogger("ovsdbapp").propagate = False


@dataclass(frozen=True)
class SslFiles:
    """`--db ssl:HOST:PORT`: this client's key and certificate, and the CA of the server's."""

    private_key: str
    certificate: str
    ca_cert: str


# The ovs library keeps its SSL settings per process (class attributes of ovs.stream.Stream),
# so they are set once, by the CLI edge, for every OvsDb of the process.
_ssl_files: SslFiles | None = None


def use_ssl(files: SslFiles | None) -> None:
    global _ssl_files
    _ssl_files = files


def _prepare_stream(db: str) -> None:
    if not db.startswith("ssl:"):
        return
    if _ssl_files is None:
        raise InvalidInput(
            f"--db {db} needs this client's TLS files",
            "give --db-ssl-key, --db-ssl-cert and --db-ssl-ca (or OVSNET_DB_SSL_KEY/CERT/CA)",
        )
    import ovs.stream

    ovs.stream.Stream.ssl_set_private_key_file(_ssl_files.private_key)
    ovs.stream.Stream.ssl_set_certificate_file(_ssl_files.certificate)
    ovs.stream.Stream.ssl_set_ca_cert_file(_ssl_files.ca_cert)


@dataclass
class Changes:
    """One OVSDB transaction's worth of ensure/remove operations (filled by the planner)."""

    bridge: BridgeSpec | None = None
    # The bridge tunnels are added to (when `bridge` above is not being ensured too).
    tunnel_bridge: str | None = None
    system_ports: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    add_tunnels: list[TunnelSpec] = field(default_factory=list)
    update_tunnels: list[TunnelSpec] = field(default_factory=list)
    remove_ports: list[str] = field(default_factory=list)
    delete_bridge: str | None = None
    other_config: dict[str, str | None] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(
            self.bridge
            or self.system_ports
            or self.add_tunnels
            or self.update_tunnels
            or self.remove_ports
            or self.delete_bridge
            or self.other_config
        )

    @property
    def carries_secret(self) -> bool:
        """Whether writing these changes sends a PSK to OVSDB."""
        return any("psk" in spec.options for spec in self.add_tunnels + self.update_tunnels)


def _quick_idl_class():
    from ovsdbapp.backend.ovs_idl import connection

    class QuickIdl(connection.OvsdbIdl):
        # ovsdbapp sleeps after every row update to let other green threads run; a CLI has
        # none, and at 1,000 ports those sleeps were a third of `status`'s run time.
        def cooperative_yield(self):
            pass

    return QuickIdl


def _QuickIdl(*args):  # noqa: N802 - a class, built lazily so ovsdbapp loads only when used
    return _quick_idl_class()(*args)


@dataclass(frozen=True)
class Snapshot:
    """What one read of OVSDB saw."""

    ovs_version: str | None
    other_config: dict[str, str]
    bridges: dict[str, ObservedBridge]


class OvsDb:
    """Domain verbs over one OVSDB (`unix:/path` or `tcp:host:port`)."""

    def __init__(self, db: str, timeout: float = DEFAULT_TIMEOUT):
        self.db = db
        self.timeout = timeout
        self._api = None

    # -- connection -----------------------------------------------------------------------

    @property
    def api(self):
        if self._api is None:
            self._api = self._connect()
        return self._api

    def _connect(self):
        from ovsdbapp import exceptions as ovsdbapp_exceptions
        from ovsdbapp.backend.ovs_idl import connection, idlutils
        from ovsdbapp.schema.open_vswitch import impl_idl

        helper = idlutils.create_schema_helper(self._schema())
        for table, columns in COLUMNS.items():
            helper.register_columns(table, columns)
        idl = _QuickIdl(self.db, helper)
        # NOTE: ovsdbapp keeps the first connection in a class attribute, so a second
        # OvsDb in the same process would silently talk to the first database. A class
        # of its own per instance keeps each connection where it belongs.
        backend = type("OvsdbIdlFor", (impl_idl.OvsdbIdl,), {"_ovsdb_connection": None})
        try:
            return backend(connection.Connection(idl, timeout=self.timeout), auto_index=False)
        except ovsdbapp_exceptions.OvsdbAppException as exc:  # e.g. no initial dump in time
            raise NotReady(f"cannot reach OVSDB at {self.db} ({_describe(exc)})", _HINT) from None

    def _schema(self) -> dict:
        """The Open_vSwitch schema, fetched with ovsnet's own errors (ovsdbapp's fetch raises a
        bare Exception for every failure, which only a catch-all could tell from a bug)."""
        import ovs.jsonrpc
        import ovs.stream

        _prepare_stream(self.db)
        if self.db.startswith("unix:") and not os.path.exists(self.db[len("unix:") :]):
            raise NotReady(f"cannot reach OVSDB at {self.db}: no such socket", _HINT)
        error, stream = ovs.stream.Stream.open_block(
            ovs.stream.Stream.open(self.db), int(self.timeout * 1000)
        )
        if error:
            raise NotReady(f"cannot reach OVSDB at {self.db} ({os.strerror(error)})", _HINT)
        rpc = ovs.jsonrpc.Connection(stream)
        try:
            request = ovs.jsonrpc.Message.create_request("get_schema", ["Open_vSwitch"])
            error, reply = rpc.transact_block(request)
        finally:
            rpc.close()
        if error:
            raise NotReady(f"cannot read OVSDB at {self.db} ({os.strerror(error)})", _HINT)
        if reply.error:
            raise NotReady(f"OVSDB at {self.db} has no Open_vSwitch database ({reply.error})")
        return reply.result

    def close(self) -> None:
        if self._api is not None:
            self._api.ovsdb_connection.stop(timeout=1)
            self._api = None

    def __enter__(self) -> OvsDb:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- reads ----------------------------------------------------------------------------

    def _select(self, *queries: tuple[str, list[str], list]) -> list[list[dict]]:
        """Rows of (table, columns, where) queries, from one read-only `transact`.

        NOTE(perf): reads do not go through the IDL. It builds a Python replica of every
        monitored cell, which at 1,000 peers was most of the CPU of a no-op `peer sync` and of
        `status`; a select's reply goes through the C JSON parser once (~0.05 s of CPU instead
        of ~0.5 s at 1,000 peers, bench/README.md). Each call reads afresh: no cache to go
        stale in a long-lived caller (the cluster agent).
        """
        hint = "start ovsdb-server and ovs-vswitchd (or the ovsnet container), or pass --db"
        _prepare_stream(self.db)
        ops = [
            {"op": "select", "table": table, "where": where, "columns": ["_uuid", *columns]}
            for table, columns, where in queries
        ]
        try:
            reply = jsonrpc_call(self.db, "transact", ["Open_vSwitch", *ops], self.timeout)
        except OSError as exc:
            reason = exc.strerror or _describe(exc)
            raise NotReady(f"cannot reach OVSDB at {self.db} ({reason})", hint) from None
        result = reply.get("result")
        # A reply has a result or an error (JSON-RPC); one with neither is refused too.
        if reply.get("error") or not isinstance(result, list) or any("error" in r for r in result):
            raise OperationFailed(f"OVSDB refused to read: {reply.get('error') or result}")
        return [r["rows"] for r in result]

    def _system(self, column: str, empty):
        (rows,) = self._select(("Open_vSwitch", [column], []))
        return _datum(rows[0][column]) if rows else empty

    def ovs_version(self) -> str | None:
        return self._version(_optional(self._system("ovs_version", None)))

    def _version(self, recorded: str | None) -> str | None:
        """The version the running daemons report, else what ovs-ctl recorded in OVSDB.

        NOTE: ovs_version is written by ovs-ctl, not by ovs-vswitchd: an OVS started any other
        way has it empty. The daemons' own answer is also right after an upgrade that
        restarted them without ovs-ctl.
        """
        from ovsnet.ovs_daemons import running_version

        return running_version(self.db) or recorded

    def other_config(self) -> dict[str, str]:
        return self._system("other_config", {})

    def bridge(self, name: str, state: bool = True) -> ObservedBridge | None:
        """The bridge as OVSDB holds it, or None if it does not exist. state=False: without
        what vswitchd reports (see `_interface_columns`)."""
        bridges, ports, interfaces = self._select(
            ("Bridge", COLUMNS["Bridge"], [["name", "==", name]]),
            ("Port", COLUMNS["Port"], []),
            ("Interface", _interface_columns(state), []),
        )
        if not bridges:
            return None
        return _observed_bridge(bridges[0], _by_uuid(ports), _by_uuid(interfaces))

    def snapshot(self, state: bool = True) -> Snapshot:
        """Every bridge with its ports, the OVS version and other_config: one read.
        state=False: without what vswitchd reports (see `_interface_columns`)."""
        system, bridges, ports, interfaces = self._select(
            ("Open_vSwitch", ["ovs_version", "other_config"], []),
            ("Bridge", COLUMNS["Bridge"], []),
            ("Port", COLUMNS["Port"], []),
            ("Interface", _interface_columns(state), []),
        )
        row = system[0] if system else {"ovs_version": ["set", []], "other_config": ["map", []]}
        ports_by_uuid, interfaces_by_uuid = _by_uuid(ports), _by_uuid(interfaces)
        return Snapshot(
            ovs_version=self._version(_optional(_datum(row["ovs_version"]))),
            other_config=_datum(row["other_config"]),
            bridges={
                b["name"]: _observed_bridge(b, ports_by_uuid, interfaces_by_uuid) for b in bridges
            },
        )

    def ofports(self) -> dict[str, int | None]:
        """Every interface's ofport by name (None: vswitchd has not assigned one)."""
        (interfaces,) = self._select(("Interface", ["name", "ofport"], []))
        return {row["name"]: _optional(_datum(row["ofport"])) for row in interfaces}

    def bridge_names(self) -> list[str]:
        (bridges,) = self._select(("Bridge", ["name"], []))
        return sorted(row["name"] for row in bridges)

    def port_owner(self, port: str) -> str | None:
        """The bridge that holds a port of this name, if any."""
        bridges, ports = self._select(
            ("Bridge", ["name", "ports"], []), ("Port", ["name"], [["name", "==", port]])
        )
        wanted = {_datum(row["_uuid"]) for row in ports}
        for bridge in bridges:
            if wanted & set(_as_list(_datum(bridge["ports"]))):
                return bridge["name"]
        return None

    def _read(self, fn: Callable):
        with self.api.ovsdb_connection.lock:
            return fn(self.api.tables)

    # -- writes ---------------------------------------------------------------------------

    def refuse_secrets_in_clear(self, changes: Changes) -> None:
        """A PSK never crosses a network unencrypted: plain tcp: is refused for it."""
        if self.db.startswith("tcp:") and changes.carries_secret:
            raise InvalidInput(
                f"--db {self.db} is not encrypted, and this change would send a pre-shared key "
                "over it",
                "use --db ssl:HOST:PORT with --db-ssl-key/--db-ssl-cert/--db-ssl-ca, or run "
                "ovsnet on the host (unix: socket)",
            )

    def apply(self, changes: Changes, undo: Changes | None = None) -> None:
        """Apply all changes in one transaction and wait for ovs-vswitchd to act on them.

        If vswitchd refuses an interface, `undo` (when given) is applied before the error is
        raised, so a failed command leaves OVSDB as it found it.
        """
        if not changes:
            return
        self.refuse_secrets_in_clear(changes)
        from ovsdbapp.backend.ovs_idl import transaction
        from ovsdbapp.backend.ovs_idl.command import BaseCommand

        class _Apply(BaseCommand):
            def run_idl(self, txn):
                _write(self.api, txn, changes)
                # vswitchd copies next_cfg to cur_cfg once it has applied this transaction.
                self.api._ovs.increment("next_cfg")
                self.result = txn

        command = _Apply(self.api)
        # NOTE(perf): ovsdbapp's vsctl-style transaction waits for vswitchd inside its commit
        # timeout and then reports a committed 1,000-port change as failed; commit plainly and
        # wait for vswitchd below, with a message of our own.
        txn = transaction.Transaction(
            self.api, self.api.ovsdb_connection, self.timeout, check_error=True, log_errors=False
        )
        txn.add(command)
        try:
            txn.commit()
        except Exception as exc:
            raise OperationFailed(f"OVSDB transaction failed: {exc}") from None
        checkpoint("ovsdb:after-commit")
        self._wait_applied(command.result.get_increment_new_value())
        try:
            self._raise_interface_errors(changes)
        except OperationFailed:
            if undo:
                self.apply(undo)
            raise

    def _wait_applied(self, next_cfg: int | None) -> None:
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            done = self._read(
                lambda t: all(
                    r.cur_cfg >= (next_cfg if next_cfg is not None else r.next_cfg)
                    for r in t["Open_vSwitch"].rows.values()
                )
            )
            if done:
                return
            time.sleep(0.02)
        raise NotReady(
            f"ovs-vswitchd did not apply the change within {self.timeout:.0f} s",
            "is ovs-vswitchd running? the change is stored in OVSDB and applies when it starts",
        )

    def _raise_interface_errors(self, changes: Changes) -> None:
        names = {t.port for t in changes.add_tunnels + changes.update_tunnels}
        names |= {name for name, _ in changes.system_ports}
        if changes.bridge:
            names.add(changes.bridge.name)
        if not names:
            return

        def read(tables):
            return {
                row.name: _optional(row.error)
                for row in tables["Interface"].rows.values()
                if row.name in names and _optional(row.error)
            }

        failed = self._read(read)
        if failed:
            details = "; ".join(f"{name}: {error}" for name, error in sorted(failed.items()))
            raise OperationFailed(f"ovs-vswitchd refused {len(failed)} interface(s): {details}")


# -- JSON-RPC for reads -------------------------------------------------------------------


def jsonrpc_call(db: str, method: str, params: list, timeout: float) -> dict:
    """One JSON-RPC request to OVSDB and its reply, parsed by the stdlib's C JSON decoder.

    NOTE(perf): the `ovs` library's parser is compiled only in Debian's python3-openvswitch;
    the wheel on PyPI falls back to pure Python, which made `status` at 1,000 peers 5.7x
    `ovs-vsctl list Interface` in a plain `pip install`. The stdlib's `json` is C everywhere.
    `ssl:` remotes still go through the `ovs` library (certificates, its SSL setup).
    """
    if db.startswith("ssl:"):
        return _jsonrpc_call_ovs(db, method, params, timeout)
    return jsonrpc.call(db, method, params, timeout)


def _jsonrpc_call_ovs(db: str, method: str, params: list, timeout: float) -> dict:
    import ovs.jsonrpc
    import ovs.stream

    error, stream = ovs.stream.Stream.open_block(ovs.stream.Stream.open(db), int(timeout * 1000))
    if error:
        raise OSError(error, os.strerror(error))
    connection = ovs.jsonrpc.Connection(stream)
    try:
        request = ovs.jsonrpc.Message.create_request(method, params)
        error, reply = connection.transact_block(request)
    finally:
        connection.close()
    if error:
        raise OSError(error, os.strerror(error))
    return {"result": reply.result, "error": reply.error}


def _describe(exc: BaseException) -> str:
    # Some ovsdbapp exceptions format a `msg` attribute they do not always have.
    try:
        return str(exc) or type(exc).__name__
    except Exception:
        return type(exc).__name__


# -- read helpers (plain JSON rows of a select) --------------------------------------------


def _by_uuid(rows: list[dict]) -> dict[str, dict]:
    return {row["_uuid"][1]: row for row in rows}


def _observed_bridge(row: dict, ports: dict[str, dict], interfaces: dict[str, dict]):
    """The bridge of a Bridge row, given every Port and Interface row by uuid."""
    ports_by_uuid, interfaces_by_uuid = ports, interfaces
    observed = {}
    for ref in _as_list(_datum(row["ports"])):
        port = ports_by_uuid.get(ref)
        if port is not None:
            iface_refs = _as_list(_datum(port["interfaces"]))
            iface = interfaces_by_uuid.get(iface_refs[0]) if iface_refs else None
            observed[port["name"]] = _observed_port(port, iface)
    return ObservedBridge(
        name=row["name"],
        datapath_type=row["datapath_type"],
        external_ids=_datum(row["external_ids"]),
        ports=observed,
    )


def _datum(value):
    """OVSDB's JSON to Python: ["map", pairs] -> dict, ["set", items] -> list, uuids -> str."""
    if type(value) is list and len(value) == 2:
        kind, body = value
        # NOTE(perf): atoms (str, int, bool) are most cells: test them inline rather than
        # recursing once per key and value (statistics maps alone are ~12,000 atoms at 1,000
        # peers).
        if kind == "map":
            return {
                (_datum(k) if type(k) is list else k): (_datum(v) if type(v) is list else v)
                for k, v in body
            }
        if kind == "set":
            return [_datum(v) if type(v) is list else v for v in body]
        if kind in ("uuid", "named-uuid"):
            return body
    return value


def _as_list(value) -> list:
    """A set column holding exactly one element comes back as that element."""
    return value if isinstance(value, list) else [value]


def _interface_columns(state: bool) -> list[str]:
    """The Interface columns a read asks for. Planning a change (peer add/sync/remove, the
    flows, the cluster agent's every reconcile) needs none of STATE_COLUMNS; status and peer
    list show them.

    NOTE(perf): statistics and bfd_status are most of an Interface row: at 1,000 tunnels,
    leaving them out of the agent's two reads per change cut its CPU per change by about
    a third (bench/README.md, "The cluster agent at 1,000 hosts")."""
    return COLUMNS["Interface"] + (STATE_COLUMNS["Interface"] if state else [])


_NO_STATE = {"bfd_status": ["map", []], "link_state": ["set", []], "statistics": ["map", []]}


def _observed_port(port: dict, iface: dict | None) -> ObservedPort:
    port_ids = _datum(port["external_ids"])
    if iface is None:
        return ObservedPort(name=port["name"], type="", external_ids=port_ids)
    return ObservedPort(
        name=port["name"],
        type=iface["type"],
        options=_datum(iface["options"]),
        external_ids={**_datum(iface["external_ids"]), **port_ids},
        protected=bool(_optional(_datum(port["protected"]))),
        bfd=_datum(iface["bfd"]),
        bfd_status=_datum(iface.get("bfd_status", _NO_STATE["bfd_status"])),
        link_state=_optional(_datum(iface.get("link_state", _NO_STATE["link_state"]))),
        statistics=_datum(iface.get("statistics", _NO_STATE["statistics"])),
        error=_optional(_datum(iface["error"])),
        ofport=_optional(_datum(iface["ofport"])),
        mtu_request=_optional(_datum(iface["mtu_request"])),
    )


# -- row helpers (run inside the IDL's lock or transaction) ---------------------------------


def _optional(value):
    """Optional OVSDB columns come back as [] or [value]."""
    if isinstance(value, list):
        return value[0] if value else None
    return value


def _find(table, name: str):
    for row in table.rows.values():
        if row.name == name:
            return row
    return None


def _write(api, txn, changes: Changes) -> None:
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
    if changes.delete_bridge:
        _delete_bridge(api, changes.delete_bridge)
    if changes.other_config:
        ovs = next(iter(tables["Open_vSwitch"].rows.values()))
        for key, value in changes.other_config.items():
            if value is None:
                ovs.delkey("other_config", key)
            else:
                ovs.setkey("other_config", key, value)
    # ovsdbapp's transaction increments next_cfg, so vswitchd reports back through cur_cfg.


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
