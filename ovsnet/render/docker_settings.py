"""What ovsnet requires of Docker's settings (pure): mutual TLS on any TCP listener, bip inside
fixed-cidr, a sane MTU, and a socket unit for a TLS port.

Each function returns the problems it finds (empty: none), like the validators in
`ovsnet.render.validate`, which also run dockerd itself on daemon.json.
"""

from __future__ import annotations

import json
import shlex
from ipaddress import IPv4Interface, IPv4Network
from typing import Any

TLS_OPTIONS = ("tlsverify", "tlscacert", "tlscert", "tlskey")


def _docker_opts(text: str) -> list[str]:
    """The flags a drop-in's `Environment="DOCKER_OPTS=..."` gives dockerd (split like systemd)."""
    flags: list[str] = []
    for line in text.splitlines():
        if line.startswith("Environment="):
            for assignment in shlex.split(line.removeprefix("Environment=")):
                name, _, value = assignment.partition("=")
                if name == "DOCKER_OPTS":
                    flags += value.split()
    return flags


def dropin_tls_problems(text: str) -> list[str]:
    """A TCP listener on dockerd's command line must come with --tlsverify and its files."""
    flags = _docker_opts(text)
    tcp = [f for f in flags if f.startswith(("--host=tcp://", "-H=tcp://", "tcp://"))]
    if not tcp:
        return []
    options = {
        name: value or True
        for name, _, value in (f.removeprefix("--").partition("=") for f in flags)
        if name in TLS_OPTIONS
    }
    return _tls_problems(options, f"the drop-in's {tcp[0]}")


def _tls_problems(options: dict[str, Any], what: str) -> list[str]:
    """Mutual TLS needs --tlsverify (plain --tls does not check clients) and all three files."""
    problems = []
    if options.get("tlsverify") is not True:
        problems.append(f"{what} without tlsverify: anyone who reaches the port is root")
    for name in TLS_OPTIONS[1:]:
        value = options.get(name)
        if not isinstance(value, str) or not value.startswith("/"):
            problems.append(f"{what} needs {name} as an absolute path, not {value!r}")
    return problems


def docker_value_problems(options: dict[str, Any]) -> list[str]:
    problems = []
    if "hosts" in options:
        # docker.service passes -H fd:// on Debian, Ubuntu, Fedora and Flatcar alike.
        problems.append(
            'daemon.json sets "hosts": dockerd refuses to start next to docker.service\'s -H fd://'
        )
    if any(name in options for name in (*TLS_OPTIONS, "tls")):
        problems += _tls_problems(options, "daemon.json's TLS")
    try:
        bip = IPv4Interface(options["bip"])
        fixed = IPv4Network(options["fixed-cidr"])
        if not fixed.subnet_of(bip.network) or bip.ip not in fixed:
            problems.append(f"fixed-cidr {fixed} does not hold bip {bip} inside its network")
    except (KeyError, ValueError, TypeError) as exc:
        problems.append(f"bip/fixed-cidr missing or malformed: {exc!r}")
    mtu = options.get("mtu")
    if not isinstance(mtu, int) or not 576 <= mtu <= 9000:
        problems.append(f"mtu {mtu!r} is not an MTU between 576 and 9000")
    return problems


def tls_listener_problems(daemon_json: str, units: dict[str, str]) -> list[str]:
    """daemon.json's TLS settings are useless without a socket unit that hands dockerd a port."""
    try:
        tls = json.loads(daemon_json).get("tlsverify")
    except (ValueError, AttributeError):
        return []  # check_daemon_json reports it
    sockets = [
        text
        for name, text in units.items()
        if name.endswith(".socket")
        and "Service=docker.service" in text.splitlines()
        and any(line.startswith("ListenStream=") for line in text.splitlines())
    ]
    if tls and not sockets:
        return ["daemon.json enables TLS but no socket unit gives docker.service a TCP port"]
    return []
