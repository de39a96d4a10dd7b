"""ovs-monitor-ipsec's view of the tunnels (`ovs-appctl -t ovs-monitor-ipsec tunnels/show`,
OVS 2.11 to 3.x format), parsed; the PSK is redacted while parsing.

Place: docs/architecture.md, "Layers": pure layer.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

_HEADER = re.compile(
    r"^Interface name: (?P<name>\S+) v(?P<version>\d+) "
    r"\((?P<state>[A-Z]+)(?::\s*(?P<reason>.*))?\)$"
)
_FIELD = re.compile(r"^  (?P<key>[A-Za-z ]+):\s+(?P<value>.*)$")
_SECTIONS = {
    "Kernel policies installed:": "policies",
    "Kernel security associations installed:": "security_associations",
    "IPsec connections that are active:": "connections",
}
_REDACTED = {"PSK"}


@dataclass(frozen=True)
class MonitorTunnel:
    """One tunnel as ovs-monitor-ipsec sees it. Never holds the PSK."""

    name: str
    version: int
    state: str  # CONFIGURED | INVALID | REMOVED | INIT
    invalid_reason: str | None
    config: Mapping[str, str]
    policies: tuple[str, ...]
    security_associations: tuple[str, ...]
    connections: tuple[str, ...]

    @property
    def current_connections(self) -> tuple[str, ...]:
        """The connection lines of this tunnel's current configuration (`<name>-<version>`,
        `<name>-in-<version>`, `<name>-out-<version>`). An IKE SA of an earlier version (the
        tunnel re-created or re-keyed, its old SA never taken down) authenticated with the old
        settings: seen in the VM lab as a PSK IKE SA that kept a certificate tunnel "established"
        while its current connection never came up."""
        names = tuple(f"{self.name}{part}{self.version}" for part in ("-", "-in-", "-out-"))
        return tuple(line for line in self.connections if line.split("[")[0].split("{")[0] in names)

    @property
    def ike_established(self) -> bool:
        return any("ESTABLISHED" in line for line in self.current_connections)

    @property
    def outdated_ike(self) -> bool:
        """An IKE SA is up, but only under an earlier configuration of the tunnel."""
        return not self.ike_established and any("ESTABLISHED" in c for c in self.connections)

    @property
    def child_installed(self) -> bool:
        return any("INSTALLED" in line for line in self.connections) or bool(
            self.security_associations
        )

    def summary(self) -> str:
        """One phrase for `ovsnet status`."""
        if self.state == "INVALID":
            return f"invalid: {self.invalid_reason}"
        if self.state != "CONFIGURED":
            return self.state.lower()
        if self.child_installed and self.ike_established:
            return "established"
        if self.ike_established:
            return "IKE up, no IPsec SA installed"
        if any("CONNECTING" in line for line in self.current_connections):
            return "configured, negotiating"
        if self.outdated_ike:
            return "configured but not established (IKE up only under an earlier configuration)"
        return "configured but not established"

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "state": self.state,
            "invalid_reason": self.invalid_reason,
            "summary": self.summary(),
            "ike_established": self.ike_established,
            "child_installed": self.child_installed,
            "config": dict(self.config),
            "policies": list(self.policies),
            "security_associations": list(self.security_associations),
            "connections": list(self.connections),
        }


def parse_tunnels_show(text: str) -> list[MonitorTunnel]:
    """Parse ovs-monitor-ipsec's tunnels/show (OVS 2.11 to 3.x format); redacts the PSK."""
    tunnels: list[MonitorTunnel] = []
    current: dict[str, Any] | None = None
    section: str | None = None
    for line in text.splitlines():
        header = _HEADER.match(line.rstrip())
        if header:
            if current:
                tunnels.append(_tunnel(current))
            current = {
                "name": header["name"],
                "version": int(header["version"]),
                "state": header["state"].strip(),
                "invalid_reason": (header["reason"] or "").strip() or None,
                "config": {},
                "policies": [],
                "security_associations": [],
                "connections": [],
            }
            section = None
            continue
        if current is None or not line.strip():
            continue
        if line.strip() in _SECTIONS:
            section = _SECTIONS[line.strip()]
            continue
        if section:
            current[section].append(line.strip())
            continue
        field_match = _FIELD.match(line)
        if field_match:
            key = field_match["key"].strip()
            value = field_match["value"].strip()
            if key in _REDACTED:
                value = "<secret>" if value not in ("", "None") else "None"
            current["config"][key] = value
    if current:
        tunnels.append(_tunnel(current))
    return tunnels


def _tunnel(raw: dict[str, Any]) -> MonitorTunnel:
    return MonitorTunnel(
        name=raw["name"],
        version=raw["version"],
        state=raw["state"],
        invalid_reason=raw["invalid_reason"],
        config=raw["config"],
        policies=tuple(raw["policies"]),
        security_associations=tuple(raw["security_associations"]),
        connections=tuple(raw["connections"]),
    )
