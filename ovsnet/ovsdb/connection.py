"""Reaching OVSDB: the TLS settings, the IDL connection writes use, the `select`s reads use.

Two ways in, each with the workaround it needs. Writes go through ovsdbapp's IDL, connected
lazily, monitoring only the columns ovsnet writes or checks (`COLUMNS`), one connection per
`OvsDb` and without ovsdbapp's cooperative sleeps. Reads are one read-only `transact` of
`select`s parsed by the stdlib's C JSON decoder (`select`). Every failure to reach the database
becomes `NotReady` with a hint; nothing here knows bridges or tunnels (that is `client`).

Place: docs/architecture.md, "Layers": facade layer (the OVSDB facade's connection).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from ovsnet import jsonrpc
from ovsnet.errors import InvalidInput, NotReady, OperationFailed
from ovsnet.ovsdb import watch

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


def interface_columns(state: bool) -> list[str]:
    """The Interface columns a read asks for. Planning a change (peer add/sync/remove, the
    flows, the cluster agent's every reconcile) needs none of STATE_COLUMNS; status and peer
    list show them.

    NOTE(perf): statistics and bfd_status are most of an Interface row: at 1,000 tunnels,
    leaving them out of the agent's two reads per change cut its CPU per change by about
    a third (bench/README.md, "The cluster agent at 1,000 hosts")."""
    return COLUMNS["Interface"] + (STATE_COLUMNS["Interface"] if state else [])


# OVSNET_OVSDB_TIMEOUT: slow hosts need more (seen: a Debian VM under software emulation takes
# over 10 s to fetch the database with the pure-Python ovs library).
DEFAULT_TIMEOUT = float(os.environ.get("OVSNET_OVSDB_TIMEOUT") or 10.0)

HINT = "start ovsdb-server and ovs-vswitchd (or the ovsnet container), or pass --db"


def _silence_ovsdbapp() -> None:
    """ovsdbapp logs post-commit problems with tracebacks and then ignores them; ovsnet checks
    the same conditions itself and reports them as one-line errors. Done where ovsdbapp is
    loaded: reads never load it, nor `logging` (NOTE(perf): ~3 ms of `status`'s start-up)."""
    import logging

    logger = logging.getLogger("ovsdbapp")
    if not any(isinstance(h, logging.NullHandler) for h in logger.handlers):
        logger.addHandler(logging.NullHandler())
    logger.propagate = False


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


def prepare_stream(db: str) -> None:
    """Give the ovs library this process's TLS files before it opens an `ssl:` remote."""
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


# -- the IDL, for writes ---------------------------------------------------------------------


def _quick_idl_class():
    from ovsdbapp.backend.ovs_idl import connection

    class QuickIdl(connection.OvsdbIdl):
        listeners: list = []  # replaced per connection (connect): see ovsnet.ovsdb.watch

        # ovsdbapp sleeps after every row update to let other green threads run; a CLI has
        # none, and at 1,000 ports those sleeps were a third of `status`'s run time.
        def cooperative_yield(self):
            pass

        def notify(self, event, row, updates=None):
            watch.tell(self.listeners, event, row, updates)

    return QuickIdl


def connect(db: str, timeout: float):
    """ovsdbapp's Open_vSwitch API over a new IDL connection that monitors `COLUMNS`."""
    _silence_ovsdbapp()
    from ovsdbapp import exceptions as ovsdbapp_exceptions
    from ovsdbapp.backend.ovs_idl import connection, idlutils
    from ovsdbapp.schema.open_vswitch import impl_idl

    helper = idlutils.create_schema_helper(fetch_schema(db, timeout))
    for table, columns in COLUMNS.items():
        helper.register_columns(table, columns)
    idl = _quick_idl_class()(db, helper)
    idl.listeners = []
    # NOTE: ovsdbapp keeps the first connection in a class attribute, so a second
    # OvsDb in the same process would silently talk to the first database. A class
    # of its own per instance keeps each connection where it belongs.
    backend = type("OvsdbIdlFor", (impl_idl.OvsdbIdl,), {"_ovsdb_connection": None})
    try:
        return backend(connection.Connection(idl, timeout=timeout), auto_index=False)
    except ovsdbapp_exceptions.OvsdbAppException as exc:  # e.g. no initial dump in time
        raise NotReady(f"cannot reach OVSDB at {db} ({describe(exc)})", HINT) from None


def fetch_schema(db: str, timeout: float) -> dict:
    """The Open_vSwitch schema, fetched with ovsnet's own errors (ovsdbapp's fetch raises a
    bare Exception for every failure, which only a catch-all could tell from a bug)."""
    import ovs.jsonrpc
    import ovs.stream

    prepare_stream(db)
    if db.startswith("unix:") and not os.path.exists(db[len("unix:") :]):
        raise NotReady(f"cannot reach OVSDB at {db}: no such socket", HINT)
    error, stream = ovs.stream.Stream.open_block(ovs.stream.Stream.open(db), int(timeout * 1000))
    if error:
        raise NotReady(f"cannot reach OVSDB at {db} ({os.strerror(error)})", HINT)
    rpc = ovs.jsonrpc.Connection(stream)
    try:
        request = ovs.jsonrpc.Message.create_request("get_schema", ["Open_vSwitch"])
        error, reply = rpc.transact_block(request)
    finally:
        rpc.close()
    if error:
        raise NotReady(f"cannot read OVSDB at {db} ({os.strerror(error)})", HINT)
    if reply.error:
        raise NotReady(f"OVSDB at {db} has no Open_vSwitch database ({reply.error})")
    return reply.result


def describe(exc: BaseException) -> str:
    # Some ovsdbapp exceptions format a `msg` attribute they do not always have.
    try:
        return str(exc) or type(exc).__name__
    except Exception:
        return type(exc).__name__


# -- JSON-RPC, for reads ---------------------------------------------------------------------


def select(db: str, timeout: float, *queries: tuple[str, list[str], list]) -> list[list[dict]]:
    """Rows of (table, columns, where) queries, from one read-only `transact`.

    NOTE(perf): reads do not go through the IDL. It builds a Python replica of every
    monitored cell, which at 1,000 peers was most of the CPU of a no-op `peer sync` and of
    `status`; a select's reply goes through the C JSON parser once (~0.05 s of CPU instead
    of ~0.5 s at 1,000 peers, bench/README.md). Each call reads afresh: no cache to go
    stale in a long-lived caller (the cluster agent).
    """
    prepare_stream(db)
    ops = [
        {"op": "select", "table": table, "where": where, "columns": ["_uuid", *columns]}
        for table, columns, where in queries
    ]
    try:
        reply = _jsonrpc_call(db, "transact", ["Open_vSwitch", *ops], timeout)
    except OSError as exc:
        reason = exc.strerror or describe(exc)
        raise NotReady(f"cannot reach OVSDB at {db} ({reason})", HINT) from None
    result = reply.get("result")
    # A reply has a result or an error (JSON-RPC); one with neither is refused too.
    if reply.get("error") or not isinstance(result, list) or any("error" in r for r in result):
        raise OperationFailed(f"OVSDB refused to read: {reply.get('error') or result}")
    return [r["rows"] for r in result]


def _jsonrpc_call(db: str, method: str, params: list, timeout: float) -> dict[str, Any]:
    """One JSON-RPC request to OVSDB and its reply, parsed by the stdlib's C JSON decoder.

    NOTE(perf): the `ovs` library's parser is compiled only in Debian's python3-openvswitch;
    the wheel on PyPI falls back to pure Python, which made `status` at 1,000 peers 5.7x
    `ovs-vsctl list Interface` in a plain `pip install`. The stdlib's `json` is C everywhere.
    `ssl:` remotes still go through the `ovs` library (certificates, its SSL setup).
    """
    if db.startswith("ssl:"):
        return _jsonrpc_call_ovs(db, method, params, timeout)
    return jsonrpc.call(db, method, params, timeout)


def _jsonrpc_call_ovs(db: str, method: str, params: list, timeout: float) -> dict[str, Any]:
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
