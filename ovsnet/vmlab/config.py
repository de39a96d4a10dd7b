"""Facts and pure derivations of the real-kernel VM lab: cache key, addresses, qemu command line.

No I/O here (except reading pyproject/apt sources text handed in by callers), so all of it is
unit-tested in tests/unit/test_vmlab_config.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from ipaddress import IPv4Interface, IPv4Network
from pathlib import Path

# Bump when the build recipe (image.py) changes in a way that changes the image.
IMAGE_RECIPE_VERSION = "8"
DEBIAN_SUITE = "bookworm"
DEFAULT_MIRROR = "http://deb.debian.org/debian"

# What a Debian 12 host running ovsnet has, plus the lab's measuring tools.
APT_PACKAGES = (
    "linux-image-amd64",
    "initramfs-tools",
    "systemd-sysv",
    "udev",
    "dbus",
    "openssh-server",
    "openvswitch-switch",
    "openvswitch-ipsec",
    "strongswan",
    "libstrongswan-standard-plugins",
    "strongswan-swanctl",  # charon's vici plugin: `ovsnet ipsec rotate-psk`
    "docker.io",
    "iptables",
    "nftables",
    "iproute2",
    "iputils-ping",
    "kmod",
    "procps",
    "ethtool",
    "openssl",
    "tcpdump",
    "iperf3",
    "python3",
    "python3-venv",
    "busybox-static",
    # Seeded labs (`vmlab up --inventory`) hand each VM its user-data through a NoCloud seed.
    "cloud-init",
)

# Where things live inside the VM. The venv is empty in the image: ovsnet and its Python
# dependencies come on a small read-only "layer" disk (label below) mounted at VM_LAYER and put
# on the venv's path by a .pth file, so neither a new ovsnet nor a new dependency rebuilds the
# image.
VM_VENV = "/opt/ovsnet/venv"
VM_LAYER = "/opt/ovsnet/layer"
LAYER_LABEL = "ovsnet-layer"
VM_BUSYBOX_TAR = "/opt/ovsnet/busybox-rootfs.tar"
BUSYBOX_DOCKER_IMAGE = "ovsnet-busybox:latest"
# Seeded labs attach the companion image archive on a disk of this label, which the image's
# fstab mounts here (read-only, nofail): the "volume" the lab, as the cloud, gives each host.
IMAGES_LABEL = "ovsnet-images"
VM_IMAGES_DIR = "/var/lib/ovsnet-images"
# Or, preloaded: a Docker data root with the companion image already loaded (built on the host at
# native speed: `docker load` under emulation takes minutes), mounted at /var/lib/docker when the
# kernel line asks for it (DOCKER_DISK_WANTS); writable through a per-VM qcow2 overlay.
DOCKER_LABEL = "ovsnet-docker"
DOCKER_DISK_WANTS = "systemd.wants=var-lib-docker.mount"
# Host services the companion container replaces. Seeded VMs boot with them masked, like a Docker
# host that never had OVS or strongSwan installed (the image has them for the host-unit labs).
COMPANION_MASKED_UNITS = (
    "openvswitch-switch.service",
    "ovsdb-server.service",
    "ovs-vswitchd.service",
    "openvswitch-ipsec.service",
    "strongswan-starter.service",
)

# The underlay: a TEST-NET-2 /24 on a bridge inside the lab's own network namespace.
UNDERLAY = IPv4Network("198.51.100.0/24")
UNDERLAY_HOST_INDEX = 254  # the namespace's bridge address (ssh from the host side)
UNDERLAY_VM_BASE = 10  # vm1 = .11, vm2 = .12, ...

DEFAULT_CACHE = "/var/cache/ovsnet-vmlab"
DEFAULT_RUN = "/var/tmp/ovsnet-vmlab"
DEFAULT_MEMORY_MIB = 1024
# qemu's TCG translation buffer defaults to 1 GiB per VM; 256 MiB keeps RSS near 750 MiB.
TCG_TB_SIZE_MIB = 256


def cache_dir() -> Path:
    return Path(os.environ.get("OVSNET_VMLAB_CACHE") or DEFAULT_CACHE)


def run_root() -> Path:
    return Path(os.environ.get("OVSNET_VMLAB_RUN") or DEFAULT_RUN)


def python_dependencies(pyproject_text: str) -> list[str]:
    """The `[project] dependencies` of pyproject.toml, as pip requirement strings."""
    import tomllib

    return list(tomllib.loads(pyproject_text)["project"]["dependencies"])


def image_key(apt_packages: tuple[str, ...], ssh_public_key: str) -> str:
    """Cache key of the base image: everything baked into it, and nothing else.

    Python code is not part of it: ovsnet and its dependencies come on the layer disk.
    """
    recipe = {
        "recipe": IMAGE_RECIPE_VERSION,
        "suite": DEBIAN_SUITE,
        "apt": sorted(apt_packages),
        "ssh": ssh_public_key.strip(),
    }
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]


def wheelhouse_key(python_deps: list[str]) -> str:
    return hashlib.sha256("\n".join(sorted(python_deps)).encode()).hexdigest()[:16]


def file_key(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


_URIS_RE = re.compile(r"^URIs:\s*(\S+)", re.MULTILINE)
_DEB_LINE_RE = re.compile(r"^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+" + DEBIAN_SUITE + r"\s", re.MULTILINE)


def debian_mirror(sources: list[str]) -> str:
    """The host's own Debian mirror (first one serving the suite), from apt source texts."""
    for text in sources:
        for stanza in re.split(r"\n\s*\n", text):
            suites = re.search(r"^Suites:(.*)$", stanza, re.MULTILINE)
            uris = _URIS_RE.search(stanza)
            if suites and uris and DEBIAN_SUITE in suites.group(1).split():
                return uris.group(1).rstrip("/")
        match = _DEB_LINE_RE.search(text)
        if match:
            return match.group(1).rstrip("/")
    return DEFAULT_MIRROR


