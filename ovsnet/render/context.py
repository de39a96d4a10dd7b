"""What a host's first-boot configuration says: pure derivation, no I/O, no templates.

Everything the templates print is decided here, from the same addressing and MTU code that
`ovsnet init` uses (ovsnet.addressing, ovsnet.tunnels), so rendered files and a host set up by
hand cannot disagree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from ipaddress import IPv4Address
from pathlib import PurePosixPath

from ovsnet import __version__
from ovsnet.addressing import DEFAULT_SUPERNET, HOST_PREFIXLEN, HostAddressing, host_addressing
from ovsnet.errors import InvalidInput
from ovsnet.tunnels import overlay_mtu, parse_peer

DEFAULT_IMAGE = f"ghcr.io/ovsnet/ovsnet:{__version__}"
DEFAULT_UNDERLAY_MTU = 1500
TUNNEL_TYPE = "gre"

# The companion container and the paths it shares with the host (image built from container/).
COMPANION_NAME = "ovsnet"
OVS_DB_VOLUME = "ovsnet-openvswitch"
# What the companion is granted instead of --privileged: every other capability is dropped.
# Each reason names what inside the container needs it (docs/security.md, "The companion").
COMPANION_CAPABILITIES = {
    "NET_ADMIN": "netlink: OVS datapath and links, strongSwan's xfrm SAs, nftables guard",
    "NET_RAW": "packet sockets: gratuitous ARP for the moved gateway; strongSwan's connmark",
    "NET_BIND_SERVICE": "strongSwan binds IKE's UDP port 500 (and 4500)",
}
# Kernel modules the data plane needs. Without CAP_SYS_MODULE the container cannot load them:
# the companion unit loads them on the host before it starts the container.
DATAPATH_MODULES = ("openvswitch", "ip_gre")  # the kernel datapath and its GRE tunnels
IPSEC_MODULES = ("esp4", "xfrm_user")  # ESP transport mode, configured over xfrm netlink
# Keys, certificates and PSK files for IPsec are provisioned out of band by default (user-data
# is shown to anyone with read access to the instance); --ipsec-psk-embed / --ipsec-pki-embed
# put them in user-data instead, at these paths (the companion mounts the folder read-only).
IPSEC_CONFIG_DIR = "/etc/ovsnet"
IPSEC_PSK_PATH = f"{IPSEC_CONFIG_DIR}/ipsec.psk"
IPSEC_CERT_PATH = f"{IPSEC_CONFIG_DIR}/ipsec-cert.pem"
IPSEC_KEY_PATH = f"{IPSEC_CONFIG_DIR}/ipsec-key.pem"
IPSEC_CA_PATH = f"{IPSEC_CONFIG_DIR}/ipsec-ca.pem"

# Host binaries the units call. Both exist at these paths on Flatcar, Fedora CoreOS, Debian and
# Ubuntu (merged /usr), and `systemd-analyze verify` checks that they exist.
DOCKER = "/usr/bin/docker"
MODPROBE = "/usr/sbin/modprobe"

DOCKER_DROPIN_NAME = "50-ovsnet-bridge.conf"
VSWITCHD_UNIT = "ovs-vswitchd.service"  # Debian's and Ubuntu's openvswitch-switch
VSWITCHD_DROPIN_NAME = "50-ovsnet-guard.conf"
COMPANION_UNIT = "ovsnet.service"
INIT_UNIT = "ovsnet-init.service"
AGENT_UNIT = "ovsnet-agent.service"
# OVSNET_ETCD, OVSNET_ETCD_CERT, OVSNET_ETCD_KEY, OVSNET_ETCD_CA for the agent: paths and a URL,
# kept out of the rendered unit so one rendering serves every etcd setup.
AGENT_ENV_FILE = "/etc/ovsnet/agent.env"
HEAL_UNIT = "ovsnet-ipsec-heal.service"
GUARD_WATCH_UNIT = "ovsnet-guard-watch.service"
# Where `pip install ovsnet` as root (and the lab VMs' image) put the command.
OVSNET = "/usr/local/bin/ovsnet"

# Docker's remote API over mutual TLS (--docker-tls). The port is Docker's registered TLS port.
DOCKER_TLS_LISTEN = "0.0.0.0:2376"
DEFAULT_DOCKER_TLS_DIR = "/etc/docker/tls"
# The names `ovsnet pki issue-docker` writes in docker/HOST/server/: copy that folder as is.
DOCKER_TLS_FILES = {"tlscacert": "ca.pem", "tlscert": "cert.pem", "tlskey": "key.pem"}
DOCKER_TLS_SOCKET_UNIT = "ovsnet-docker-tls.socket"


@dataclass(frozen=True)
class TlsFiles:
    """dockerd's CA, server certificate and key as PEM text, for the opt-in to embed them."""

    ca: str = field(repr=False)
    cert: str = field(repr=False)
    key: str = field(repr=False)


@dataclass(frozen=True)
class EmbeddedFile:
    path: str
    mode: int
    contents: str = field(repr=False)


