"""The plaintext guard's pure part: which peers it covers, its nft script and its reading."""

from __future__ import annotations

from ipaddress import IPv4Address

from ovsnet.ipsec import keys as ipsec_keys
from ovsnet.ipsec import observed as ipsec_observed
from ovsnet.model import Changes, TunnelSpec
from ovsnet.plaintext_guard import (
    ABSENT,
    COMMENT,
    Guard,
    GuardState,
    desired_guard,
    nft_script,
    parse_listing,
)
from ovsnet.services.guard import GuardChange, host_after

A, B, C = (IPv4Address(f"198.51.100.{n}") for n in (2, 3, 4))
DROP = {ipsec_keys.SKB_MARK_KEY: "0/1"}


def tunnel(port, type_, **options):
    return ipsec_observed.ObservedTunnel(port, type_, options)


def host(*tunnels, other_config=DROP):
    return ipsec_observed.ObservedHost("3.1.0", dict(other_config), tuple(tunnels))


def test_only_ipsec_tunnels_of_a_fail_closed_host_are_guarded():
    observed = host(
        tunnel("gre-a", "gre", remote_ip=str(A), psk="x" * 32),
        tunnel("gre-b", "gre", remote_ip=str(B)),  # plaintext: not guarded
        tunnel("vxlan-c", "vxlan", remote_ip=str(C), remote_name="c", dst_port="4790"),
    )
    assert desired_guard(observed) == Guard(frozenset({A}), frozenset({(C, 4790)}))
    assert desired_guard(host(*observed.tunnels, other_config={})) == Guard()


def test_legacy_ipsec_gre_geneve_default_port_and_flow_tunnels():
    observed = host(
        tunnel("ipsec-a", ipsec_keys.LEGACY_PORT_TYPE, remote_ip=str(A), psk="x" * 32),
        tunnel("gnv-b", "geneve", remote_ip=str(B), psk="x" * 32),
        tunnel("flow", "gre", remote_ip="flow", psk="x" * 32),
    )
    assert desired_guard(observed) == Guard(frozenset({A}), frozenset({(B, 6081)}))


def test_script_replaces_the_table_atomically_and_empty_guard_only_deletes():
    script = nft_script(Guard(frozenset({B, A}), frozenset({(C, 4789)})))
    assert script.startswith("table inet ovsnet {}\ndelete table inet ovsnet\n")
    assert "elements = { 198.51.100.2, 198.51.100.3 }" in script
    assert "elements = { 198.51.100.4 . 4789 }" in script
    assert script.count("rt ipsec missing") == 2 and script.count("meta secpath missing") == 2
    assert nft_script(Guard()) == "table inet ovsnet {}\ndelete table inet ovsnet\n"


def _rule(counter: int, comment: str = COMMENT) -> dict:
    return {
        "rule": {"comment": comment, "expr": [{"counter": {"packets": counter}}, {"drop": None}]}
    }


def _listing(rules: list[dict]) -> dict:
    sets = [
        {"set": {"name": "ipsec_gre", "type": "ipv4_addr", "elem": [str(A)]}},
        {"set": {"name": "ipsec_udp", "elem": [{"concat": [str(C), 4789]}]}},
    ]
    return {"nftables": [{"metainfo": {}}, {"table": {"name": "ovsnet"}}, *sets, *rules]}


def test_listing_reads_peers_and_dropped_packets():
    state = parse_listing(_listing([_rule(3), _rule(0), _rule(2), _rule(0)]))
    assert state == GuardState(Guard(frozenset({A}), frozenset({(C, 4789)})), True, True, 5)
    assert not state.needs(state.guard)


def test_an_edited_table_is_not_intact_and_gets_replaced():
    state = parse_listing(_listing([_rule(0), _rule(0, "someone else's")]))
    assert state.present and not state.intact
    assert state.needs(state.guard)
    assert state.needs(Guard())  # and an unwanted table is removed


