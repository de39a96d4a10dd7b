"""Network namespaces and the veth cables between them (the lab's emulated hardware)."""

from __future__ import annotations

import os
from pathlib import Path

from ovsnet.lab.proc import run

NETNS_DIR = Path("/run/netns")


def netns_path(name: str) -> Path:
    return NETNS_DIR / name


def exists(name: str) -> bool:
    return netns_path(name).exists()


def inode(name: str) -> int | None:
    try:
        return os.stat(netns_path(name)).st_ino
    except OSError:
        return None


def list_names(prefix: str = "") -> list[str]:
    try:
        return sorted(p.name for p in NETNS_DIR.iterdir() if p.name.startswith(prefix))
    except FileNotFoundError:
        return []


def exec_argv(name: str, argv: list[str]) -> list[str]:
    """Run argv inside the namespace (`ip netns exec` also remounts /sys for it)."""
    return ["ip", "netns", "exec", name, *argv]


def create(name: str, *, ipv6: bool = False) -> None:
    """A fresh namespace with loopback up; IPv6 off unless asked (keeps the underlay quiet)."""
    run(["ip", "netns", "add", name])
    # A new namespace copies the machine's IPv4 settings: once anything on the machine turned
    # forwarding on, dockerd in the lab found it on and left the FORWARD policy at ACCEPT,
    # unlike on a fresh host. Every lab host starts as a fresh host does.
    sysctl(name, "net.ipv4.ip_forward", "0")
    if not ipv6:
        for scope in ("all", "default"):
            sysctl(name, f"net.ipv6.conf.{scope}.disable_ipv6", "1")
    run(["ip", "-n", name, "link", "set", "lo", "up"])


def delete(name: str) -> None:
    if exists(name):
        run(["ip", "netns", "delete", name], check=False)


def sysctl(name: str, key: str, value: str) -> None:
    run(exec_argv(name, ["sysctl", "-q", "-w", f"{key}={value}"]))


def add_bridge(name: str, bridge: str) -> None:
    run(["ip", "-n", name, "link", "add", bridge, "type", "bridge"])
    run(["ip", "-n", name, "link", "set", bridge, "up"])


def cable(switch: str, bridge: str, port: str, host: str, nic: str) -> None:
    """A veth pair from the switch's bridge (end `port`) to the host (end `nic`).

    Both ends are created directly inside their namespaces, so no name is ever taken in the
    root namespace, where concurrent labs would collide.
    """
    run(
        [
            "ip",
            "-n",
            switch,
            "link",
            "add",
            port,
            "type",
            "veth",
            "peer",
            "name",
            nic,
            "netns",
            host,
        ]
    )
    run(["ip", "-n", switch, "link", "set", port, "master", bridge, "up"])
    run(["ip", "-n", host, "link", "set", nic, "up"])


def add_address(name: str, device: str, cidr: str) -> None:
    run(["ip", "-n", name, "address", "add", cidr, "dev", device])
    run(["ip", "-n", name, "link", "set", device, "up"])
