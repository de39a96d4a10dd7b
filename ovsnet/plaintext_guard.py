"""The plaintext guard: ovsnet's own drop of unencrypted tunnel traffic to and from IPsec peers.

`other_config:ipsec_skb_mark=0/1` alone is not fail-closed: the drop policies behind it belong
to strongSwan, which removes them when charon stops or restarts (seen in the real-kernel lab:
plain GRE with readable container ICMP on the wire while charon was down). The guard is an
nftables table that ovsnet owns and the kernel keeps whatever the IKE daemon does:

- a tunnel packet to an IPsec peer that would leave without an xfrm transform
  (`rt ipsec missing`) is dropped and counted;
- a tunnel packet from an IPsec peer that arrives without having been decrypted
  (`meta secpath missing`) is dropped and counted, so plaintext injected with a peer's
  address does not reach the containers either.

One set of peers per tunnel encapsulation keeps the rule count fixed at four, whatever the
number of peers. Pure: what the guard must hold, the nft script that installs it, and the
reading of `nft -j list table`; `ovsnet.nftables` runs nft.

Place: docs/architecture.md, "Layers": pure layer.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address
from typing import Any

from ovsnet.ipsec import keys as ipsec_keys
from ovsnet.ipsec import observed as ipsec_observed

FAMILY = "inet"
TABLE = "ovsnet"
GRE_SET = "ipsec_gre"
UDP_SET = "ipsec_udp"
UDP_TUNNEL_PORTS = {"vxlan": 4789, "geneve": 6081}
COMMENT = "ovsnet: tunnel traffic of an IPsec peer without IPsec"


@dataclass(frozen=True)
class Guard:
    """The peers whose tunnel traffic must be encrypted: GRE by address, UDP by address+port."""

    gre: frozenset[IPv4Address] = frozenset()
    udp: frozenset[tuple[IPv4Address, int]] = frozenset()

    def __bool__(self) -> bool:
        return bool(self.gre or self.udp)

    def __or__(self, other: Guard) -> Guard:
        return Guard(self.gre | other.gre, self.udp | other.udp)

    @property
    def peers(self) -> frozenset[IPv4Address]:
        return self.gre | {ip for ip, _ in self.udp}

    def covers(self, other: Guard) -> bool:
        return other.gre <= self.gre and other.udp <= self.udp

    def describe(self) -> str:
        count = len(self.peers)
        if not count:
            return f"remove the plaintext guard (nftables table {FAMILY} {TABLE})"
        return (
            f"drop unencrypted tunnel traffic to and from {count} IPsec "
            f"peer{'s' if count != 1 else ''} (nftables table {FAMILY} {TABLE})"
        )


@dataclass(frozen=True)
class GuardState:
    """What the kernel holds now, and how many packets the guard has dropped since installed."""

    guard: Guard = Guard()
    present: bool = False  # the table exists
    intact: bool = False  # ... with the rules ovsnet writes
    dropped_packets: int = 0

    def needs(self, desired: Guard) -> bool:
        """Whether the kernel must be changed to hold exactly `desired`."""
        if not desired:
            return self.present
        return not (self.present and self.intact and self.guard == desired)


ABSENT = GuardState()


def repaired(wanted: Guard, state: GuardState) -> Guard | None:
    """What to write so the kernel covers `wanted` again (None: it does), never narrower than
    what is there: a command may have widened the guard for a tunnel it is about to commit."""
    if not wanted:
        return None
    if state.present and state.intact and state.guard.covers(wanted):
        return None
    return wanted | state.guard


def _tunnel_entry(tunnel: ipsec_observed.ObservedTunnel) -> Guard:
    try:
        remote = IPv4Address(tunnel.options.get("remote_ip", ""))
    except ValueError:
        return Guard()  # remote_ip=flow or unset: no fixed peer to name
    encapsulation = "gre" if tunnel.type == ipsec_keys.LEGACY_PORT_TYPE else tunnel.type
    if encapsulation == "gre":
        return Guard(gre=frozenset({remote}))
    if encapsulation in UDP_TUNNEL_PORTS:
        port = int(tunnel.options.get("dst_port") or UDP_TUNNEL_PORTS[encapsulation])
        return Guard(udp=frozenset({(remote, port)}))
    return Guard()


def desired_guard(host: ipsec_observed.ObservedHost) -> Guard:
    """Every IPsec tunnel's peer, while the host drops plaintext (ipsec_skb_mark set)."""
    return guard_for_tunnels(host.tunnels) if host.drops_plaintext else Guard()


def guard_for_tunnels(tunnels: Iterable[ipsec_observed.ObservedTunnel]) -> Guard:
    guard = Guard()
    for tunnel in tunnels:
        if tunnel.method is not None:
            guard |= _tunnel_entry(tunnel)
    return guard


def _elements(items: list[str]) -> str:
    return f" elements = {{ {', '.join(items)} }}" if items else ""


def nft_script(guard: Guard) -> str:
    """An nft script that replaces the table with exactly `guard`, in one kernel transaction.

    Declaring the table first makes the delete valid when it does not exist yet; nft applies
    the whole script atomically, so no packet ever sees a half-built guard.
    """
    lines = [f"table {FAMILY} {TABLE} {{}}", f"delete table {FAMILY} {TABLE}"]
    if not guard:
        return "\n".join(lines) + "\n"
    gre = sorted(guard.gre)
    udp = sorted(guard.udp)
    lines += [
        f"table {FAMILY} {TABLE} {{",
        f"  set {GRE_SET} {{ type ipv4_addr;{_elements([str(ip) for ip in gre])} }}",
        f"  set {UDP_SET} {{ type ipv4_addr . inet_service;"
        f"{_elements([f'{ip} . {port}' for ip, port in udp])} }}",
    ]
    # Outgoing: no xfrm bundle on the route means no encryption. Incoming: no secpath means
    # the packet was not decrypted by the kernel.
    for chain, hook, address, unprotected in (
        ("plaintext_out", "output", "daddr", "rt ipsec missing"),
        ("plaintext_in", "input", "saddr", "meta secpath missing"),
    ):
        drop = f'{unprotected} counter drop comment "{COMMENT}"'
        lines += [
            f"  chain {chain} {{",
            f"    type filter hook {hook} priority filter; policy accept;",
            f"    meta l4proto gre ip {address} @{GRE_SET} {drop}",
            f"    ip {address} . udp dport @{UDP_SET} {drop}",
            "  }",
        ]
    lines.append("}")
    return "\n".join(lines) + "\n"


RULES_PER_GUARD = 4


def parse_listing(listing: Mapping[str, Any]) -> GuardState:
    """The guard in `nft -j list table inet ovsnet` output (a table someone edited reads as not
    intact, so the next change replaces it)."""
    gre: set[IPv4Address] = set()
    udp: set[tuple[IPv4Address, int]] = set()
    rules = dropped = 0
    for item in listing.get("nftables", []):
        if "set" in item:
            entry = item["set"]
            for element in entry.get("elem", []):
                if entry.get("name") == GRE_SET and isinstance(element, str):
                    gre.add(IPv4Address(element))
                elif entry.get("name") == UDP_SET and isinstance(element, dict):
                    ip, port = element["concat"]
                    udp.add((IPv4Address(ip), int(port)))
        elif "rule" in item and item["rule"].get("comment") == COMMENT:
            rules += 1
            for expression in item["rule"].get("expr", []):
                if "counter" in expression:
                    dropped += int(expression["counter"].get("packets", 0))
    guard = Guard(frozenset(gre), frozenset(udp))
    return GuardState(guard, present=True, intact=rules == RULES_PER_GUARD, dropped_packets=dropped)
