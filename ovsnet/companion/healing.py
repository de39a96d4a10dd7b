"""How the companion heals the host: put the gateway back, apply the configuration once, keep
the peers file's peers, and the OVSDB and netlink connections that stay open between heals.

The supervisor (`supervisor.py`) decides when to heal, under the host lock, and retries.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from ovsnet import arp
from ovsnet.companion.config import (
    CompanionConfig,
    gateway_to_restore,
    heal_request,
    parse_peers_file,
    recorded_addressing,
)
from ovsnet.companion.daemons import OvsPaths
from ovsnet.errors import InvalidInput

if TYPE_CHECKING:  # loaded when first used: the companion starts OVS before it needs them
    from ovsnet.netlink import Netlink
    from ovsnet.ovsdb.client import OvsDb

log = logging.getLogger("ovsnet.companion")


class HostHealer:
    """The host's overlay state the companion keeps healed, and its open connections."""

    def __init__(self, config: CompanionConfig, paths: OvsPaths):
        self.config = config
        self.paths = paths
        self.configured = False  # the configured init + peers ran successfully
        self.peers_file_stamp: float | None = None
        self.heal_started = 0.0
        self.db: OvsDb | None = None
        self.net: Netlink | None = None

    def connections(self) -> tuple[OvsDb, Netlink]:
        """OVSDB and netlink stay connected between heals: a heal is then a few local reads."""
        from ovsnet.netlink import Netlink
        from ovsnet.ovsdb.client import OvsDb

        if self.db is None:
            self.db = OvsDb(self.paths.db)
        if self.net is None:
            self.net = Netlink()
        return self.db, self.net

    def disconnect(self) -> None:
        for connection in (self.db, self.net):
            if connection is not None:
                connection.close()
        self.db = self.net = None

    def heal_once(self) -> bool:
        """One heal; True when IPsec is in use on the bridge (its daemons must run)."""
        from ovsnet.services.host import init_host

        db, net = self.connections()
        bridge = db.bridge(self.config.bridge)
        if bridge is not None:
            self._restore_gateway(net, bridge)
        if self.config.configured and not self.configured:
            self.log_report(init_host(db, net, self.config.init_request()))
            self.add_configured_peers(db, net)
            self.configured = True
            bridge = db.bridge(self.config.bridge)
        else:
            request = heal_request(bridge) if bridge is not None else None
            if request is not None:
                self.log_report(init_host(db, net, request))
            if self.config.peers_file and self._peers_file_changed():
                self.add_configured_peers(db, net)
        return bridge is not None and any(p.ipsec for p in bridge.tunnels.values())

    def _restore_gateway(self, net, bridge) -> None:
        addressing = recorded_addressing(bridge)
        if addressing is None:
            return
        request = heal_request(bridge)
        if request is None:  # not a bridge ovsnet made: nothing of ours to heal
            return
        docker_bridge = request.docker_bridge
        address = gateway_to_restore(addressing, net.link(docker_bridge), net.link(bridge.name))
        if address is not None:
            net.add_address(bridge.name, address)
            arp.announce(bridge.name, address.ip)
            log.info(
                "healed: put the gateway %s back on %s (recreated by ovs-vswitchd)",
                address,
                bridge.name,
            )

    def add_configured_peers(self, db, net) -> None:
        from ovsnet.services.peers import add_peers

        exact = self.config.peers_file is not None
        peers = self._read_peers_file() if exact else list(self.config.peers)
        if not peers and not exact:
            return
        request = self.config.peer_request(tuple(peers))
        self.log_report(add_peers(db, net, request, exact=exact))

    def _read_peers_file(self) -> list[str]:
        path = self.config.peers_file
        assert path is not None  # called only when a peers file is configured
        try:
            self.peers_file_stamp = path.stat().st_mtime
            return parse_peers_file(path.read_bytes(), str(path))
        except OSError as exc:
            raise InvalidInput(f"cannot read peers file {path}: {exc.strerror}") from None

    def _peers_file_changed(self) -> bool:
        if self.config.peers_file is None:
            return False
        try:
            return self.config.peers_file.stat().st_mtime != self.peers_file_stamp
        except OSError:
            return False

    def log_report(self, report) -> None:
        if report.steps:
            took = time.monotonic() - self.heal_started
            log.info("%s (%.2f s): %s", report.command, took, "; ".join(report.steps))
