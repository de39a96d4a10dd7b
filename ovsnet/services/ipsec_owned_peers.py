"""ovsnet's own IPsec peers as a repair sees them, and repairing one.

Which tunnels are ovsnet's (ports tagged with the peer key, with an IPsec method), what
ovs-monitor-ipsec sees of each, which of them a re-negotiation can fix (`repairable`), whether
the plaintext guard allows touching them now (`guard_problem`), and repairing one peer through
the strongSwan facade with one log line (`repair_and_log`). Shared by the healer
(`ipsec_heal`) and `ovsnet ipsec repair` (`ipsec_repair`).

Place: docs/architecture.md, "Packages and what they own": the services layer.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from ipaddress import IPv4Address

from ovsnet import strongswan
from ovsnet.errors import OvsnetError
from ovsnet.ipsec import observed as ipsec_observed
from ovsnet.ipsec import tunnels_show
from ovsnet.ipsec_healing import PeerObservation
from ovsnet.model import Snapshot
from ovsnet.plaintext_guard import desired_guard, guard_for_tunnels
from ovsnet.services.observed import observe_snapshot

log = logging.getLogger("ovsnet.ipsec.heal")


@dataclass(frozen=True)
class OwnedPeer:
    """One IPsec tunnel ovsnet created, and ovs-monitor-ipsec's view of it (None: not seen)."""

    peer: IPv4Address
    tunnel: ipsec_observed.ObservedTunnel
    monitor: tunnels_show.MonitorTunnel | None
    bfd_state: str | None = None  # the port's BFD state, when BFD runs on it

    @property
    def port(self) -> str:
        return self.tunnel.port

    @property
    def seen(self) -> tunnels_show.MonitorTunnel:
        """ovs-monitor-ipsec's view, for the peers `repairable` chose (they all have one)."""
        assert self.monitor is not None, f"{self.port}: not seen by ovs-monitor-ipsec"
        return self.monitor

    def summary(self) -> str:
        return self.seen.summary(self.bfd_state)

    def observation(self, misrouted: bool = False) -> PeerObservation:
        seen = self.seen
        return PeerObservation(
            peer=str(self.peer),
            port=self.port,
            state=self.summary(),
            ike_established=seen.ike_established,
            child_installed=seen.child_installed,
            bfd_state=self.bfd_state,
            misrouted=misrouted,
            idle=seen.state == "CONFIGURED" and seen.idle,
        )

    def connections(self) -> strongswan.PeerConnections:
        """The strongSwan connections and kernel policy filters of this peer only."""
        guard = guard_for_tunnels([self.tunnel])
        return strongswan.PeerConnections(
            peer=self.peer,
            connections=self.seen.connection_names,
            selectors=tuple(tuple(s) for s in strongswan.policy_selectors(guard)),
        )


def owned_peers(
    snapshot: Snapshot, monitor: list[tunnels_show.MonitorTunnel] | None
) -> list[OwnedPeer]:
    """ovsnet's IPsec tunnels (tagged with the peer key) of every bridge."""
    seen = {tunnel.name: tunnel for tunnel in monitor or ()}
    found = []
    for bridge in snapshot.bridges.values():
        for port in bridge.tunnels.values():
            tunnel = ipsec_observed.ObservedTunnel(port.name, port.type, dict(port.options))
            if tunnel.method is None:
                continue
            try:
                peer = IPv4Address(port.peer)
            except ValueError:
                continue
            bfd_state = port.bfd_status.get("state")
            found.append(OwnedPeer(peer, tunnel, seen.get(port.name), bfd_state))
    return sorted(found, key=lambda p: p.peer)


def repairable(peers: list[OwnedPeer]) -> list[OwnedPeer]:
    """Peers strongSwan has connections for: a tunnel the monitor does not see, or judged
    invalid, is a configuration problem (status says which) that no re-negotiation fixes."""
    return [p for p in peers if p.monitor is not None and p.monitor.state == "CONFIGURED"]


def guard_problem(snapshot: Snapshot) -> str | None:
    """Why a repair must not run now (the peers' plaintext would not be dropped), or None."""
    from ovsnet import nftables

    wanted = desired_guard(observe_snapshot(snapshot))
    if not wanted:
        return "no IPsec tunnel here drops plaintext, so a repair could expose traffic"
    if nftables.read_guard().needs(wanted):
        return "the plaintext guard is not in place: re-negotiating now could send plaintext"
    return None


def read_monitor(run_dir: str | None) -> list[tunnels_show.MonitorTunnel]:
    from ovsnet.ipsec_monitor import monitor_tunnels

    return monitor_tunnels(run_dir)


def initiate_and_log(peer: OwnedPeer) -> None:
    """Initiate one idle peer's connections (nothing torn down) and log one line."""
    try:
        strongswan.initiate(peer.connections().connections)
    except OvsnetError as exc:  # tried again after HealPolicy.initiate_every
        log.warning("initiating IPsec peer %s (%s) failed: %s", peer.peer, peer.port,
                    exc.one_line())  # fmt: skip
        return
    log.info("IPsec peer %s (%s): no IKE SA under way, initiated", peer.peer, peer.port)


def repair_and_log(peer: OwnedPeer, reason: str) -> str | None:
    """Repair one peer and log one line; the error, if it failed."""
    try:
        strongswan.repair_peer(peer.connections())
    except OvsnetError as exc:
        log.error("IPsec repair of peer %s (%s) failed: %s", peer.peer, peer.port, exc.one_line())
        return exc.one_line()
    log.info("IPsec repair of peer %s (%s): %s", peer.peer, peer.port, reason)
    return None
