"""ovs-monitor-ipsec's view of the tunnels (`ovs-appctl -t ovs-monitor-ipsec tunnels/show`,
OVS 2.11 to 3.x format), parsed; the PSK is redacted while parsing. Whether a tunnel's SAs are
installed is read from the kernel's keyed ESP SAs, not from that view (see child_installed).

Place: docs/architecture.md, "Layers": pure layer.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ovsnet.ipsec.xfrm_states import KernelSa, keyed_both_ways

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
_GRE_TYPES = ("gre", "gre64", "ipsec_gre")


def bfd_carrying(bfd_state: str | None) -> bool:
    """BFD over a tunnel sees packets cross both ways ("init": heard one way only), or BFD
    does not run on it (None: nothing to judge by)."""
    return bfd_state in (None, "up")


def connection_names(port: str, version: int, tunnel_type: str) -> tuple[str, ...]:
    """strongSwan connections ovs-monitor-ipsec (OVS 2.11 to 3.x) loads for one tunnel:
    `<port>-<version>` for GRE, `<port>-in-<version>` and `<port>-out-<version>` otherwise."""
    if tunnel_type in _GRE_TYPES:
        return (f"{port}-{version}",)
    return (f"{port}-in-{version}", f"{port}-out-{version}")


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
    # The kernel's ESP SAs from and to this tunnel's remote address.
    kernel_sas: tuple[KernelSa, ...] = ()

    @property
    def connection_names(self) -> tuple[str, ...]:
        return connection_names(self.name, self.version, self.config.get("Tunnel Type", "gre"))

    @property
    def current_connections(self) -> tuple[str, ...]:
        """The connection lines of this tunnel's current configuration. An IKE SA of an earlier
        version (the tunnel re-created or re-keyed, its old SA never taken down) authenticated
        with the old settings: seen in the VM lab as a PSK IKE SA that kept a certificate tunnel
        "established" while its current connection never came up."""
        names = self.connection_names
        return tuple(line for line in self.connections if line.split("[")[0].split("{")[0] in names)

    @property
    def ike_established(self) -> bool:
        return any("ESTABLISHED" in line for line in self.current_connections)

    @property
    def negotiating(self) -> bool:
        return any("CONNECTING" in line for line in self.current_connections)

    @property
    def idle(self) -> bool:
        """charon has no IKE SA of the current connection, up or under way: it waits for a
        packet to raise an acquire (connections are `auto=route`)."""
        return not self.ike_established and not self.negotiating

    @property
    def outdated_ike(self) -> bool:
        """An IKE SA is up, but only under an earlier configuration of the tunnel."""
        return not self.ike_established and any("ESTABLISHED" in c for c in self.connections)

    @property
    def child_installed(self) -> bool:
        """Keyed ESP SAs both ways with the remote, in the kernel. Not the monitor's lines: its
        SA lines are selectors, which the kernel's larval acquire states have too, and its
        connection lines keep only a CHILD_SA's last `ipsec status` line (the selectors, not
        INSTALLED). A CI run saw a rogue peer reported "established" that way, with nothing
        keyed in either kernel: charon still held an IKE SA left from before `peer remove`."""
        return keyed_both_ways(self.kernel_sas, self.config.get("Remote IP", ""))

    def summary(self, bfd_state: str | None = None) -> str:
        """One phrase for `ovsnet status`. `bfd_state`: the tunnel port's BFD state, when BFD
        runs on it (ovsnet enables it on every tunnel): keyed SAs on both ends can still carry
        nothing (an outbound SA the peer does not hold), and only BFD sees that from here."""
        if self.state == "INVALID":
            return f"invalid: {self.invalid_reason}"
        if self.state != "CONFIGURED":
            return self.state.lower()
        if self.child_installed and self.ike_established:
            if not bfd_carrying(bfd_state):
                return f"established, but BFD is {bfd_state}: packets do not cross both ways"
            return "established"
        if self.ike_established:
            return "IKE up, no IPsec SA installed"
        if self.negotiating:
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
            "kernel_sas": [{"src": sa.src, "dst": sa.dst, "spi": sa.spi} for sa in self.kernel_sas],
        }


def parse_tunnels_show(text: str, kernel_sas: Iterable[KernelSa] = ()) -> list[MonitorTunnel]:
    """Parse ovs-monitor-ipsec's tunnels/show (OVS 2.11 to 3.x format); redacts the PSK.
    `kernel_sas`: the kernel's ESP SAs (xfrm_states.parse_esp_states), given to each tunnel
    whose remote address they are from or to."""
    sas = tuple(kernel_sas)
    tunnels: list[MonitorTunnel] = []
    current: dict[str, Any] | None = None
    section: str | None = None
    for line in text.splitlines():
        header = _HEADER.match(line.rstrip())
        if header:
            if current:
                tunnels.append(_tunnel(current, sas))
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
        tunnels.append(_tunnel(current, sas))
    return tunnels


def _tunnel(raw: dict[str, Any], kernel_sas: tuple[KernelSa, ...]) -> MonitorTunnel:
    remote = raw["config"].get("Remote IP")
    return MonitorTunnel(
        name=raw["name"],
        version=raw["version"],
        state=raw["state"],
        invalid_reason=raw["invalid_reason"],
        config=raw["config"],
        policies=tuple(raw["policies"]),
        security_associations=tuple(raw["security_associations"]),
        connections=tuple(raw["connections"]),
        kernel_sas=tuple(sa for sa in kernel_sas if remote in (sa.src, sa.dst)),
    )
