"""Pure cluster logic: key layout, records, subnet choice, claim planning, peer planning."""

from __future__ import annotations

import random
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ovsnet.cluster.claims import ClaimView, Holder, displaced, plan_claim
from ovsnet.cluster.keys import ClusterKeys, Permission, check_name, prefix_end, role_name
from ovsnet.cluster.plan import (
    backoff,
    backoff_cap,
    desired_peers,
    keepalive_interval,
    subnet_conflicts,
)
from ovsnet.cluster.records import (
    BadRecord,
    HostRecord,
    claim_holder,
    claim_value,
    memory_subnet,
    memory_value,
)
from ovsnet.cluster.subnets import choose_subnet, host_subnets, usable
from ovsnet.errors import InvalidInput, OperationFailed

SUPERNET = IPv4Network("10.0.0.0/8")
KEYS = ClusterKeys()


def net(text: str) -> IPv4Network:
    return IPv4Network(text)


def record(name: str, ip: str, subnet: str, tunnel_type: str = "gre") -> HostRecord:
    return HostRecord(name, IPv4Address(ip), net(subnet), tunnel_type)


@dataclass
class FakeItem:  # the shape of ovsnet.etcd.items.Item that ClaimView reads
    value: bytes
    mod_revision: int = 1


# -- keys -------------------------------------------------------------------------------------


def test_key_layout_round_trips_names_and_subnets():
    assert KEYS.host("h1") == "/ovsnet/hosts/h1"
    assert KEYS.last_subnet("h1") == "/ovsnet/last-subnet/h1"
    assert KEYS.subnet(net("10.0.42.0/24")) == "/ovsnet/subnets/10.0.42.0-24"
    assert KEYS.subnet_of("/ovsnet/subnets/10.0.42.0-24") == net("10.0.42.0/24")
    assert KEYS.subnet_of("/ovsnet/subnets/garbage") is None
    assert KEYS.subnet_of("/ovsnet/hosts/h1") is None
    assert KEYS.name_of("/ovsnet/hosts/h1") == "h1"
    assert KEYS.name_of("/ovsnet/last-subnet/h1") == "h1"
    assert KEYS.name_of("/ovsnet/hosts/bad/name") is None


@pytest.mark.parametrize("name", ["", "-a", "a-", "a/b", "a b", "x" * 65, "h1\n"])
def test_bad_host_names_are_refused(name):
    with pytest.raises(InvalidInput):
        check_name(name)


@pytest.mark.parametrize("prefix", ["ovsnet/", "/ovsnet", "//", "/a//b/"])
def test_bad_key_prefixes_are_refused(prefix):
    with pytest.raises(InvalidInput):
        ClusterKeys(prefix)


def test_host_permissions_write_only_own_exact_keys_and_the_shared_subnet_range():
    perms = KEYS.host_permissions("h1")
    writable = [p for p in perms if "write" in p.kind]
    assert Permission("readwrite", "/ovsnet/hosts/h1") in writable  # exact: not h10
    assert Permission("readwrite", "/ovsnet/last-subnet/h1") in writable
    assert Permission("readwrite", "/ovsnet/subnets/", "/ovsnet/subnets0") in writable
    assert len(writable) == 3
    assert Permission("read", "/ovsnet/", "/ovsnet0") in perms
    assert role_name("h1") == "ovsnet-host-h1"


def test_prefix_end_covers_exactly_the_prefix():
    end = prefix_end("/ovsnet/hosts/")
    assert "/ovsnet/hosts/" <= "/ovsnet/hosts/zzz" < end
    assert not ("/ovsnet/hosts/" <= "/ovsnet/hostsx" < end)


# -- records ----------------------------------------------------------------------------------


