"""Which Open vSwitch versions offer IPsec, and as which port type: OVS < 2.7 only knows the
legacy `ipsec_gre` (PSK); 2.7 to 2.10 have no IPsec; 2.11 on make it a property of an ordinary
gre/vxlan/geneve port applied by ovs-monitor-ipsec.

Place: docs/architecture.md, "Layers": pure layer.
"""

from __future__ import annotations

import re

from ovsnet.errors import InvalidInput, NotReady
from ovsnet.ipsec.keys import LEGACY_PORT_TYPE, METHOD_PSK, NATIVE_IPSEC_TUNNEL_TYPES


def parse_ovs_version(text: str | None) -> tuple[int, int, int]:
    match = re.match(r"^\s*(\d+)\.(\d+)(?:\.(\d+))?", text or "")
    if not match and not text:
        raise NotReady(
            "cannot tell the Open vSwitch version: neither ovs-vswitchd nor ovsdb-server "
            "answered on its control socket (next to the OVSDB socket), and OVSDB has no "
            "Open_vSwitch:ovs_version (only ovs-ctl, the distributions' start script, records it)",
            "is ovs-vswitchd running? or record it: ovs-vsctl set Open_vSwitch . ovs_version=X.Y.Z",
        )
    if not match:
        raise NotReady(f"cannot tell the Open vSwitch version from {text!r}")
    major, minor, patch = match.groups()
    return int(major), int(minor), int(patch or 0)


def port_type(ovs_version: str | None, tunnel_type: str, method: str) -> str:
    """The Interface type for an IPsec tunnel on this OVS."""
    version = parse_ovs_version(ovs_version)
    shown = ".".join(map(str, version))
    if version < (2, 7):
        if tunnel_type != "gre" or method != METHOD_PSK:
            raise NotReady(
                f"Open vSwitch {shown} supports IPsec only as ipsec_gre with a PSK",
                "use --type gre with --psk-file, or upgrade OVS to 2.11 or later",
            )
        return LEGACY_PORT_TYPE
    if version < (2, 11):
        raise NotReady(
            f"Open vSwitch {shown} has no IPsec: ipsec_gre was removed in 2.7 and tunnel "
            "IPsec (ovs-monitor-ipsec) arrived in 2.11",
            "upgrade Open vSwitch to 2.11 or later",
        )
    if tunnel_type not in NATIVE_IPSEC_TUNNEL_TYPES:
        raise InvalidInput(
            f"IPsec is not available for {tunnel_type} tunnels",
            f"use one of {', '.join(NATIVE_IPSEC_TUNNEL_TYPES)}",
        )
    return tunnel_type
