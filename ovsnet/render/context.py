"""What a host's first-boot configuration says: pure derivation, no I/O, no templates.

Everything the templates print is decided here, from the same addressing and MTU code that
`ovsnet init` uses (ovsnet.addressing, ovsnet.tunnels), so rendered files and a host set up by
hand cannot disagree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from ipaddress import IPv4Address

from ovsnet import __version__
from ovsnet.addressing import DEFAULT_SUPERNET, HOST_PREFIXLEN, HostAddressing, host_addressing
from ovsnet.errors import InvalidInput
from ovsnet.tunnels import overlay_mtu, parse_peer

DEFAULT_IMAGE = f"ghcr.io/ovsnet/ovsnet:{__version__}"
DEFAULT_UNDERLAY_MTU = 1500
TUNNEL_TYPE = "gre"

# The companion container and the paths it shares with the host (issue 6 builds the image).
COMPANION_NAME = "ovsnet"
OVS_DB_VOLUME = "ovsnet-openvswitch"
# Keys, certificates and PSK files for IPsec are provisioned out of band (never in user-data,
# which cloud providers show to anyone with read access to the instance).
IPSEC_CONFIG_DIR = "/etc/ovsnet"

# Host binaries the units call. Both exist at these paths on Flatcar, Fedora CoreOS, Debian and
# Ubuntu (merged /usr), and `systemd-analyze verify` checks that they exist.
DOCKER = "/usr/bin/docker"
MODPROBE = "/usr/sbin/modprobe"

DOCKER_DROPIN_NAME = "50-ovsnet-bridge.conf"
COMPANION_UNIT = "ovsnet.service"
INIT_UNIT = "ovsnet-init.service"


@dataclass(frozen=True)
class HostConfig:
    """Everything one host's rendered configuration depends on."""

    addressing: HostAddressing
    underlay_mtu: int
    peers: tuple[IPv4Address, ...]
    ipsec: bool = False
    image: str = DEFAULT_IMAGE
    name: str | None = None

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
        return ["peer", "add", *(str(peer) for peer in self.peers), *self._ipsec_args()]

    def _ipsec_args(self) -> list[str]:
        return ["--ipsec"] if self.ipsec else []

    def ovsnet_commands(self) -> list[list[str]]:
        """The ovsnet commands the init unit runs, in order."""
        peers = self.peer_args()
        return [self.init_args(), *([peers] if peers else [])]

    def companion_run(self) -> list[str]:
        """`docker run` of the companion container: OVS and ovsnet, privileged, host network."""
        mounts = [
            # the host's kernel modules, for the OVS start scripts inside (openvswitch; ESP)
            "/lib/modules:/lib/modules:ro",
            # OVSDB survives container upgrades in a named volume
            f"{OVS_DB_VOLUME}:/var/lib/openvswitch",
            # the OVSDB and vswitchd sockets, for tools on the host
            "/run/openvswitch:/run/openvswitch",
        ]
        if self.ipsec:
            mounts.append(f"{IPSEC_CONFIG_DIR}:{IPSEC_CONFIG_DIR}:ro")
        volume_args = [arg for mount in mounts for arg in ("--volume", mount)]
        return [
            DOCKER, "run", "--rm", "--name", COMPANION_NAME,
            "--net=host", "--privileged", *volume_args, self.image,
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
) -> HostConfig:
    """Validate the inputs of `ovsnet render` and derive the host's configuration."""
    addressing = host_addressing(prefix=prefix, subnet=subnet, supernet=supernet)
    own = {own_ip} if own_ip is not None else set()
    parsed = [parse_peer(text, own, addressing.supernet) for text in peers]
    duplicates = sorted({str(peer) for peer in parsed if parsed.count(peer) > 1})
    if duplicates:
        raise InvalidInput(
            f"peer {', '.join(duplicates)} given more than once", "give each peer once"
        )
    config = HostConfig(
        addressing=addressing,
        underlay_mtu=underlay_mtu,
        peers=tuple(parsed),
        ipsec=ipsec,
        image=_check_image(image),
        name=name,
    )
    config.mtu  # noqa: B018 -- raises InvalidInput now if the underlay MTU is too small
    return config


_SAFE_TOKEN = re.compile(r"^[A-Za-z0-9._:/@=+,-]+$")


def command_line(argv: list[str]) -> str:
    """A command line for an Exec*= setting or a shell script.

    Every token ovsnet renders is an address, a number, a path or an image reference; refuse
    anything else rather than quote it (systemd treats `%` and `$` specially, shells more).
    """
    for token in argv:
        if not _SAFE_TOKEN.match(token):
            raise InvalidInput(f"{token!r} cannot be used in a rendered command line")
    return " ".join(argv)


def _check_image(image: str) -> str:
    image = image.strip()
    if not _SAFE_TOKEN.match(image) or image.startswith("-"):
        raise InvalidInput(
            f"image {image!r} is not a container image reference",
            "give a reference like ghcr.io/ovsnet/ovsnet:0.1.0",
        )
    return image
