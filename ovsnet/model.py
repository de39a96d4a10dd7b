"""Plain data shared by the pure planner and the adapters: what we want and what we saw.

`Changes` is one OVSDB transaction the planner fills and the OVSDB facade writes; `Snapshot` is
what one read of OVSDB saw.

Place: docs/architecture.md, "Layers": pure layer (the data planners and facades share).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Interface, IPv4Network

# external_ids keys that mark ovsnet's own objects, so reconcile and reset touch nothing else.
MANAGED_KEY = "ovsnet-managed"
PEER_KEY = "ovsnet-peer"
# The peer's container subnet, when known: its tunnel is then pinned to it (ovsnet.antispoof).
PEER_SUBNET_KEY = "ovsnet-peer-subnet"
ROLE_KEY = "ovsnet-role"
SUBNET_KEY = "ovsnet-subnet"
SUPERNET_KEY = "ovsnet-supernet"
DOCKER_BRIDGE_KEY = "ovsnet-docker-bridge"
ROLE_DOCKER_BRIDGE = "docker-bridge"

IPSEC_OPTION_KEYS = ("psk", "remote_name", "remote_cert")

# The bridges every command, unit and agent uses unless told otherwise (--bridge, --docker-bridge).
DEFAULT_BRIDGE = "br0"
DEFAULT_DOCKER_BRIDGE = "docker0"


@dataclass(frozen=True)
class BridgeSpec:
    """The OVS bridge `init` wants."""

    name: str
    datapath_type: str
    mtu: int
    docker_bridge: str
    subnet: IPv4Network
    supernet: IPv4Network

    @property
    def external_ids(self) -> dict[str, str]:
        return {
            MANAGED_KEY: "true",
            SUBNET_KEY: str(self.subnet),
            SUPERNET_KEY: str(self.supernet),
            DOCKER_BRIDGE_KEY: self.docker_bridge,
        }


@dataclass(frozen=True)
class TunnelSpec:
    """One tunnel port toward one peer."""

    remote_ip: IPv4Address
    port: str
    type: str = "gre"
    extra_options: tuple[tuple[str, str], ...] = ()
    # None: not given; an existing tunnel then keeps the subnet it has recorded.
    subnet: IPv4Network | None = None

    @property
    def options(self) -> dict[str, str]:
        return {"remote_ip": str(self.remote_ip), **dict(self.extra_options)}

    @property
    def external_ids(self) -> dict[str, str]:
        ids = {PEER_KEY: str(self.remote_ip)}
        if self.subnet is not None:
            ids[PEER_SUBNET_KEY] = str(self.subnet)
        return ids

    bfd = {"enable": "true"}


@dataclass(frozen=True)
class ObservedPort:
    name: str
    type: str
    options: dict[str, str] = field(default_factory=dict)
    external_ids: dict[str, str] = field(default_factory=dict)
    protected: bool = False
    bfd: dict[str, str] = field(default_factory=dict)
    bfd_status: dict[str, str] = field(default_factory=dict)
    link_state: str | None = None
    statistics: dict[str, int] = field(default_factory=dict)
    error: str | None = None
    ofport: int | None = None
    mtu_request: int | None = None

    @property
    def peer(self) -> str | None:
        return self.external_ids.get(PEER_KEY)

    @property
    def peer_subnet(self) -> str | None:
        return self.external_ids.get(PEER_SUBNET_KEY)

    @property
    def ipsec(self) -> bool:
        return self.type == "ipsec_gre" or any(k in self.options for k in IPSEC_OPTION_KEYS)

    def state(self) -> str:
        """One word for a person: error, down, up, or the BFD state when BFD runs."""
        if self.error:
            return "error"
        if self.ofport in (None, -1):
            return "pending"
        bfd_state = self.bfd_status.get("state")
        if bfd_state:
            return bfd_state
        return self.link_state or "unknown"


@dataclass(frozen=True)
class ObservedBridge:
    name: str
    datapath_type: str
    external_ids: dict[str, str]
    ports: dict[str, ObservedPort]

    @property
    def managed(self) -> bool:
        return self.external_ids.get(MANAGED_KEY) == "true"

    @property
    def internal(self) -> ObservedPort | None:
        return self.ports.get(self.name)

    @property
    def tunnels(self) -> dict[str, ObservedPort]:
        return {p.peer: p for p in self.ports.values() if p.peer}

    @property
    def docker_port(self) -> ObservedPort | None:
        for port in self.ports.values():
            if port.external_ids.get(ROLE_KEY) == ROLE_DOCKER_BRIDGE:
                return port
        return None


@dataclass(frozen=True)
class LinkState:
    name: str
    exists: bool
    up: bool = False
    mtu: int | None = None
    mac: str | None = None
    addresses: tuple[IPv4Interface, ...] = ()


@dataclass
class Changes:
    """One OVSDB transaction's worth of ensure/remove operations (filled by the planner)."""

    bridge: BridgeSpec | None = None
    # The bridge tunnels are added to (when `bridge` above is not being ensured too).
    tunnel_bridge: str | None = None
    system_ports: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    add_tunnels: list[TunnelSpec] = field(default_factory=list)
    update_tunnels: list[TunnelSpec] = field(default_factory=list)
    remove_ports: list[str] = field(default_factory=list)
    delete_bridge: str | None = None
    other_config: dict[str, str | None] = field(default_factory=dict)
    # Options set on existing tunnel interfaces, other options kept: {port: {key: value}}
    # (a PSK rotation changes options:psk and nothing else of the tunnel).
    tunnel_options: dict[str, dict[str, str]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(
            self.bridge
            or self.tunnel_options
            or self.system_ports
            or self.add_tunnels
            or self.update_tunnels
            or self.remove_ports
            or self.delete_bridge
            or self.other_config
        )

    @property
    def carries_secret(self) -> bool:
        """Whether writing these changes sends a PSK to OVSDB."""
        specs = self.add_tunnels + self.update_tunnels
        return any("psk" in spec.options for spec in specs) or any(
            "psk" in options for options in self.tunnel_options.values()
        )


@dataclass(frozen=True)
class Snapshot:
    """What one read of OVSDB saw."""

    ovs_version: str | None
    other_config: dict[str, str]
    bridges: dict[str, ObservedBridge]
