"""What the companion container is asked to do, and what healing means. Pure, no I/O."""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass
from ipaddress import IPv4Interface
from pathlib import Path

from ovsnet.addressing import DEFAULT_SUPERNET, HostAddressing, host_addressing
from ovsnet.errors import InvalidInput
from ovsnet.model import (
    DEFAULT_BRIDGE,
    DEFAULT_DOCKER_BRIDGE,
    DOCKER_BRIDGE_KEY,
    SUBNET_KEY,
    SUPERNET_KEY,
    LinkState,
    ObservedBridge,
)
from ovsnet.services.host import DATAPATHS, InitRequest
from ovsnet.tunnels import overlay_mtu, parse_peer

DEFAULT_HOOK_DIR = Path("/etc/ovsnet/hooks.d")
# How the MTU recorded in OVSDB maps back to an underlay MTU (init records only the former).
_REFERENCE_UNDERLAY = 1500
_GRE_OVERHEAD = _REFERENCE_UNDERLAY - overlay_mtu(_REFERENCE_UNDERLAY, "gre")


@dataclass(frozen=True)
class CompanionConfig:
    """The container's settings (OVSNET_* environment variables or `ovsnet supervise` options).

    Without a prefix/subnet the container only runs OVS and heals what OVSDB records: the
    rendered units run `ovsnet init` and `peer add` through `docker exec` instead.
    """

    datapath: str = "system"
    prefix: str | None = None
    subnet: str | None = None
    supernet: str = DEFAULT_SUPERNET
    underlay_mtu: int | None = None
    peers: tuple[str, ...] = ()
    peers_file: Path | None = None
    bridge: str = DEFAULT_BRIDGE
    docker_bridge: str = DEFAULT_DOCKER_BRIDGE
    ipsec: bool = False
    # The PSK file for the configured peers (None: the host's PSK, `ovsnet ipsec psk set`).
    psk_file: Path | None = None
    # Re-stating the configured peers never turns an IPsec tunnel into plain GRE without this.
    allow_downgrade: bool = False
    hook_dir: Path = DEFAULT_HOOK_DIR

    def __post_init__(self) -> None:
        if self.datapath not in DATAPATHS:
            raise InvalidInput(f"unknown datapath {self.datapath!r}", "use system or netdev")
        if self.peers and self.peers_file:
            raise InvalidInput(
                "peers given both as a list and as a file", "use OVSNET_PEERS or OVSNET_PEERS_FILE"
            )
        if self.psk_file and not self.ipsec:
            raise InvalidInput("a PSK file given without IPsec", "set OVSNET_IPSEC=yes too")
        if (self.peers or self.peers_file) and not self.configured:
            raise InvalidInput(
                "peers given without the host's subnet", "set OVSNET_PREFIX or OVSNET_SUBNET too"
            )
        if self.configured:
            self.addressing()  # raises InvalidInput now rather than at the first heal

    @property
    def configured(self) -> bool:
        """Whether the container itself runs `init` (rather than a unit through docker exec)."""
        return bool(self.prefix or self.subnet)

    def addressing(self) -> HostAddressing:
        return host_addressing(prefix=self.prefix, subnet=self.subnet, supernet=self.supernet)

    def peer_request(self, peers: tuple[str, ...]):
        """The configured peers as `peer add` (or `peer sync`) would state them: with IPsec
        (PSK) when the container runs IPsec, so they never come up in clear."""
        from ovsnet.services.peers import IpsecChoice, PeerRequest

        return PeerRequest(
            bridge=self.bridge,
            peers=peers,
            ipsec=IpsecChoice(psk_file=self.psk_file) if self.ipsec else None,
            allow_downgrade=self.allow_downgrade,
        )

    def init_request(self) -> InitRequest:
        return InitRequest(
            addressing=self.addressing(),
            bridge=self.bridge,
            docker_bridge=self.docker_bridge,
            datapath=self.datapath,
            underlay_mtu=self.underlay_mtu,
            ipsec=self.ipsec,
        )


