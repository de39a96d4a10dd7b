"""The IPsec-relevant part of a host's OVSDB as callers read it: its tunnels, each one's
authentication method, the host's certificate, PSK-file and plaintext settings.

Place: docs/architecture.md, "Layers": pure layer.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ovsnet.ipsec.keys import (
    CERT_KEYS,
    LEGACY_PORT_TYPE,
    METHOD_CERT,
    METHOD_PSK,
    PSK_FILE_KEY,
    SKB_MARK_KEY,
)


def tunnel_method(port_type_name: str, options: Mapping[str, str]) -> str | None:
    """psk, cert, or None for a plaintext tunnel."""
    if "psk" in options:
        return METHOD_PSK
    if "remote_name" in options or "remote_cert" in options:
        return METHOD_CERT
    if port_type_name == LEGACY_PORT_TYPE:
        return METHOD_CERT  # legacy ipsec_gre without psk authenticates with peer_cert
    return None


@dataclass(frozen=True)
class ObservedTunnel:
    port: str
    type: str
    options: Mapping[str, str]

    @property
    def method(self) -> str | None:
        return tunnel_method(self.type, self.options)

    def __repr__(self) -> str:  # options may hold a PSK
        return f"ObservedTunnel({self.port!r}, {self.type!r}, method={self.method!r})"


@dataclass(frozen=True)
class ObservedHost:
    """The IPsec-relevant part of one host's OVSDB."""

    ovs_version: str | None
    other_config: Mapping[str, str]
    tunnels: tuple[ObservedTunnel, ...] = ()

    def __repr__(self) -> str:  # other_config may hold the default PSK
        return f"ObservedHost({self.ovs_version!r}, tunnels={self.tunnels!r})"

    def ports_by_method(self, ignore: Iterable[str] = ()) -> dict[str | None, list[str]]:
        skip = set(ignore)
        found: dict[str | None, list[str]] = {}
        for tunnel in self.tunnels:
            if tunnel.port not in skip:
                found.setdefault(tunnel.method, []).append(tunnel.port)
        return found

    @property
    def has_certificate_config(self) -> bool:
        return any(self.other_config.get(key) for key in CERT_KEYS)

    @property
    def drops_plaintext(self) -> bool:
        return bool(self.other_config.get(SKB_MARK_KEY))

    @property
    def default_psk_file(self) -> str | None:
        return self.other_config.get(PSK_FILE_KEY) or None