def test_host_record_round_trips_and_holds_no_secret():
    original = HostRecord(
        "h1",
        IPv4Address("198.51.100.11"),
        net("10.0.1.0/24"),
        "vxlan",
        ipsec_method="psk",
        ipsec_cn="h1",
        ipsec_fingerprint="sha256:AB",
        started_at="2026-11-29T19:00:00+00:00",
    )
    assert HostRecord.from_json(original.to_json()) == original
    assert set(original.as_json()) == {
        "version",
        "name",
        "underlay_ip",
        "subnet",
        "tunnel_type",
        "ipsec",
        "started_at",
    }
    assert set(original.as_json()["ipsec"]) == {"method", "cn", "fingerprint"}
    plain = record("h2", "198.51.100.12", "10.0.2.0/24")
    assert plain.as_json()["ipsec"] is None and HostRecord.from_json(plain.to_json()) == plain


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"[]",
        b"{}",
        b'{"name":"h1"}',
        b'{"name":"h1","underlay_ip":"x","subnet":"10.0.1.0/24"}',
        b'{"name":"h/1","underlay_ip":"198.51.100.1","subnet":"10.0.1.0/24"}',
        b'{"name":"h1","underlay_ip":"198.51.100.1","subnet":"10.0.1.0/24","tunnel_type":"ipip"}',
        b'{"name":"h1","underlay_ip":"198.51.100.1","subnet":"10.0.1.0/24","ipsec":"yes"}',
        b'{"name":"h1","underlay_ip":"198.51.100.1","subnet":"10.0.1.0/24",'
        b'"ipsec":{"method":"rot13"}}',
    ],
)
def test_malformed_records_raise_bad_record(raw):
    with pytest.raises(BadRecord):
        HostRecord.from_json(raw)


def test_claim_and_memory_values_round_trip():
    assert claim_holder(claim_value("h1")) == "h1"
    assert memory_subnet(memory_value(net("10.0.3.0/24"))) == net("10.0.3.0/24")
    with pytest.raises(BadRecord):
        claim_holder(b'{"who":"h1"}')


# -- subnet choice ----------------------------------------------------------------------------


def test_host_subnets_skip_the_one_holding_the_supernet_broadcast():
    subnets = list(host_subnets(net("10.0.0.0/22")))
    assert subnets == [net("10.0.0.0/24"), net("10.0.1.0/24"), net("10.0.2.0/24")]
    assert not usable(net("10.0.3.0/24"), net("10.0.0.0/22"))
    assert not usable(net("10.1.0.0/25"), SUPERNET)


def test_supernet_without_room_is_refused():
    with pytest.raises(InvalidInput):
        list(host_subnets(net("10.0.0.0/24")))


def test_preferred_subnet_wins_when_free_and_is_skipped_when_taken():
    own = net("10.0.7.0/24")
    assert choose_subnet(SUPERNET, set(), preferred=(own,)) == own
    other = choose_subnet(SUPERNET, {own}, preferred=(own,), rng=random.Random(1))
    assert other is not None and other != own


def test_remembered_subnets_are_used_only_when_nothing_else_is_free():
    small = net("10.0.0.0/22")  # three usable /24s
    remembered = {net("10.0.1.0/24")}
    for seed in range(20):
        assert choose_subnet(small, set(), remembered, rng=random.Random(seed)) != net(
            "10.0.1.0/24"
        )
    full = {net("10.0.0.0/24"), net("10.0.2.0/24")}
    assert choose_subnet(small, full, remembered) == net("10.0.1.0/24")
    assert choose_subnet(small, full | remembered, remembered) is None


@settings(max_examples=200, deadline=None)
@given(taken=st.sets(st.integers(0, 40)), seed=st.integers(0, 2**32))
def test_chosen_subnet_is_always_free_usable_and_low(taken, seed):
    supernet = net("10.0.0.0/16")
    taken_nets = {IPv4Network(f"10.0.{i}.0/24") for i in taken}
    chosen = choose_subnet(supernet, taken_nets, rng=random.Random(seed))
    assert chosen not in taken_nets and usable(chosen, supernet)
    lower_free = [s for s in host_subnets(supernet) if s not in taken_nets and s < chosen]
    assert len(lower_free) < 16  # picked among the lowest few free subnets


# -- claim planning ---------------------------------------------------------------------------


def view(holders=None, memory=None) -> ClaimView:
    return ClaimView(
        {net(s): Holder(h, rev) for s, (h, rev) in (holders or {}).items()},
        {n: net(s) for n, s in (memory or {}).items()},
    )


