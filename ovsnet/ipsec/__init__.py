"""IPsec on ovsnet's tunnels, pure: OVSDB names (`keys`), PSKs and certificate names
(`credentials`), OVS versions (`compat`), the host as read (`observed`), host-wide checks and
downgrades (`checks`), what OVSDB must hold (`plan`), ovs-monitor-ipsec's view (`tunnels_show`).

Callers import the module they need; the names below stay here for `services/peers`, which reads
as one piece with them.

Place: docs/architecture.md, "Layers": pure layer.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ovsnet.ipsec.checks import Transition, check_no_downgrade, check_plaintext_allowed
    from ovsnet.ipsec.keys import METHOD_CERT, METHOD_PSK
    from ovsnet.ipsec.observed import ObservedHost, ObservedTunnel
    from ovsnet.ipsec.plan import (
        TunnelIpsecRequest,
        other_config_after_removal,
        plan_tunnel_ipsec,
    )

# NOTE(perf): the names load their module on first use, so that importing one submodule
# (`status` reads only `observed` and `keys`) does not load the planners as well (~4 ms).
_HOME = {
    "Transition": "checks",
    "check_no_downgrade": "checks",
    "check_plaintext_allowed": "checks",
    "METHOD_CERT": "keys",
    "METHOD_PSK": "keys",
    "ObservedHost": "observed",
    "ObservedTunnel": "observed",
    "TunnelIpsecRequest": "plan",
    "other_config_after_removal": "plan",
    "plan_tunnel_ipsec": "plan",
}


def __getattr__(name: str) -> object:
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"ovsnet.ipsec.{_HOME[name]}"), name)
    globals()[name] = value
    return value


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
