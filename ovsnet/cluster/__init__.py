"""Cluster mode: hosts coordinate through etcd (`ovsnet agent`, `ovsnet cluster ...`).

Pure pieces: `keys` (where everything lives in etcd and who may write it), `records`
(what is stored, strictly parsed), `subnets` (which /24 to claim), `plan` (which tunnels a host
wants, reconnect backoff). I/O: `ovsnet.etcd` (the etcd facade) and `agent` (the loop).
"""