def test_claim_view_parses_etcd_items_and_counts_unreadable_claims_as_taken():
    parsed = ClaimView.parse(
        KEYS,
        {
            "/ovsnet/subnets/10.0.1.0-24": FakeItem(claim_value("h1").encode(), 7),
            "/ovsnet/subnets/10.0.2.0-24": FakeItem(b"junk", 8),
            "/ovsnet/subnets/bogus": FakeItem(b"{}"),
        },
        {
            "/ovsnet/last-subnet/h2": FakeItem(memory_value(net("10.0.9.0/24")).encode()),
            "/ovsnet/last-subnet/h3": FakeItem(b"junk"),
        },
    )
    assert parsed.holders == {
        net("10.0.1.0/24"): Holder("h1", 7),
        net("10.0.2.0/24"): Holder("?", 8),
    }
    assert parsed.memory == {"h2": net("10.0.9.0/24")}
    assert parsed.held_by("h1") == [net("10.0.1.0/24")]


def test_restart_retakes_own_live_claim_at_its_revision():
    target = plan_claim(view({"10.0.5.0/24": ("h1", 42)}), "h1", SUPERNET)
    assert (target.subnet, target.expected_revision) == (net("10.0.5.0/24"), 42)


def test_returning_host_gets_its_remembered_subnet_when_free():
    target = plan_claim(view(memory={"h1": "10.0.9.0/24"}), "h1", SUPERNET)
    assert (target.subnet, target.expected_revision) == (net("10.0.9.0/24"), None)


def test_returning_host_never_steals_its_old_subnet_from_another_host():
    v = view({"10.0.9.0/24": ("h2", 5)}, {"h1": "10.0.9.0/24"})
    target = plan_claim(v, "h1", SUPERNET, current=net("10.0.9.0/24"), rng=random.Random(3))
    assert target.subnet != net("10.0.9.0/24") and target.expected_revision is None
    warning = displaced(net("10.0.9.0/24"), target.subnet, v)
    assert "now held by h2" in warning and str(target.subnet) in warning


def test_data_plane_subnet_is_preferred_over_etcd_memory():
    v = view(memory={"h1": "10.0.9.0/24"})
    assert plan_claim(v, "h1", SUPERNET, current=net("10.0.4.0/24")).subnet == net("10.0.4.0/24")


def test_explicit_prefix_is_reserved_or_fails_naming_the_holder():
    assert plan_claim(view(), "h1", SUPERNET, explicit=net("10.0.42.0/24")).subnet == net(
        "10.0.42.0/24"
    )
    with pytest.raises(InvalidInput, match="held by host h2"):
        plan_claim(view({"10.0.42.0/24": ("h2", 3)}), "h1", SUPERNET, explicit=net("10.0.42.0/24"))
    own = plan_claim(
        view({"10.0.42.0/24": ("h1", 3)}), "h1", SUPERNET, explicit=net("10.0.42.0/24")
    )
    assert own.expected_revision == 3


def test_full_supernet_is_an_operation_failure():
    small = net("10.0.0.0/23")  # one usable /24
    with pytest.raises(OperationFailed, match="no free /24"):
        plan_claim(view({"10.0.0.0/24": ("h2", 1)}), "h1", small)


def test_no_displacement_warning_when_the_subnet_is_kept():
    assert displaced(None, net("10.0.1.0/24"), view()) is None
    assert displaced(net("10.0.1.0/24"), net("10.0.1.0/24"), view()) is None


# -- peers and timing -------------------------------------------------------------------------


def test_desired_peers_are_every_other_host_of_the_same_type_sorted():
    records = {
        "h1": record("h1", "198.51.100.11", "10.0.1.0/24"),
        "h2": record("h2", "198.51.100.12", "10.0.2.0/24"),
        "h10": record("h10", "198.51.100.9", "10.0.10.0/24"),
        "hx": record("hx", "198.51.100.13", "10.0.3.0/24", "vxlan"),
        "dup": record("dup", "198.51.100.11", "10.0.4.0/24"),
    }
    plan = desired_peers(records, "h1", IPv4Address("198.51.100.11"), "gre")
    assert plan.peers == ("198.51.100.9", "198.51.100.12")
    assert any("hx: uses vxlan" in s for s in plan.skipped)
    assert any("dup: has this host's underlay address" in s for s in plan.skipped)