def test_absent_guard_is_only_needed_when_something_is_guarded():
    assert not ABSENT.needs(Guard())
    assert ABSENT.needs(Guard(frozenset({A})))


def test_host_after_changes_sees_new_tunnels_and_skb_mark():
    before = host(tunnel("gre-a", "gre", remote_ip=str(A)), other_config={})
    spec = TunnelSpec(B, "gre-b", "gre", (("psk", "x" * 32),))
    after = host_after(
        before, Changes(add_tunnels=[spec], remove_ports=["gre-a"], other_config=DROP)
    )
    assert desired_guard(after) == Guard(frozenset({B}))
    unset = host_after(after, Changes(other_config={ipsec_keys.SKB_MARK_KEY: None}))
    assert desired_guard(unset) == Guard()


def test_change_steps_name_the_final_guard_or_nothing():
    wanted = Guard(frozenset({A}))
    in_place = GuardState(wanted, True, True)
    assert GuardChange(wanted, wanted, in_place).steps == []
    assert GuardChange(Guard(), wanted, ABSENT).steps == [wanted.describe()]
    removal = GuardChange(wanted, Guard(), in_place).steps
    assert removal == ["remove the plaintext guard (nftables table inet ovsnet)"]


# `ip xfrm state list proto esp` as a VM's kernel printed it (keys shortened), plus a marked SA.
XFRM_STATES = f"""\
src 203.0.113.22 dst {B}
\tproto esp spi 0xc0c442ad reqid 2 mode transport
\treplay-window 0 seq 0x00000000 flag  (0x00000000)
\taead rfc4106(gcm(aes)) 0x92c14d22 (288 bits) 128
\tanti-replay context: seq 0x0, oseq 0xa5, bitmap 0x00000000
\tsel src 203.0.113.22/32 dst {B}/32
src {B} dst 203.0.113.22
\tproto esp spi 0xcb86585f reqid 2 mode transport
\treplay-window 32 seq 0x00000000 flag  (0x00000000)
\tmark 0x1/0x1
\taead rfc4106(gcm(aes)) 0x4ce9676e (288 bits) 128
src 203.0.113.22 dst {C}
\tproto esp spi 0xc5ee315e reqid 1 mode transport
\treplay-window 0 seq 0x00000000 flag  (0x00000000)
src 203.0.113.22 dst 198.51.100.200
\tproto esp spi 0xc5e56cd0 reqid 9 mode tunnel
src 203.0.113.22 dst {B}
\tproto esp spi 0x00000000 reqid 2 mode transport
"""


def test_repair_deletes_only_the_tunnel_policies_and_esp_sas_of_the_peers():
    from ovsnet.strongswan import policy_selectors, state_deletions

    guard = Guard(frozenset({B}), frozenset({(C, 4789)}))
    assert policy_selectors(guard) == [
        ["dst", f"{B}/32", "proto", "gre"],
        ["src", f"{B}/32", "proto", "gre"],
        ["dst", f"{C}/32", "proto", "udp", "dport", "4789"],
        ["dst", f"{C}/32", "proto", "udp", "sport", "4789"],
        ["src", f"{C}/32", "proto", "udp", "dport", "4789"],
        ["src", f"{C}/32", "proto", "udp", "sport", "4789"],
    ]
    # Both directions of B, each SA by its exact id (with its mark): a `deleteall` filter
    # would stay in force for a batch's next lines and leave the outbound SAs.
    assert [" ".join(d) for d in state_deletions(XFRM_STATES, [B])] == [
        f"xfrm state delete src 203.0.113.22 dst {B} proto esp spi 0xc0c442ad",
        f"xfrm state delete src {B} dst 203.0.113.22 proto esp spi 0xcb86585f mark 0x1 mask 0x1",
    ]
    assert len(state_deletions(XFRM_STATES, guard.peers)) == 3
    assert state_deletions(XFRM_STATES, []) == []
    assert state_deletions("", guard.peers) == []