@dataclass(frozen=True)
class VmSpec:
    """One VM of a lab: its name, underlay address and NIC MAC.

    A lab from an inventory gives each VM its host's name and address (`seed.vm_specs`);
    otherwise VMs are vm1, vm2, ... at .11, .12, ... of UNDERLAY.
    """

    index: int  # 1-based
    lab_id: str
    host_name: str | None = None
    address: str | None = None
    network: IPv4Network = UNDERLAY

    @property
    def name(self) -> str:
        return self.host_name or f"vm{self.index}"

    @property
    def underlay(self) -> IPv4Interface:
        if self.address:
            return IPv4Interface(f"{self.address}/{self.network.prefixlen}")
        address = self.network.network_address + UNDERLAY_VM_BASE + self.index
        return IPv4Interface(f"{address}/{self.network.prefixlen}")

    @property
    def underlay_ip(self) -> str:
        return str(self.underlay.ip)

    @property
    def mac(self) -> str:
        # Locally administered (52:54:00 is qemu's range); the lab id keeps concurrent labs apart.
        lab = int(self.lab_id[:4], 16)
        return f"52:54:00:{lab >> 8:02x}:{lab & 0xFF:02x}:{self.index:02x}"

    @property
    def tap(self) -> str:
        return f"tap{self.index}"


def host_side_address(
    network: IPv4Network = UNDERLAY, taken: tuple[str, ...] = ()
) -> IPv4Interface:
    """The lab namespace's own address on the underlay: .254, or the highest one not taken."""
    for index in range(UNDERLAY_HOST_INDEX, 0, -1):
        address = network.network_address + index
        if address in network and str(address) not in taken:
            return IPv4Interface(f"{address}/{network.prefixlen}")
    raise ValueError(f"no free address in {network}")  # unreachable for a /24 and <= 20 VMs


