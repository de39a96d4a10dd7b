"""What a host's first-boot configuration says: pure derivation, no I/O, no templates.

Everything the templates print is decided here, from the same addressing and MTU code that
`ovsnet init` uses (ovsnet.addressing, ovsnet.tunnels), so rendered files and a host set up by
hand cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from ipaddress import IPv4Address, IPv4Network

from ovsnet import __version__
from ovsnet.addressing import DEFAULT_SUPERNET, HOST_PREFIXLEN, HostAddressing, host_addressing
from ovsnet.batch import join_steps
from ovsnet.errors import InvalidInput
from ovsnet.render.host_layout import (
    COMPANION_CAPABILITIES,
    COMPANION_NAME,
    DATAPATH_MODULES,
    DOCKER,
    IPSEC_CONFIG_DIR,
    IPSEC_MODULES,
    OVS_DB_VOLUME,
)
from ovsnet.render.host_secrets import DockerTls, IpsecSecret, TlsFiles
from ovsnet.render.safe_text import check_host_path, check_image, check_tls_dir, command_line
from ovsnet.tunnels import overlay_mtu, parse_peer

DEFAULT_IMAGE = f"ghcr.io/ovsnet/ovsnet:{__version__}"
DEFAULT_UNDERLAY_MTU = 1500
TUNNEL_TYPE = "gre"


@dataclass(frozen=True)
class HostConfig:
    """Everything one host's rendered configuration depends on."""

    addressing: HostAddressing
    underlay_mtu: int
    peers: tuple[IPv4Address, ...]
    ipsec: bool = False
    image: str = DEFAULT_IMAGE
    name: str | None = None
    docker_tls: DockerTls | None = None  # None: Docker's API stays on its local socket only
    # A `docker save | gzip` file on the host: the unit loads it and never pulls (no registry).
    image_tarball: str | None = None
    ipsec_secret: IpsecSecret | None = field(default=None, repr=False)  # None: out of band
    # Each peer's container subnet, in the order of `peers` (empty: not known, as with --peer):
    # its tunnel then carries only that subnet's sources (ovsnet.antispoof).
    peer_subnets: tuple[IPv4Network, ...] = ()

    @property
    def mtu(self) -> int:
        """The overlay MTU containers and br0 use."""
        return overlay_mtu(self.underlay_mtu, TUNNEL_TYPE, ipsec=self.ipsec)

    @property
    def docker_options(self) -> dict[str, str | int]:
        return self.addressing.docker_options(self.mtu)

    @property
    def docker_flags(self) -> list[str]:
        return self.addressing.docker_flags(self.mtu)

    @property
    def daemon_json_options(self) -> dict[str, str | int | bool]:
        """Everything daemon.json says: the bridge options, and TLS when asked for."""
        tls = self.docker_tls.daemon_options if self.docker_tls else {}
        return {**self.docker_options, **tls}

    @property
    def dropin_flags(self) -> list[str]:
        """Everything the docker.service drop-in adds to dockerd's command line."""
        return [*self.docker_flags, *(self.docker_tls.flags if self.docker_tls else [])]

    def init_args(self) -> list[str]:
        """`ovsnet init` arguments for this host (everything explicit, nothing left to defaults)."""
        return [
            "init",
            *self._subnet_args(),
            "--supernet",
            str(self.addressing.supernet),
            "--underlay-mtu",
            str(self.underlay_mtu),
            # init leaves the same room for IPsec in br0's MTU as Docker's --mtu here
            *self._ipsec_args(),
        ]

    def _subnet_args(self) -> list[str]:
        subnet = self.addressing.subnet
        if subnet.prefixlen == HOST_PREFIXLEN:
            return ["--prefix", self.addressing.prefix]
        return ["--subnet", str(subnet)]

    def peer_args(self) -> list[str] | None:
        """`ovsnet peer add` for every peer at once (one OVSDB transaction); None: no peers."""
        if not self.peers:
            return None
        subnets = [arg for subnet in self.peer_subnets for arg in ("--subnet", str(subnet))]
        return ["peer", "add", *(str(peer) for peer in self.peers), *self._ipsec_args(), *subnets]

    def _subnet_of(self, peer: IPv4Address) -> list[str]:
        if not self.peer_subnets:
            return []
        return ["--subnet", str(self.peer_subnets[self.peers.index(peer)])]

    def _ipsec_args(self) -> list[str]:
        return ["--ipsec"] if self.ipsec else []

    def agent_args(self) -> list[str]:
        """`ovsnet agent` for this host: it claims the same /24 in etcd that the flags name."""
        name = ["--name", self.name] if self.name else []
        subnet = self.addressing.subnet
        prefix = ["--prefix", self.addressing.prefix] if subnet.prefixlen == HOST_PREFIXLEN else []
        return [
            "agent", *name, *prefix,
            "--supernet", str(self.addressing.supernet),
            "--underlay-mtu", str(self.underlay_mtu),
            *self._ipsec_args(),
        ]  # fmt: skip

    def ovsnet_commands(self) -> list[list[str]]:
        """The ovsnet commands the init unit runs, in order: the secret before the tunnels, so
        ovs-monitor-ipsec never loads a connection without its key."""
        secret = self.ipsec_secret
        one_call = self.peer_args()  # every peer in one `peer add`: None without peers
        if secret is None:
            return [self.init_args(), *([one_call] if one_call else [])]
        peers: list[list[str]]
        if secret.psk is not None or one_call is None:
            peers = [one_call] if one_call else []
        else:  # certificates: each tunnel names the CN its peer's certificate must carry
            names = dict(secret.peer_names)
            peers = [
                ["peer", "add", str(peer), "--ipsec", "--remote-name", names[str(peer)],
                 *self._subnet_of(peer)]
                for peer in self.peers
            ]  # fmt: skip
        return [self.init_args(), secret.setup_args(), *peers]

    def boot_command(self) -> list[str]:
        """The `ovsnet` arguments of the init unit: ovsnet_commands() in one process (a Python
        start took 20-80 s per command in an emulated VM, while the companion waited)."""
        return join_steps(self.ovsnet_commands())

    def host_modules(self) -> list[str]:
        """The kernel modules the companion unit loads on the host before the container."""
        return [*DATAPATH_MODULES, *(IPSEC_MODULES if self.ipsec else ())]

    def companion_run(self) -> list[str]:
        """`docker run` of the companion container: OVS and ovsnet on the host network, with
        only the capabilities of COMPANION_CAPABILITIES."""
        mounts = [
            # read-only: `ovsnet doctor` tells built-in modules from missing ones (the container
            # cannot load modules; the unit loads them on the host)
            "/lib/modules:/lib/modules:ro",
            # OVSDB survives container upgrades in a named volume
            f"{OVS_DB_VOLUME}:/var/lib/openvswitch",
            # the OVSDB and vswitchd sockets, for tools on the host
            "/run/openvswitch:/run/openvswitch",
        ]
        if self.ipsec:
            mounts.append(f"{IPSEC_CONFIG_DIR}:{IPSEC_CONFIG_DIR}:ro")
        volume_args = [arg for mount in mounts for arg in ("--volume", mount)]
        capabilities = ["--cap-drop=ALL", *(f"--cap-add={cap}" for cap in COMPANION_CAPABILITIES)]
        # An image loaded from a tarball has no registry to pull from: never try.
        pull = ["--pull=never"] if self.image_tarball else []
        return [
            DOCKER, "run", "--rm", *pull, "--name", COMPANION_NAME,
            "--net=host", *capabilities, *volume_args, self.image,
        ]  # fmt: skip

    def companion_exec(self, args: list[str]) -> list[str]:
        """Run an ovsnet command inside the companion container."""
        return [DOCKER, "exec", COMPANION_NAME, "ovsnet", *args]


