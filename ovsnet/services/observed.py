"""The IPsec-relevant view of OVSDB (every tunnel of every bridge, the host's settings).

Shared by the IPsec settings, the peers and the plaintext guard; it imports none of them.

Place: docs/architecture.md, "Packages and what they own": the services layer.
"""

from __future__ import annotations

from ovsnet.ipsec import keys as ipsec_keys
from ovsnet.ipsec import observed as ipsec_observed
from ovsnet.model import Snapshot
from ovsnet.ovsdb.client import OvsDb

TUNNEL_PORT_TYPES = ("gre", "vxlan", "geneve", "stt", ipsec_keys.LEGACY_PORT_TYPE)


def observe_host(db: OvsDb) -> ipsec_observed.ObservedHost:
    return observe_snapshot(db.snapshot())


def observe_snapshot(snapshot: Snapshot) -> ipsec_observed.ObservedHost:
    """Every tunnel of every bridge (ovs-monitor-ipsec looks at all of them) and the settings."""
    tunnels = tuple(
        ipsec_observed.ObservedTunnel(port.name, port.type, dict(port.options))
        for bridge in snapshot.bridges.values()
        for port in bridge.ports.values()
        if port.type in TUNNEL_PORT_TYPES
    )
    return ipsec_observed.ObservedHost(snapshot.ovs_version, snapshot.other_config, tunnels)