def kernel_cmdline(vm: VmSpec, seeded: bool = False, docker_disk: bool = False) -> str:
    """Boot arguments: root disk, serial console, and the VM's identity.

    Unseeded: systemd-network-generator turns `ip=` into a systemd-networkd unit for eth0 and
    systemd takes the hostname from `systemd.hostname=`, so one base image serves every VM
    unchanged, and cloud-init is off. Seeded: the VM's cloud-init takes name and address from
    its NoCloud seed, and the host services the companion replaces are masked.
    """
    identity = [f"systemd.mask={unit}" for unit in COMPANION_MASKED_UNITS]
    if docker_disk:
        identity.append(DOCKER_DISK_WANTS)
    if not seeded:
        netmask = vm.underlay.network.netmask
        gateway = host_side_address(vm.network).ip
        # cloud-init=disabled: without a seed, cloud-init would fall back to its None
        # datasource (seen: ds-identify left it enabled) and replace eth0's address with DHCP.
        identity = [f"ip={vm.underlay_ip}::{gateway}:{netmask}:{vm.name}:eth0:off",
                    f"systemd.hostname={vm.name}", "cloud-init=disabled"]  # fmt: skip
    return " ".join(
        [
            "root=/dev/vda",
            "rw",
            "console=ttyS0",
            "net.ifnames=0",
            "apparmor=0",  # Docker then runs without AppArmor's parser
            *identity,
            "systemd.show_status=0",
            "quiet",
        ]
    )


@dataclass(frozen=True)
class QemuPaths:
    kernel: Path
    initrd: Path
    disk: Path
    pidfile: Path
    console: Path
    monitor: Path
    layer: Path | None = None  # ovsnet + dependencies, read-only
    seed: Path | None = None  # NoCloud seed (label cidata): user-data, meta-data, network-config
    images: Path | None = None  # companion image archive (label IMAGES_LABEL), read-only
    docker: Path | None = None  # preloaded Docker data root (label DOCKER_LABEL), qcow2 overlay


def qemu_argv(vm: VmSpec, paths: QemuPaths, memory_mib: int = DEFAULT_MEMORY_MIB) -> list[str]:
    """qemu command line for one VM (software emulation: this machine's KVM cannot run it)."""
    return [
        "qemu-system-x86_64",
        "-name", vm.name,
        "-nodefaults", "-no-user-config",
        "-accel", f"tcg,tb-size={TCG_TB_SIZE_MIB}",
        "-cpu", "qemu64",
        "-smp", "1",
        "-m", str(memory_mib),
        "-kernel", str(paths.kernel),
        "-initrd", str(paths.initrd),
        "-append", kernel_cmdline(vm, seeded=paths.seed is not None,
                                  docker_disk=paths.docker is not None),
        "-drive", f"file={paths.disk},if=virtio,format=qcow2,cache=unsafe,discard=unmap",
        *(["-drive", f"file={paths.layer},if=virtio,format=raw,readonly=on"]
          if paths.layer else []),
        *(["-drive", f"file={paths.seed},if=virtio,format=raw,readonly=on"]
          if paths.seed else []),
        *(["-drive", f"file={paths.images},if=virtio,format=raw,readonly=on"]
          if paths.images else []),
        *(["-drive", f"file={paths.docker},if=virtio,format=qcow2,cache=unsafe,discard=unmap"]
          if paths.docker else []),
        "-netdev", f"tap,id=underlay,ifname={vm.tap},script=no,downscript=no",
        "-device", f"virtio-net-pci,netdev=underlay,mac={vm.mac}",
        "-device", "virtio-rng-pci",
        "-display", "none",
        "-serial", f"file:{paths.console}",
        "-monitor", f"unix:{paths.monitor},server,nowait",
        "-pidfile", str(paths.pidfile),
        "-daemonize",
    ]  # fmt: skip