def parse_peers(text: str | None) -> tuple[str, ...]:
    """`198.51.100.2, 198.51.100.3` or one per line (commas, spaces and newlines all separate)."""
    if not text:
        return ()
    return tuple(token for token in re.split(r"[\s,]+", text.strip()) if token)


def parse_peers_file(data: str | bytes, source: str = "peers file") -> list[str]:
    """Peers one per line (commas and spaces also separate), `#` starts a comment. A bad
    address or a line that is not UTF-8 is an error naming source:line."""
    if isinstance(data, str):
        data = data.encode()
    peers = []
    for number, raw in enumerate(data.split(b"\n"), 1):
        try:
            line = raw.decode()
        except UnicodeDecodeError:
            raise InvalidInput(f"{source}:{number}: not UTF-8 text") from None
        for token in parse_peers(line.split("#", 1)[0]):
            try:
                parse_peer(token, set(), None)
            except InvalidInput as exc:
                raise InvalidInput(f"{source}:{number}: {exc.message}", exc.hint) from None
            peers.append(token)
    return peers


def underlay_mtu_for(overlay: int) -> int:
    """The underlay MTU that makes `init` choose this overlay MTU again (plain GRE)."""
    return overlay + _GRE_OVERHEAD


def recorded_addressing(bridge: ObservedBridge) -> HostAddressing | None:
    subnet = bridge.external_ids.get(SUBNET_KEY)
    supernet = bridge.external_ids.get(SUPERNET_KEY)
    if not (bridge.managed and subnet and supernet):
        return None
    return host_addressing(subnet=subnet, supernet=supernet)


def heal_request(bridge: ObservedBridge) -> InitRequest | None:
    """The `init` that re-creates exactly what OVSDB records for this bridge (None: not ours).

    Re-applying it changes nothing on a healthy host and re-attaches the docker bridge after
    Docker put the gateway address back on it.
    """
    addressing = recorded_addressing(bridge)
    if addressing is None:
        return None
    internal = bridge.internal
    mtu = internal.mtu_request if internal else None
    return InitRequest(
        addressing=addressing,
        bridge=bridge.name,
        docker_bridge=bridge.external_ids.get(DOCKER_BRIDGE_KEY, DEFAULT_DOCKER_BRIDGE),
        datapath=bridge.datapath_type or "system",
        underlay_mtu=underlay_mtu_for(mtu) if mtu else None,
    )


def gateway_to_restore(
    addressing: HostAddressing, docker_link: LinkState, bridge_link: LinkState
) -> IPv4Interface | None:
    """The gateway address to put back on the OVS bridge when it is on neither link.

    With the userspace datapath the bridge's interface is a tap that ovs-vswitchd recreates
    (without its address) every time it restarts; `init` would refuse, because the address is
    not on the docker bridge either.
    """
    want = addressing.bridge_address
    if not bridge_link.exists or want in bridge_link.addresses or want in docker_link.addresses:
        return None
    if any(address.network != want.network for address in docker_link.addresses):
        return None  # Docker runs with another subnet: let init explain that
    return want


class RestartBudget:
    """Allow at most `limit` restarts of a daemon within `window` seconds.

    Past that the supervisor gives up and exits non-zero, so Docker's (or systemd's) restart
    policy starts a fresh container instead of looping on a daemon that cannot run.
    """

    def __init__(self, limit: int = 5, window: float = 60.0):
        self.limit = limit
        self.window = window
        self._times: deque[float] = deque()

    def allow(self, now: float) -> bool:
        while self._times and now - self._times[0] > self.window:
            self._times.popleft()
        if len(self._times) >= self.limit:
            return False
        self._times.append(now)
        return True


class Backoff:
    """Retry delays for a heal that failed: 0.5 s doubling up to `ceiling`, reset on success."""

    def __init__(self, first: float = 0.5, ceiling: float = 10.0):
        self.first = first
        self.ceiling = ceiling
        self._next = first

    def next_delay(self) -> float:
        delay = self._next
        self._next = min(self._next * 2, self.ceiling)
        return delay

    def reset(self) -> None:
        self._next = self.first
