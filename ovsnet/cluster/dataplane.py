"""What the agent changes on its host, composed from the core services (init, peer sync)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network

from ovsnet.addressing import host_addressing
from ovsnet.hostlock import host_lock
from ovsnet.model import DEFAULT_BRIDGE, DEFAULT_DOCKER_BRIDGE, SUBNET_KEY
from ovsnet.tunnels import overlay_mtu


@dataclass(frozen=True)
class DataplaneConfig:
    db: str
    supernet: IPv4Network
    bridge: str = DEFAULT_BRIDGE
    docker_bridge: str = DEFAULT_DOCKER_BRIDGE
    datapath: str = "system"
    underlay_mtu: int | None = None
    tunnel_type: str = "gre"
    # IPsec with a pre-shared key: the key file stays on this host (never in etcd); None with
    # ipsec=True means the host PSK set by `ovsnet ipsec psk set`.
    ipsec: bool = False
    psk_file: str | None = None
    # IPsec with certificates (`ovsnet ipsec cert` set them up on this host): each tunnel
    # names its peer's certificate CN, published in the peer's record. The fingerprint this
    # host publishes (of --ipsec-cert): the certificate OVS hands to IKE must be that one.
    ipsec_cert_fingerprint: str | None = None
    # An IPsec tunnel is never rewritten as plaintext (say, the agent restarted without
    # --ipsec) unless this is set.
    allow_downgrade: bool = False
    init: bool = True  # False: the bridge exists already (made by `ovsnet init`); tunnels only


class OvsDataplane:
    """The real thing: `ovsnet init` for the claimed subnet, `peer sync` for the live peers.

    Keeps one OVSDB connection open for the agent's lifetime (a reconcile costs one
    transaction, not a reconnect), and a copy of what it last applied (ovsnet.cluster.peer_sync:
    a change is planned from it, not from a read of every port and flow).
    """

    def __init__(self, config: DataplaneConfig):
        from ovsnet.cluster.peer_sync import CachedPeerSync
        from ovsnet.netlink import Netlink
        from ovsnet.ovsdb.client import OvsDb

        self.config = config
        self.db = OvsDb(config.db)
        self.net = Netlink()
        self.peer_sync = CachedPeerSync(self.db, self.net)

    def close(self) -> None:
        self.db.close()
        self.net.close()

    def current_subnet(self) -> IPv4Network | None:
        bridge = self.db.bridge(self.config.bridge)
        text = bridge.external_ids.get(SUBNET_KEY) if bridge else None
        try:
            return IPv4Network(text) if text else None
        except ValueError:
            return None

    def forget(self) -> None:
        """Read the bridge and the flows again at the next apply (the periodic resync)."""
        self.peer_sync.forget()

    def stale(self) -> str | None:
        """Why the copy of what was applied may be wrong (None: nothing says so)."""
        return self.peer_sync.stale()

    def init(self, subnet: IPv4Network) -> dict:
        from ovsnet.services.host import InitRequest, init_host

        self.peer_sync.forget("init")  # init may change the bridge
        addressing = host_addressing(subnet=str(subnet), supernet=str(self.config.supernet))
        if not self.config.init:
            mtu = overlay_mtu(
                self.config.underlay_mtu or 1500, self.config.tunnel_type, self.config.ipsec
            )
            return {"docker_options": addressing.docker_options(mtu), "steps": []}
        request = InitRequest(
            addressing=addressing,
            bridge=self.config.bridge,
            docker_bridge=self.config.docker_bridge,
            datapath=self.config.datapath,
            underlay_mtu=self.config.underlay_mtu,
            tunnel_type=self.config.tunnel_type,
            ipsec=self.config.ipsec,
        )
        with host_lock(self.config.db, holder="ovsnet agent init"):
            report = init_host(self.db, self.net, request)
        return {"docker_options": report.details["docker_options"], "steps": report.steps}

    def apply_peers(
        self,
        peers: tuple[str, ...],
        names: tuple[tuple[str, str], ...] = (),
        subnets: Mapping[str, IPv4Network] | None = None,
    ) -> dict:
        """`peer sync` to `peers`; each tunnel named after its peer's certificate (certificate
        IPsec) and pinned to its peer's subnet, where known."""
        from pathlib import Path

        from ovsnet.services.peers import IpsecChoice, PeerRequest

        choice = None
        if self.config.ipsec and self.config.ipsec_cert_fingerprint:
            choice = IpsecChoice(remote_names=names)
        elif self.config.ipsec:
            choice = IpsecChoice(
                psk_file=Path(self.config.psk_file) if self.config.psk_file else None
            )
        request = PeerRequest(
            bridge=self.config.bridge,
            peers=peers,
            tunnel_type=self.config.tunnel_type,
            ipsec=choice,
            allow_downgrade=self.config.allow_downgrade,
            subnets=tuple((subnets or {}).get(peer) for peer in peers),
        )
        with host_lock(self.config.db, holder="ovsnet agent peer sync"):
            return self.peer_sync.sync(request)

    def check_own_certificate(self) -> None:
        """The record will say which certificate this host presents in IKE: refuse to start
        if OVS is set up with another one (peers would be told one thing and shown another).
        Before anything is published."""
        published = self.config.ipsec_cert_fingerprint
        if published is None:
            return
        from ovsnet.errors import InvalidInput, NotReady
        from ovsnet.pki import load_certificate, summarize

        path = self.db.other_config().get("certificate")
        if not path:
            raise NotReady(
                "this host has no IPsec certificate in OVS",
                "run `ovsnet ipsec cert --cert FILE --key FILE --ca FILE` first",
            )
        try:
            with open(path, "rb") as handle:
                summary = summarize(load_certificate(handle.read(), path))
        except OSError as exc:
            raise NotReady(f"cannot read OVS's IPsec certificate {path}: {exc.strerror}") from None
        if "sha256:" + summary.fingerprint_sha256 != published:
            raise InvalidInput(
                f"OVS presents the IPsec certificate {path} (CN {summary.common_name}), "
                "not the one given with --ipsec-cert",
                "give --ipsec-cert the certificate set with `ovsnet ipsec cert`",
            )

    def local_addresses(self) -> set[IPv4Address]:
        """This host's own addresses: a record claiming one is left out (peer sync refuses)."""
        return self.net.local_addresses()


class NoDataplane:
    """`--no-dataplane`: claim, publish and watch only (tests, or a host whose data plane is
    managed by something else). Remembers what it was asked to do."""

    def __init__(self, supernet: IPv4Network, tunnel_type: str = "gre"):
        self.supernet = supernet
        self.tunnel_type = tunnel_type
        self.subnet: IPv4Network | None = None
        self.peers: tuple[str, ...] = ()
        self.names: tuple[tuple[str, str], ...] = ()

    def close(self) -> None:
        pass

    def forget(self) -> None:
        pass

    def stale(self) -> str | None:
        return None

    def current_subnet(self) -> IPv4Network | None:
        return self.subnet

    def init(self, subnet: IPv4Network) -> dict:
        self.subnet = subnet
        addressing = host_addressing(subnet=str(subnet), supernet=str(self.supernet))
        return {"docker_options": addressing.docker_options(overlay_mtu(1500, self.tunnel_type))}

    def apply_peers(
        self,
        peers: tuple[str, ...],
        names: tuple[tuple[str, str], ...] = (),
        subnets: Mapping[str, IPv4Network] | None = None,
    ) -> dict:
        self.peers = peers
        self.names = names
        return {}

    def local_addresses(self) -> set[IPv4Address]:
        return set()