def build_host_config(
    *,
    prefix: str | None = None,
    subnet: str | None = None,
    supernet: str = DEFAULT_SUPERNET,
    underlay_mtu: int = DEFAULT_UNDERLAY_MTU,
    peers: list[str] | tuple[str, ...] = (),
    ipsec: bool = False,
    image: str = DEFAULT_IMAGE,
    name: str | None = None,
    own_ip: IPv4Address | None = None,
    docker_tls: bool = False,
    docker_tls_dir: str | None = None,
    image_tarball: str | None = None,
    peer_subnets: list[str] | tuple[str, ...] = (),
) -> HostConfig:
    """Validate the inputs of `ovsnet render` and derive the host's configuration
    (`peer_subnets`: none, or one per peer in the same order)."""
    addressing = host_addressing(prefix=prefix, subnet=subnet, supernet=supernet)
    own = {own_ip} if own_ip is not None else set()
    parsed = [parse_peer(text, own, addressing.supernet) for text in peers]
    duplicates = sorted({str(peer) for peer in parsed if parsed.count(peer) > 1})
    if duplicates:
        raise InvalidInput(
            f"peer {', '.join(duplicates)} given more than once", "give each peer once"
        )
    if peer_subnets and len(peer_subnets) != len(parsed):
        raise InvalidInput(
            f"{len(peer_subnets)} peer subnets for {len(parsed)} peers", "give one per peer"
        )
    subnets = tuple(_peer_subnet(text, addressing) for text in peer_subnets)
    config = HostConfig(
        addressing=addressing,
        underlay_mtu=underlay_mtu,
        peers=tuple(parsed),
        ipsec=ipsec,
        image=check_image(image),
        name=name,
        docker_tls=_docker_tls(docker_tls, docker_tls_dir),
        image_tarball=check_host_path(image_tarball, "image tarball") if image_tarball else None,
        peer_subnets=subnets,
    )
    config.mtu  # noqa: B018 -- raises InvalidInput now if the underlay MTU is too small
    return config


