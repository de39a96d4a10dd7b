"""The etcd facade: every read and write ovsnet makes to etcd, as domain verbs.

`client.Etcd` is the one object callers use: reads, leases, claims and writes (`client`), over
one member at a time with failover (`connection`), watches (`watch`), users and roles
(`admin`). `config` checks where etcd is and the certificate files; `errors` turns the
client's exceptions into ovsnet's; `items` is what reads return.

Nothing outside this package imports the etcd client. The client is `pyetcd` (PyPI:
etcd-sdk-python), a maintained fork of python-etcd3 that speaks etcd's gRPC API. Not a client
of etcd's JSON gateway (etcd3gw): etcd refuses certificate common-name authentication through
the gateway by design (etcd PRs 10366 and 10392), and per-host RBAC rests on exactly that
(docs/decisions.md, "etcd client").

Place: docs/architecture.md, "Layers": facade layer.
"""
