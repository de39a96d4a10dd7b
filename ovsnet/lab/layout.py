"""The lab's shape: names, addresses and paths of every emulated host. Pure, no I/O.

Everything the lab creates is derived from (name, token, host count, base directory), so a later
`ovsnet lab down` can find and remove it from the state file alone, even after a crash.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from ipaddress import IPv4Interface, IPv4Network
from pathlib import Path

from ovsnet.addressing import HostAddressing, host_addressing
from ovsnet.errors import InvalidInput
from ovsnet.tunnels import overlay_mtu

DEFAULT_BASE_DIR = Path("/run/ovsnet-lab")
UNDERLAY = IPv4Network("198.51.100.0/24")  # TEST-NET-2: never routed, safe inside the lab
UNDERLAY_HOST_OFFSET = 10  # h1 is 198.51.100.11, h2 .12, ...
UNDERLAY_MTU = 1500
SUPERNET = "10.0.0.0/8"
MAX_HOSTS = 40
PHY_BRIDGE = "br-phy"
HOST_NIC = "eth0"
SWITCH_BRIDGE = "sw"
NETNS_PREFIX = "ovl-"
# sun_path holds 108 bytes; keep a margin for the sockets daemons create below the run dir.
MAX_SOCKET_PATH = 100
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,23}$")


def new_token() -> str:
    """Random part of every namespace name, so concurrent labs never collide."""
    return secrets.token_hex(3)


def new_lab_name() -> str:
    return f"lab-{secrets.token_hex(3)}"


def check_lab_name(name: str) -> str:
    if not _NAME_RE.match(name):
        raise InvalidInput(
            f"lab name {name!r} is not valid",
            "use 1-24 characters: lower-case letters, digits and '-', starting with a letter "
            "or digit",
        )
    return name


def check_host_count(hosts: int) -> int:
    if not 1 <= hosts <= MAX_HOSTS:
        raise InvalidInput(f"a lab has 1 to {MAX_HOSTS} hosts, not {hosts}")
    return hosts


@dataclass(frozen=True)
class HostLayout:
    """One emulated host: where it sits on the underlay and in the overlay, where it keeps files."""

    index: int  # 1-based
    netns: str
    rundir: Path
    addressing: HostAddressing

    @property
    def name(self) -> str:
        return f"h{self.index}"

    @property
    def switch_port(self) -> str:
        """The veth end on the switch bridge (inside the switch namespace)."""
        return self.name

    @property
    def underlay(self) -> IPv4Interface:
        address = UNDERLAY.network_address + UNDERLAY_HOST_OFFSET + self.index
        return IPv4Interface(f"{address}/{UNDERLAY.prefixlen}")

    @property
    def underlay_ip(self) -> str:
        return str(self.underlay.ip)

    @property
    def prefix(self) -> str:
        return self.addressing.prefix

    @property
    def supernet(self) -> str:
        return str(self.addressing.supernet)

    @property
    def overlay_mtu(self) -> int:
        return overlay_mtu(UNDERLAY_MTU, "gre")

    @property
    def db_socket(self) -> Path:
        return self.rundir / "db.sock"

    @property
    def db(self) -> str:
        return f"unix:{self.db_socket}"

    @property
    def docker_dir(self) -> Path:
        return self.rundir / "docker"

    @property
    def docker_socket(self) -> Path:
        return self.docker_dir / "docker.sock"

    @property
    def docker_host(self) -> str:
        return f"unix://{self.docker_socket}"

    def docker_flags(self) -> list[str]:
        """`--bip`, `--fixed-cidr`, `--mtu` for this host's /24, as ovsnet would tell a user."""
        return self.addressing.docker_flags(self.overlay_mtu)

    def longest_socket_path(self) -> Path:
        # containerd's socket is the deepest one a lab host has.
        return self.docker_dir / "exec" / "containerd" / "containerd.sock.ttrpc"


@dataclass(frozen=True)
class LabLayout:
    name: str
    token: str
    hosts: tuple[HostLayout, ...]
    directory: Path

    @property
    def switch_netns(self) -> str:
        return f"{NETNS_PREFIX}{self.token}-sw"

    @property
    def state_file(self) -> Path:
        return self.directory / "state.json"

    def host(self, name: str) -> HostLayout:
        for host in self.hosts:
            if host.name == name:
                return host
        known = ", ".join(h.name for h in self.hosts)
        raise InvalidInput(f"lab {self.name!r} has no host {name!r}", f"pick one of {known}")


def host_subnet(supernet: IPv4Network, index: int) -> IPv4Network:
    """The index-th /24 of the supernet: h1 gets 10.0.1.0/24 of 10.0.0.0/8."""
    first = supernet.network_address
    return IPv4Network(f"{first + index * 256}/24")


def lab_layout(name: str, token: str, hosts: int, base_dir: Path = DEFAULT_BASE_DIR) -> LabLayout:
    """Derive every name, address and path of a lab of `hosts` hosts."""
    check_lab_name(name)
    check_host_count(hosts)
    directory = Path(base_dir) / name
    supernet = IPv4Network(SUPERNET)
    layouts = tuple(
        HostLayout(
            index=index,
            netns=f"{NETNS_PREFIX}{token}-h{index}",
            rundir=directory / f"h{index}",
            addressing=host_addressing(
                subnet=str(host_subnet(supernet, index)), supernet=str(supernet)
            ),
        )
        for index in range(1, hosts + 1)
    )
    layout = LabLayout(name=name, token=token, hosts=layouts, directory=directory)
    _check_limits(layout)
    return layout


def _check_limits(layout: LabLayout) -> None:
    longest = max(len(str(h.longest_socket_path())) for h in layout.hosts)
    if longest > MAX_SOCKET_PATH:
        raise InvalidInput(
            f"lab directory {layout.directory} is too deep for Unix socket paths "
            f"({longest} > {MAX_SOCKET_PATH} characters)",
            "use a shorter --workdir or lab name",
        )