def embed_docker_tls(config: HostConfig, files: TlsFiles) -> HostConfig:
    """The same host with its Docker TLS certificates and key carried in the rendered file."""
    if config.docker_tls is None:
        raise InvalidInput("embedding Docker's certificates needs --docker-tls")
    return replace(config, docker_tls=replace(config.docker_tls, embedded=files))


def embed_ipsec_secret(config: HostConfig, secret: IpsecSecret) -> HostConfig:
    """The same host with its IPsec secret carried in the rendered file."""
    if not config.ipsec:
        raise InvalidInput("embedding an IPsec secret needs --ipsec (or ipsec: true)")
    if secret.psk is None:
        names = dict(secret.peer_names)
        missing = [str(peer) for peer in config.peers if str(peer) not in names]
        if missing:
            raise InvalidInput(
                f"no certificate name known for peer {', '.join(missing)}",
                "certificates are embedded from an inventory, whose host names are the CNs",
            )
        for _, name in secret.peer_names:
            command_line([name])  # a CN lands on a command line: refuse anything unsafe
    return replace(config, ipsec_secret=secret)


def _docker_tls(enabled: bool, directory: str | None) -> DockerTls | None:
    if not enabled:
        if directory is not None:
            raise InvalidInput(
                "a Docker TLS folder was given without --docker-tls",
                "add --docker-tls (or docker_tls: true in the inventory)",
            )
        return None
    if directory is None:
        return DockerTls()
    return DockerTls(directory=check_tls_dir(directory))


def _peer_subnet(text: str, own: HostAddressing) -> IPv4Network:
    """A peer's container subnet: inside the supernet, and not this host's own."""
    from ovsnet.antispoof import parse_subnet

    subnet = parse_subnet(text)
    if not subnet.subnet_of(own.supernet) or subnet.overlaps(own.subnet):
        raise InvalidInput(
            f"peer subnet {subnet} is not another host's slice of {own.supernet}",
            "give each peer's own subnet inside the supernet",
        )
    return subnet
