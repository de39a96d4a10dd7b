"""The names IPsec uses in OVSDB: authentication methods, Open_vSwitch other_config keys,
Interface options and port types (ovs-vswitchd.conf.db(5), "IPsec").

Place: docs/architecture.md, "Layers": pure layer.
"""

from __future__ import annotations

METHOD_PSK = "psk"
METHOD_CERT = "cert"
METHODS = (METHOD_PSK, METHOD_CERT)
# Keys of Open_vSwitch other_config.
CERT_KEYS = ("certificate", "private_key", "ca_cert")
SKB_MARK_KEY = "ipsec_skb_mark"
DROP_PLAINTEXT_MARK = "0/1"  # drop tunnelled packets whose skb_mark LSB is 0, i.e. all of them
# Where the host's default PSK is (`ovsnet ipsec psk set`), for `peer add --ipsec` without
# --psk-file: the path, never the key. OVS needs the key on each tunnel (options:psk); a copy
# in other_config would be one more place for it to leak from (ovsdb-server's log and backups).
# vswitchd and ovs-monitor-ipsec ignore keys they do not know.
PSK_FILE_KEY = "ovsnet-ipsec-psk-file"
# Older ovsnet kept the PSK itself here; `ipsec psk set`/`unset` and `reset` remove it.
LEGACY_PSK_KEY = "ovsnet-ipsec-psk"
# Keys of Interface options that make ovs-monitor-ipsec treat a tunnel as IPsec.
TUNNEL_IPSEC_KEYS = ("psk", "remote_name", "remote_cert")

LEGACY_PORT_TYPE = "ipsec_gre"
NATIVE_IPSEC_TUNNEL_TYPES = ("gre", "vxlan", "geneve")