@dataclass(frozen=True)
class IpsecSecret:
    """One host's IPsec secret carried in its user-data (the opt-in; default: out of band).

    Either a PSK (the fleet's, one line) or this host's certificate, key and the CA, with the
    CN of every peer's certificate (certificate tunnels name the peer they expect).
    """

    psk: str | None = field(default=None, repr=False)
    cert: str | None = field(default=None, repr=False)
    key: str | None = field(default=None, repr=False)
    ca: str | None = field(default=None, repr=False)
    peer_names: tuple[tuple[str, str], ...] = ()  # (peer address, certificate CN)

    def embedded_files(self) -> list[EmbeddedFile]:
        """The files to write on the host: key and PSK readable by root only."""
        if self.psk is not None:
            return [EmbeddedFile(IPSEC_PSK_PATH, 0o600, self.psk + "\n")]
        # read_ipsec_pki, the only other maker, fills all three from the PKI directory
        assert self.ca is not None and self.cert is not None and self.key is not None, (
            "an IPsec secret without a PSK carries a certificate, its key and the CA"
        )
        return [
            EmbeddedFile(IPSEC_CA_PATH, 0o644, self.ca),
            EmbeddedFile(IPSEC_CERT_PATH, 0o644, self.cert),
            EmbeddedFile(IPSEC_KEY_PATH, 0o600, self.key),
        ]

    def setup_args(self) -> list[str]:
        """The `ovsnet ipsec ...` command that loads the embedded files (paths only)."""
        if self.psk is not None:
            return ["ipsec", "psk", "set", "--file", IPSEC_PSK_PATH]
        return [
            "ipsec", "cert", "--cert", IPSEC_CERT_PATH, "--key", IPSEC_KEY_PATH,
            "--ca", IPSEC_CA_PATH,
        ]  # fmt: skip


@dataclass(frozen=True)
class DockerTls:
    """dockerd's API on TCP with --tlsverify: where it listens, where its certificates are.

    By default the certificates are provisioned out of band (they are secrets, and user-data is
    readable by anyone who can read the instance's metadata); dockerd refuses to start until
    they exist. `embedded` is the opt-in to carry them in Ignition or cloud-init user-data.
    """

    directory: str = DEFAULT_DOCKER_TLS_DIR
    listen: str = DOCKER_TLS_LISTEN
    embedded: TlsFiles | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"tcp://{self.listen}"

    @property
    def files(self) -> dict[str, str]:
        """dockerd's option name -> the file's path on the host."""
        return {option: f"{self.directory}/{name}" for option, name in DOCKER_TLS_FILES.items()}

    @property
    def daemon_options(self) -> dict[str, str | bool]:
        """The daemon.json keys: TLS only, never "hosts" (see documents.docker_tls_socket)."""
        return {"tlsverify": True, **self.files}

    def embedded_files(self) -> list[EmbeddedFile]:
        """The files to write on the host when embedding: the key readable by root only."""
        if self.embedded is None:
            return []
        paths = self.files
        return [
            EmbeddedFile(paths["tlscacert"], 0o644, self.embedded.ca),
            EmbeddedFile(paths["tlscert"], 0o644, self.embedded.cert),
            EmbeddedFile(paths["tlskey"], 0o600, self.embedded.key),
        ]

    @property
    def flags(self) -> list[str]:
        """dockerd flags: the TCP listener and its TLS settings, for $DOCKER_OPTS."""
        return [
            f"--host={self.url}",
            "--tlsverify",
            *(f"--{option}={path}" for option, path in self.files.items()),
        ]


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
        return ["peer", "add", *(str(peer) for peer in self.peers), *self._ipsec_args()]

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
                ["peer", "add", str(peer), "--ipsec", "--remote-name", names[str(peer)]]
                for peer in self.peers
            ]
        return [self.init_args(), secret.setup_args(), *peers]

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
        docker_tls=_docker_tls(docker_tls, docker_tls_dir),
        image_tarball=_check_host_path(image_tarball, "image tarball") if image_tarball else None,
    )
    config.mtu  # noqa: B018 -- raises InvalidInput now if the underlay MTU is too small
    return config


_SAFE_TOKEN = re.compile(r"^[A-Za-z0-9._:/@=+,-]+$")
_SAFE_PATH = re.compile(r"^[A-Za-z0-9._/-]+$")


def command_line(argv: list[str]) -> str:
    """A command line for an Exec*= setting or a shell script.

    Every token ovsnet renders is an address, a number, a path or an image reference; refuse
    anything else rather than quote it (systemd treats `%` and `$` specially, shells more).
    """
    for token in argv:
        if not _SAFE_TOKEN.fullmatch(token):
            raise InvalidInput(f"{token!r} cannot be used in a rendered command line")
    return " ".join(argv)


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
    return DockerTls(directory=_check_tls_dir(directory))


def _check_tls_dir(directory: str) -> str:
    return _check_host_path(directory, "Docker TLS folder", "a folder like /etc/docker/tls")


def _check_host_path(given: str, what: str, example: str = "/var/lib/ovsnet/image.tar.gz") -> str:
    path = PurePosixPath(given.strip())
    text = str(path)
    if (
        not path.is_absolute()
        or text == "/"
        or ".." in path.parts
        or not _SAFE_PATH.fullmatch(text)
    ):
        raise InvalidInput(
            f"{what} {given!r} is not an absolute path on the host",
            f"give {example} (letters, digits, . _ - / only)",
        )
    return text


def _check_image(image: str) -> str:
    image = image.strip()
    if not _SAFE_TOKEN.fullmatch(image) or image.startswith("-"):
        raise InvalidInput(
            f"image {image!r} is not a container image reference",
            "give a reference like ghcr.io/ovsnet/ovsnet:0.1.0",
        )
    return image