def test_ipsec_hosts_and_plain_hosts_leave_each_other_out():
    records = {
        "h1": HostRecord(
            "h1", IPv4Address("198.51.100.11"), net("10.0.1.0/24"), ipsec_method="psk"
        ),
        "h2": HostRecord(
            "h2", IPv4Address("198.51.100.12"), net("10.0.2.0/24"), ipsec_method="psk"
        ),
        "h3": record("h3", "198.51.100.13", "10.0.3.0/24"),
    }
    secure = desired_peers(records, "h1", IPv4Address("198.51.100.11"), "gre", "psk")
    assert secure.peers == ("198.51.100.12",)
    assert secure.skipped == ("h3: uses IPsec off, this host psk",)
    plain = desired_peers(records, "h3", IPv4Address("198.51.100.13"), "gre", None)
    assert plain.peers == ()


FINGERPRINT = "sha256:" + ":".join(["AB"] * 32)


def cert_record(name: str, index: int, cn: str | None, fingerprint: str | None) -> HostRecord:
    return HostRecord(
        name,
        IPv4Address(f"198.51.100.{index}"),
        net(f"10.0.{index}.0/24"),
        ipsec_method="cert",
        ipsec_cn=cn,
        ipsec_fingerprint=fingerprint,
    )


def test_certificate_ipsec_names_each_peer_and_leaves_out_records_without_an_identity():
    records = {
        "h1": cert_record("h1", 11, "h1", FINGERPRINT),
        "h2": cert_record("h2", 12, "h2", FINGERPRINT),
        "h3": cert_record("h3", 13, "node-3.example", FINGERPRINT.lower()),
        "h4": cert_record("h4", 14, None, FINGERPRINT),
        "h5": cert_record("h5", 15, "h5", None),
        "h6": cert_record("h6", 16, "h6", "sha256:00"),
        "h7": cert_record("h7", 17, 'h7"\nleftca=%any', FINGERPRINT),
        "h8": HostRecord(
            "h8", IPv4Address("198.51.100.18"), net("10.0.18.0/24"), ipsec_method="psk"
        ),
    }
    plan = desired_peers(records, "h1", IPv4Address("198.51.100.11"), "gre", "cert")
    assert plan.peers == ("198.51.100.12", "198.51.100.13")
    assert plan.names == (("198.51.100.12", "h2"), ("198.51.100.13", "node-3.example"))
    skipped = dict(line.split(": ", 1) for line in plan.skipped)
    assert set(skipped) == {"h4", "h5", "h6", "h7", "h8"}
    assert "publishes no certificate name and fingerprint" in skipped["h4"]
    assert "publishes no certificate name and fingerprint" in skipped["h5"]
    assert "is not sha256:" in skipped["h6"]
    assert skipped["h8"] == "uses IPsec psk, this host cert"
    # PSK hosts never get names (their tunnels carry no certificate settings).
    assert desired_peers(records, "h8", IPv4Address("198.51.100.18"), "gre", "psk").names == ()


def test_desired_peers_of_a_lone_host_is_empty():
    records = {"h1": record("h1", "198.51.100.11", "10.0.1.0/24")}
    assert desired_peers(records, "h1", IPv4Address("198.51.100.11"), "gre").peers == ()


def test_subnet_conflicts_are_reported():
    records = {
        "a": record("a", "198.51.100.1", "10.0.1.0/24"),
        "b": record("b", "198.51.100.2", "10.0.1.0/24"),
    }
    assert subnet_conflicts(records) == ["a and b both publish 10.0.1.0/24"]


def test_backoff_doubles_to_the_cap_with_jitter():
    delays = backoff(first=0.5, cap=4.0, rng=random.Random(0))
    values = [next(delays) for _ in range(8)]
    assert 0.375 <= values[0] <= 0.5
    assert all(3.0 <= v <= 4.0 for v in values[4:])
    assert values[1] > values[0] * 1.4


def test_keepalive_and_retry_fit_inside_the_ttl():
    for ttl in (2, 5, 30, 3600):
        assert keepalive_interval(ttl) * 2 < ttl
        assert backoff_cap(ttl) <= max(0.5, ttl / 3)
