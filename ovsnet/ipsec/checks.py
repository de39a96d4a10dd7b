"""Checks of a host's tunnels as a whole: one authentication method per host (OVS requires it),
no plaintext tunnel on a host that drops plaintext, and no silent downgrade of an existing
tunnel (`--allow-downgrade`).

Place: docs/architecture.md, "Layers": pure layer.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ovsnet.errors import InvalidInput
from ovsnet.ipsec.keys import METHOD_CERT, METHOD_PSK, METHODS, SKB_MARK_KEY
from ovsnet.ipsec.observed import ObservedHost, ObservedTunnel


def shown_ports(ports: list[str]) -> str:
    """Ports for a message: the first five by name, then how many more."""
    shown = ", ".join(sorted(ports)[:5])
    return shown + (f" and {len(ports) - 5} more" if len(ports) > 5 else "")


def check_one_method(host: ObservedHost, method: str, port: str | None = None) -> None:
    """OVS requires one authentication method for all IPsec tunnels of a host."""
    by_method = host.ports_by_method(ignore=[port] if port else [])
    for other in METHODS:
        if other != method and by_method.get(other):
            raise InvalidInput(
                f"this host's tunnels {shown_ports(by_method[other])} use {other} authentication; "
                f"OVS requires one method for all IPsec tunnels of a host",
                f"use {other} for this peer too, or remove those tunnels first",
            )
    if method == METHOD_PSK and host.has_certificate_config:
        raise InvalidInput(
            "this host is set up for certificate authentication (Open_vSwitch other_config:"
            "certificate); ovs-monitor-ipsec rejects PSK tunnels while it is set",
            "use certificates, or remove them with `ovsnet ipsec cert --unset`",
        )


def check_plaintext_allowed(host: ObservedHost) -> None:
    """A plaintext tunnel on a host that drops plaintext tunnel traffic would never work."""
    if host.drops_plaintext:
        raise InvalidInput(
            f"this host drops unencrypted tunnel traffic (other_config:{SKB_MARK_KEY}="
            f"{host.other_config[SKB_MARK_KEY]}), so a plaintext tunnel would carry nothing",
            "add the peer with --ipsec, or allow plaintext with `ovsnet ipsec plaintext allow`",
        )


DOWNGRADE_HINT = (
    "give --ipsec (with the same authentication) to keep them as they are, or pass "
    "--allow-downgrade if you really mean it"
)


@dataclass(frozen=True)
class Transition:
    """One existing tunnel and what a command is about to make of it."""

    peer: str
    before: ObservedTunnel
    after: ObservedTunnel


def downgrades(transitions: Iterable[Transition]) -> tuple[list[str], list[str]]:
    """(peers whose IPsec tunnel would become plaintext, peers whose certificate
    authentication would become a PSK)."""
    to_plaintext, to_psk = [], []
    for change in transitions:
        before, after = change.before.method, change.after.method
        if before is not None and after is None:
            to_plaintext.append(change.peer)
        elif before == METHOD_CERT and after == METHOD_PSK:
            to_psk.append(change.peer)
    return to_plaintext, to_psk


def check_no_downgrade(transitions: Iterable[Transition], allow: bool) -> None:
    """Refuse to weaken an existing tunnel unless the user said so (`--allow-downgrade`).

    Re-stating peers without --ipsec must not silently turn an encrypted tunnel into plain
    GRE (the report would only say "update tunnel").
    """
    if allow:
        return
    to_plaintext, to_psk = downgrades(transitions)
    if to_plaintext:
        raise InvalidInput(
            f"this would turn the IPsec tunnels to {shown_ports(to_plaintext)} into plaintext",
            DOWNGRADE_HINT,
        )
    if to_psk:
        raise InvalidInput(
            f"this would switch the tunnels to {shown_ports(to_psk)} from certificate to "
            "pre-shared key authentication",
            DOWNGRADE_HINT,
        )
