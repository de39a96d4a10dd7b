"""Stand-in for `ovsnet peer add --ipsec` until the CLI has it: plan with `ovsnet.ipsec`,
write with the OVSDB facade. Run as a script, one process per host, like the CLI:

    python tests/lab/ipsec_tunnel_tool.py DB BRIDGE REMOTE_IP psk
    python tests/lab/ipsec_tunnel_tool.py DB BRIDGE REMOTE_IP cert REMOTE_NAME

The PSK comes from the host's stored default (`ovsnet ipsec psk set`), never from argv.
(A separate process per host also because ovsdbapp keeps its first connection in a class
attribute: a second OvsDb in the same process talks to the first database.)
"""

from __future__ import annotations

import sys
from ipaddress import IPv4Address

from ovsnet import ipsec
from ovsnet.model import TunnelSpec
from ovsnet.ovsdb import Changes, OvsDb
from ovsnet.services.ipsec import observe_host
from ovsnet.tunnels import port_name


def main(argv: list[str]) -> int:
    db_url, bridge, remote, method, *rest = argv
    request = ipsec.TunnelIpsecRequest(method, remote_name=rest[0] if rest else None)
    remote_ip = IPv4Address(remote)
    port = port_name(remote_ip)
    with OvsDb(db_url) as db:
        plan = ipsec.plan_tunnel_ipsec(request, observe_host(db), port=port)
        spec = TunnelSpec(remote_ip, port, plan.port_type, plan.options)
        db.apply(
            Changes(tunnel_bridge=bridge, add_tunnels=[spec], other_config=dict(plan.other_config))
        )
    print(port)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
