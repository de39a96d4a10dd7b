"""`OvsDb`: the domain verbs ovsnet reads and writes Open vSwitch's database with.

Reads (`snapshot`, `bridge`, `port_owner`, ...) are one read-only `select` each
(`connection.select`), decoded by `datum`. Writes take a `Changes` and make it one
transaction (`writes.write`) over the IDL, which connects lazily; `apply` then waits until
ovs-vswitchd has applied it (`cur_cfg` catches up with `next_cfg`) and reports each interface
that vswitchd refused (`Interface.error`).

Place: docs/architecture.md, "Layers": facade layer.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from ovsnet.errors import InvalidInput, NotReady, OperationFailed
from ovsnet.faults import checkpoint
from ovsnet.model import Changes, ObservedBridge, Snapshot
from ovsnet.ovsdb import connection, watch
from ovsnet.ovsdb.connection import COLUMNS, DEFAULT_TIMEOUT, interface_columns
from ovsnet.ovsdb.datum import as_list, by_uuid, datum, observed_bridge, optional
from ovsnet.ovsdb.writes import write


class OvsDb:
    """Domain verbs over one OVSDB (`unix:/path`, `tcp:host:port` or `ssl:host:port`)."""

    def __init__(self, db: str, timeout: float = DEFAULT_TIMEOUT):
        self.db = db
        self.timeout = timeout
        self._api = None

    # -- connection -----------------------------------------------------------------------

    @property
    def api(self):
        if self._api is None:
            self._api = connection.connect(self.db, self.timeout)
        return self._api

    def watch(self, listener: watch.Listener) -> None:
        """Hand `listener` every change the server reports from now on (connects if needed;
        ovsnet.ovsdb.watch). For a caller that keeps what it wrote, to learn of other writers."""
        self.api.idl.listeners.append(listener)

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
        return connection.select(self.db, self.timeout, *queries)

    def _system(self, column: str, empty):
        (rows,) = self._select(("Open_vSwitch", [column], []))
        return datum(rows[0][column]) if rows else empty

    def ovs_version(self) -> str | None:
        return self._version(optional(self._system("ovs_version", None)))

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
        what vswitchd reports (see `connection.interface_columns`)."""
        bridges, ports, interfaces = self._select(
            ("Bridge", COLUMNS["Bridge"], [["name", "==", name]]),
            ("Port", COLUMNS["Port"], []),
            ("Interface", interface_columns(state), []),
        )
        if not bridges:
            return None
        return observed_bridge(bridges[0], by_uuid(ports), by_uuid(interfaces))

    def snapshot(self, state: bool = True) -> Snapshot:
        """Every bridge with its ports, the OVS version and other_config: one read.
        state=False: without what vswitchd reports (see `connection.interface_columns`)."""
        system, bridges, ports, interfaces = self._select(
            ("Open_vSwitch", ["ovs_version", "other_config"], []),
            ("Bridge", COLUMNS["Bridge"], []),
            ("Port", COLUMNS["Port"], []),
            ("Interface", interface_columns(state), []),
        )
        row = system[0] if system else {"ovs_version": ["set", []], "other_config": ["map", []]}
        ports_by_uuid, interfaces_by_uuid = by_uuid(ports), by_uuid(interfaces)
        return Snapshot(
            ovs_version=self._version(optional(datum(row["ovs_version"]))),
            other_config=datum(row["other_config"]),
            bridges={
                b["name"]: observed_bridge(b, ports_by_uuid, interfaces_by_uuid) for b in bridges
            },
        )

    def ofports(self) -> dict[str, int | None]:
        """Every interface's ofport by name (None: vswitchd has not assigned one)."""
        (interfaces,) = self._select(("Interface", ["name", "ofport"], []))
        return {row["name"]: optional(datum(row["ofport"])) for row in interfaces}

    def bridge_names(self) -> list[str]:
        (bridges,) = self._select(("Bridge", ["name"], []))
        return sorted(row["name"] for row in bridges)

    def port_owner(self, port: str) -> str | None:
        """The bridge that holds a port of this name, if any."""
        bridges, ports = self._select(
            ("Bridge", ["name", "ports"], []), ("Port", ["name"], [["name", "==", port]])
        )
        wanted = {datum(row["_uuid"]) for row in ports}
        for bridge in bridges:
            if wanted & set(as_list(datum(bridge["ports"]))):
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
                write(self.api, txn, changes)
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
                row.name: optional(row.error)
                for row in tables["Interface"].rows.values()
                if row.name in names and optional(row.error)
            }

        failed = self._read(read)
        if failed:
            details = "; ".join(f"{name}: {error}" for name, error in sorted(failed.items()))
            raise OperationFailed(f"ovs-vswitchd refused {len(failed)} interface(s): {details}")
