"""IPsec on ovsnet's tunnels, pure: OVSDB names (`keys`), PSKs and certificate names
(`credentials`), OVS versions (`compat`), the host as read (`observed`), host-wide checks and
downgrades (`checks`), what OVSDB must hold (`plan`), ovs-monitor-ipsec's view (`tunnels_show`).

Callers import the module they need; the names below stay here for `services/peers`, which reads
as one piece with them.

Place: docs/architecture.md, "Layers": pure layer.
"""

from ovsnet.ipsec.checks import Transition, check_no_downgrade, check_plaintext_allowed
from ovsnet.ipsec.keys import METHOD_CERT, METHOD_PSK
from ovsnet.ipsec.observed import ObservedHost, ObservedTunnel
from ovsnet.ipsec.plan import TunnelIpsecRequest, other_config_after_removal, plan_tunnel_ipsec

__all__ = [
    "METHOD_CERT",
    "METHOD_PSK",
    "ObservedHost",
    "ObservedTunnel",
    "Transition",
    "TunnelIpsecRequest",
    "check_no_downgrade",
    "check_plaintext_allowed",
    "other_config_after_removal",
    "plan_tunnel_ipsec",
]
