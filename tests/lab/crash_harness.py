"""What the lab tests of one host without dockerd share (host lock, kill-anywhere, guard faults,
guard watch, downgrades, reset): a Linux bridge with Docker's address stands in for docker0,
and one judgement of "this host is healthy" read through the system (ovs-vsctl, iproute2, nft),
not through ovsnet."""

from __future__ import annotations

import json
import os
from ipaddress import IPv4Address
from pathlib import Path

PSK = "Zq8Vw2Lm5Xc7Rb3Tn9Wk4Yd6Hf1Gj0Ps"
IKE_PROBLEM = "IPsec peers configured but ovs-monitor-ipsec"  # the lab runs no IKE daemon


def fake_docker0(host) -> None:
    """docker0 as dockerd leaves it: a bridge, up, with the gateway address."""
    mask = host.supernet.split("/")[1]
    host.run(["ip", "link", "add", "docker0", "type", "bridge"], check=False)
    host.run(["ip", "address", "replace", f"{host.gateway}/{mask}", "dev", "docker0"])
    host.run(["ip", "link", "set", "docker0", "up"])


def init_argv(host) -> list[str]:
    return ["init", "--prefix", host.prefix, "--datapath", "netdev", "--no-docker-check"]


def initialised(host):
    """`host` with the docker0 stand-in and `ovsnet init` done (userspace datapath)."""
    fake_docker0(host)
    host.ovsnet(*init_argv(host), check=True)
    return host


def write_psk(directory: Path) -> Path:
    path = directory / "psk"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.write(fd, PSK.encode())
    os.close(fd)
    return path


def ipv4(host, device: str) -> list[str]:
    done = host.run(["ip", "-4", "-o", "addr", "show", "dev", device], check=False)
    return [line.split()[3] for line in done.stdout.splitlines()]


def ports(host, bridge: str = "br0") -> list[str]:
    done = host.vsctl("list-ports", bridge, check=False)
    return done.stdout.split() if done.returncode == 0 else []


def ipsec_tunnel_peers(host) -> set[IPv4Address]:
    """Remote IPs of the IPsec tunnels OVSDB holds (ovs-vsctl's view)."""
    listing = json.loads(
        host.vsctl("--format=json", "--columns=options", "list", "Interface").stdout
    )
    found = set()
    for (options,) in listing["data"]:
        pairs = dict(options[1])
        if "psk" in pairs and "remote_ip" in pairs:
            found.add(IPv4Address(pairs["remote_ip"]))
    return found


def guard_peers(host) -> set[IPv4Address] | None:
    """The GRE peers in the kernel's plaintext guard; None without the table."""
    done = host.run(["nft", "-j", "list", "table", "inet", "ovsnet"], check=False)
    if done.returncode != 0:
        return None
    peers: set[IPv4Address] = set()
    for item in json.loads(done.stdout)["nftables"]:
        entry = item.get("set")
        if entry and entry.get("name") == "ipsec_gre":
            peers |= {IPv4Address(e) for e in entry.get("elem", []) if isinstance(e, str)}
    return peers


def host_problems(host, peers: set[str] = frozenset()) -> list[str]:
    """Why the host is not as `init` plus `peer add` leave it; empty when it is."""
    wrong = []
    mask = host.supernet.split("/")[1]
    gateway = f"{host.gateway}/{mask}"
    listed = ports(host)
    if "docker0" not in listed:
        wrong.append(f"docker0 not a port of br0 ({listed})")
    if ipv4(host, "br0") != [gateway]:
        wrong.append(f"br0 has {ipv4(host, 'br0')}, wants [{gateway}]")
    if ipv4(host, "docker0"):
        wrong.append(f"docker0 still has {ipv4(host, 'docker0')}")
    tunnels = {p for p in listed if p.startswith("gre-")}
    if len(tunnels) != len(peers):
        wrong.append(f"tunnels {sorted(tunnels)}, wants one per {sorted(peers)}")
    guarded = ipsec_tunnel_peers(host)
    if (guard_peers(host) or set()) != guarded:
        wrong.append(f"guard {guard_peers(host)} != IPsec tunnels {guarded}")
    check = host.ovsnet("--json", "status", "--check")
    problems = [p for p in json.loads(check.stdout)["problems"] if IKE_PROBLEM not in p]
    if problems:
        wrong.append(f"status problems: {problems}")
    if not guarded and check.returncode != 0:  # with IPsec peers the lab lacks the IKE daemon
        wrong.append(f"status --check fails: {check.stderr.strip()}")
    return wrong


def reset_host(host) -> None:
    """Back to a host before init (also from a half-done state), docker0 with its address.
    With ovs-vsctl and iproute2 rather than `ovsnet reset`: independent of the code under test,
    and no Python start-up per case."""
    host.vsctl("--if-exists", "del-br", "br0")
    host.vsctl("remove", "Open_vSwitch", ".", "other_config", "ipsec_skb_mark")
    host.run(["nft", "delete", "table", "inet", "ovsnet"], check=False)
    fake_docker0(host)
