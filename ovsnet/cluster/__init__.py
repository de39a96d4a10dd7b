"""Cluster mode: hosts coordinate through etcd (`ovsnet agent`, `ovsnet cluster ...`).

Pure pieces: `keys` (where everything lives in etcd and who may write it), `records` (what is
stored, strictly parsed), `subnets` and `claims` (which /24 to claim), `plan` (which tunnels a
host wants, reconnect timing). I/O: `ovsnet.etcd` (the etcd facade), `dataplane` (the core's
init and peer sync), `agent` (the loop), `runner` (the command's wiring), `admin` (status,
release).

Setting up (etcd 3.4+ with `--client-cert-auth`, certificates from `ovsnet pki`, each folder
etcd/{server,client}/NAME/ holding cert.pem, key.pem and ca.pem, the CA of the other side):

    ovsnet pki issue etcd1 --purpose etcd-server --ip ADDR   # etcd --cert-file/--key-file,
        # --trusted-ca-file etcd/server/etcd1/ca.pem (the etcd-client CA only),
        # --client-crl-file ca/etcd-client/crl.pem (read for every new connection)
    ovsnet pki issue root --purpose etcd-client   # the etcd admin: certificate CN "root"
    ovsnet pki issue HOST --purpose etcd-client   # one per host: CN = the host's etcd user name
    ovsnet cluster enable-auth --etcd URL --etcd-cert root/cert.pem --etcd-key root/key.pem \
        --etcd-ca root/ca.pem
    ovsnet cluster grant HOST  ...   # per host: user HOST, role ovsnet-host-HOST
    ovsnet agent --etcd URL --etcd-cert HOST/cert.pem --etcd-key HOST/key.pem \
        --etcd-ca HOST/ca.pem --name HOST

The agent claims a /24, prints (in its `init-failed` or `initialised` event) the Docker
options that /24 needs, runs `init` once Docker has them, and keeps a tunnel to every live host.
`--prefix A.B.C` reserves a given /24 instead (for hosts whose Docker is configured first).
Key layout and the RBAC model, including what stays shared: see `keys`.

Place: docs/architecture.md, "Packages and what they own":
cluster mode (pure planning, the agent service, the etcd facade's user).
"""

# Here, not in `plan`: the CLI reads it at import time, and every ovsnet command pays for
# what the CLI imports.
DEFAULT_RESYNC_INTERVAL = 120.0  # seconds between full reads: a backstop, not the main path
