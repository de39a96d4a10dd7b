"""The OVSDB facade: every read and write ovsnet makes to Open vSwitch's database.

`client.OvsDb` is the one object callers use: domain verbs that read (one `select` each) and
apply a `model.Changes` in one transaction, waiting for ovs-vswitchd. `connection` reaches the
database (TLS settings, the lazily connected IDL for writes, the `select`s for reads, each with
the workaround it needs); `datum` decodes OVSDB's JSON rows into the observed model (pure);
`writes` fills an IDL transaction with the rows a `Changes` asks for.

Nothing outside this package imports ovsdbapp (tests/unit/test_import_graph.py checks it); of
the ovs library, only its unixctl client is used elsewhere (`ipsec_monitor.py`). Callers import
the module that defines a name (`from ovsnet.ovsdb.client import OvsDb`).

Place: docs/architecture.md, "Layers": facade layer.
"""
