"""Hostile and broken input: names, addresses, etcd records, peer files, inventories.

Pure checks and parsers, and the agent's record handling driven without etcd (its view of
the records and its plan; `NoDataplane` is the product's own `--no-dataplane` data plane).
Fuzzing with hypothesis: whatever comes in, the answer is a result or an ovsnet error, never
another exception.
"""

from __future__ import annotations

import json
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ovsnet import inventory as inv
from ovsnet.addressing import host_addressing, parse_network, parse_prefix, parse_supernet
from ovsnet.cli import main
from ovsnet.cluster.agent import Agent
from ovsnet.cluster.agent_config import AgentConfig
from ovsnet.cluster.dataplane import NoDataplane
from ovsnet.cluster.keys import ClusterKeys
from ovsnet.cluster.records import BadRecord, HostRecord, parse_host_entry
from ovsnet.errors import InvalidInput, OvsnetError
from ovsnet.etcd.items import Item, Snapshot
from ovsnet.tunnels import parse_peer, parse_peers_text
from ovsnet.validate import (
    check_interface_name,
    check_overlay_supernet,
    check_underlay_address,
    printable,
)

FUZZ = settings(deadline=None, max_examples=300, suppress_health_check=[HealthCheck.too_slow])
KEYS = ClusterKeys()
SUPERNET = IPv4Network("10.0.0.0/8")

# -- names and addresses ---------------------------------------------------------------------


@pytest.mark.parametrize("name", ["br0", "docker0", "a", "br-overlay.1", "x" * 15, "é" * 7])
def test_usable_interface_names_pass(name):
    assert check_interface_name(name) == name


@pytest.mark.parametrize(
    "name, fragment",
    [
        ("a b", "contains a space"),
        ("a\tb", "control character"),
        ("br0\n", "control character"),
        ("br\x000", "control character"),
        ("a/b", "'/'"),
        ("a:b", "':'"),
        ("x" * 16, "longer than 15 bytes"),
        ("é" * 8, "longer than 15 bytes"),  # 16 bytes in UTF-8
        (".", "'.' or '..'"),
        ("..", "'.' or '..'"),
        ("", "is empty"),
    ],
)
def test_interface_names_linux_cannot_use_are_refused(name, fragment):
    with pytest.raises(InvalidInput, match=fragment.replace(".", r"\.")):
        check_interface_name(name, "--bridge")


@pytest.mark.parametrize(
    "network, kind",
    [
        ("127.0.0.0/8", "loopback"),
        ("127.1.0.0/16", "loopback"),
        ("224.0.0.0/8", "multicast"),
        ("169.254.0.0/16", "link-local"),
        ("0.0.0.0/8", "unspecified"),
        ("240.0.0.0/8", "reserved"),
        ("0.0.0.0/0", "unspecified"),
        ("64.0.0.0/2", "loopback"),
    ],
)
def test_supernets_in_special_space_are_refused(network, kind):
    with pytest.raises(InvalidInput, match=kind):
        check_overlay_supernet(IPv4Network(network))
    with pytest.raises(InvalidInput, match=kind):
        host_addressing(prefix=network.split(".")[0] + ".0.1", supernet=network)


@pytest.mark.parametrize(
    "network", ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10"]
)
def test_private_supernets_pass(network):
    assert parse_supernet(network) == IPv4Network(network)


@pytest.mark.parametrize(
    "address, kind",
    [
        ("0.0.0.0", "unspecified"),
        ("0.1.2.3", "unspecified"),
        ("127.0.0.1", "loopback"),
        ("169.254.7.7", "link-local"),
        ("224.0.0.1", "multicast"),
        ("239.255.255.250", "multicast"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "broadcast"),
    ],
)
def test_peers_in_special_space_are_refused(address, kind):
    with pytest.raises(InvalidInput, match=f"not a unicast host address \\({kind} space\\)"):
        parse_peer(address, set(), None)
    with pytest.raises(InvalidInput, match=kind):
        check_underlay_address(IPv4Address(address))


def test_printable_escapes_control_characters_and_bounds_length():
    assert printable("/ovsnet/hosts/a\nb\x1b[31m") == "/ovsnet/hosts/a\\nb\\x1b[31m"
    assert len(printable("x" * 1000)) == 200


# -- host records ------------------------------------------------------------------------------

GOOD = {"name": "h2", "underlay_ip": "198.51.100.12", "subnet": "10.0.2.0/24"}


def with_(**changes) -> bytes:
    doc = dict(GOOD)
    for key, value in changes.items():
        if value is ...:
            doc.pop(key)
        else:
            doc[key] = value
    return json.dumps(doc).encode()


BAD_RECORDS = [
    (b"", "not JSON"),
    (b"\xff\xfe", "not JSON"),
    (b"[1,2]", "not a JSON object"),
    (b"[" * 5000, "not JSON"),
    (b'{"x": "' + b"a" * 20000 + b'"}', "more than the"),
    (with_(name=...), "no name"),
    (with_(name=7), "is a number, not a string"),
    (with_(name="h2\n"), "name"),
    (with_(underlay_ip=3325256716), "is a number, not a string"),
    (with_(underlay_ip="127.0.0.1"), "loopback space"),
    (with_(underlay_ip="224.0.0.9"), "multicast space"),
    (with_(underlay_ip="255.255.255.255"), "broadcast space"),
    (with_(underlay_ip="0.0.0.0"), "unspecified space"),
    (with_(underlay_ip="198.51.100.300"), "underlay_ip"),
    (with_(underlay_ip=["198.51.100.12"]), "is a array"),
    (with_(subnet="10.0.2.1/24"), "subnet"),
    (with_(subnet={"a": 1}), "subnet"),
    (with_(subnet="127.0.0.0/24"), "loopback space"),
    (with_(tunnel_type="ipip"), "not one of gre, vxlan, geneve"),
    (with_(tunnel_type=True), "tunnel_type"),
    (with_(ipsec="yes"), "ipsec is not an object"),
    (with_(ipsec={"method": "rot13"}), "ipsec.method"),
    (with_(ipsec={"method": "psk", "cn": "a\x1b[2J"}), "control character"),
    (with_(ipsec={"method": "cert", "cn": "x" * 300}), "longer than 255"),
    (with_(started_at="yesterday"), "started_at"),
    (with_(started_at=1e309), "started_at"),
    (with_(version="1"), "version"),
    (with_(version=-1), "version"),
]


@pytest.mark.parametrize("raw, fragment", BAD_RECORDS, ids=[f for _, f in BAD_RECORDS])
def test_bad_records_name_the_field_and_the_reason(raw, fragment):
    with pytest.raises(BadRecord) as caught:
        HostRecord.from_json(raw)
    assert fragment in str(caught.value)
    assert "\n" not in str(caught.value) and len(str(caught.value)) < 300


def test_a_record_must_live_under_its_own_name():
    assert parse_host_entry(KEYS, "/ovsnet/hosts/h2", with_()).name == "h2"
    with pytest.raises(BadRecord, match="names host h2, not h3"):
        parse_host_entry(KEYS, "/ovsnet/hosts/h3", with_())
    for key in ("/ovsnet/hosts/", "/ovsnet/hosts/a b", "/ovsnet/hosts/x/y", "/ovsnet/other/h2"):
        with pytest.raises(BadRecord, match="does not end in a valid host name"):
            parse_host_entry(KEYS, key, with_())


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=30)
    | st.sampled_from(["198.51.100.7", "10.0.9.0/24", "gre", "psk", "h9", "127.0.0.1"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
record_like = st.fixed_dictionaries(
    {},
    optional={
        key: json_values
        for key in ("version", "name", "underlay_ip", "subnet", "tunnel_type", "started_at")
    }
    | {
        "ipsec": json_values
        | st.fixed_dictionaries(
            {}, optional=dict.fromkeys(("method", "cn", "fingerprint"), json_values)
        )
    },
)


def parse_or_bad(raw) -> HostRecord | None:
    try:
        record = HostRecord.from_json(raw)
    except BadRecord as exc:
        assert "\n" not in str(exc)
        return None
    # Whatever passes is fit for the plan: a usable underlay address, a real subnet.
    check_underlay_address(record.underlay_ip)
    return record


@FUZZ
@given(st.binary(max_size=300) | st.text(max_size=300))
def test_fuzz_random_bytes_and_text_are_a_record_or_bad(raw):
    parse_or_bad(raw)


@FUZZ
@given(json_values)
def test_fuzz_random_json_is_a_record_or_bad(value):
    parse_or_bad(json.dumps(value))


@FUZZ
@given(record_like)
def test_fuzz_records_with_wrong_types_are_a_record_or_bad(doc):
    parse_or_bad(json.dumps(doc))


# -- the agent's view and plan, driven without etcd ------------------------------------------


def agent() -> Agent:
    config = AgentConfig(name="h1", underlay_ip=IPv4Address("198.51.100.11"), supernet=SUPERNET)
    agent = Agent(config, connect=lambda: None, dataplane=NoDataplane(SUPERNET))
    agent.subnet = IPv4Network("10.0.1.0/24")
    agent.reconciler.initialised = agent.subnet
    return agent


def good(name: str, index: int) -> bytes:
    doc = {"name": name, "underlay_ip": f"198.51.100.{index}", "subnet": f"10.0.{index}.0/24"}
    return json.dumps(doc).encode()


def snapshot(values: dict[str, bytes], revision: int = 10) -> Snapshot:
    return Snapshot(revision, {key: Item(value, 0, 1, 1) for key, value in values.items()})


def test_bad_records_are_skipped_counted_and_logged_once_while_the_rest_reconciles():
    events = []
    subject = agent()
    subject.emit = events.append
    values = {
        "/ovsnet/hosts/h1": good("h1", 11),
        "/ovsnet/hosts/h2": good("h2", 12),
        "/ovsnet/hosts/h3": good("h3", 13),
        "/ovsnet/hosts/lo": json.dumps({**GOOD, "name": "lo", "underlay_ip": "127.0.0.1"}).encode(),
        "/ovsnet/hosts/junk": b"\x00junk",
        "/ovsnet/hosts/a b": good("h4", 14),
        "/ovsnet/hosts/inside": good("inside", 15).replace(b"198.51.100.15", b"10.9.9.9"),
        "/ovsnet/hosts/me2": good("me2", 16).replace(b"198.51.100.16", b"198.51.100.11"),
    }
    for _ in range(3):  # e.g. the periodic resync: the same bad records are not logged again
        subject._replace_records(snapshot(values))
        assert subject._reconcile() is True
    assert subject.dataplane.peers == ("198.51.100.12", "198.51.100.13")
    bad = [e for e in events if e["event"] == "bad-record"]
    assert sorted(e["key"] for e in bad) == [
        "/ovsnet/hosts/a b",
        "/ovsnet/hosts/junk",
        "/ovsnet/hosts/lo",
    ]
    assert bad[-1]["bad_records"] == 3
    skipped = [e["problem"] for e in events if e["event"] == "peer-skipped"]
    assert len(skipped) == 2  # inside the overlay; this host's address: left out, once
    assert any("inside the overlay supernet" in s for s in skipped)
    # A fixed record comes back; a deleted bad one is forgotten.
    values["/ovsnet/hosts/lo"] = good("lo", 17)
    del values["/ovsnet/hosts/junk"]
    subject._replace_records(snapshot(values, 11))
    assert subject._reconcile() is True
    assert "198.51.100.17" in subject.dataplane.peers
    assert set(subject.bad) == {"/ovsnet/hosts/a b"}


def test_changes_older_than_the_last_full_read_are_ignored():
    from ovsnet.etcd.items import Change

    subject = agent()
    subject._replace_records(snapshot({"/ovsnet/hosts/h2": good("h2", 12)}, revision=20))
    subject._apply_changes(
        [Change("/ovsnet/hosts/h2", None, 19), Change("/ovsnet/hosts/h3", good("h3", 13), 21)]
    )
    assert set(subject.records) == {"h2", "h3"}


@settings(deadline=None, max_examples=120, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.dictionaries(
        st.sampled_from(["h2", "h3", "h4", "x y", "h5/6", ""]).map(lambda n: "/ovsnet/hosts/" + n)
        | st.text(max_size=20),
        st.binary(max_size=80) | record_like.map(lambda d: json.dumps(d).encode()),
        max_size=6,
    )
)
def test_fuzz_no_record_stops_the_agent_from_reconciling_the_good_ones(hostile):
    subject = agent()
    values = {**hostile, "/ovsnet/hosts/h9": good("h9", 99)}
    subject._replace_records(snapshot(values))
    assert subject._reconcile() is True
    assert "198.51.100.99" in subject.dataplane.peers
    for peer in subject.dataplane.peers:
        parse_peer(peer, {IPv4Address("198.51.100.11")}, SUPERNET)


# -- the CLI's parsers -------------------------------------------------------------------------


def test_peer_file_errors_name_file_and_line():
    text = b"# peers\n198.51.100.2\n\n198.51.100.3  # b\n127.0.0.1\n"
    with pytest.raises(InvalidInput, match=r"^peers.txt:5: peer 127.0.0.1 is not a unicast"):
        parse_peers_text(text, "peers.txt")
    with pytest.raises(InvalidInput, match=r"^p:2: not UTF-8"):
        parse_peers_text(b"198.51.100.2\n\xff\n", "p")
    # The second column is the peer's subnet: a second address there is no subnet.
    with pytest.raises(InvalidInput, match=r"^p:1: subnet: '198.51.100.3' is not an IPv4 net"):
        parse_peers_text(b"198.51.100.2 198.51.100.3\n", "p")
    assert parse_peers_text(text[:-10], "p") == [
        IPv4Address("198.51.100.2"),
        IPv4Address("198.51.100.3"),
    ]


@FUZZ
@given(st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_fuzz_peer_files_give_peers_or_one_error(data):
    try:
        peers = parse_peers_text(data, "f")
    except InvalidInput as exc:
        assert exc.one_line().startswith("f:") and "\n" not in exc.one_line()
        return
    for peer in peers:
        check_underlay_address(peer)


def ovsnet_error_only(call, *args):
    try:
        return call(*args)
    except OvsnetError as exc:
        assert "\n" not in exc.one_line()
        return None


@FUZZ
@given(st.text(max_size=40))
def test_fuzz_prefixes_subnets_and_peer_addresses_give_values_or_ovsnet_errors(text):
    ovsnet_error_only(parse_network, text, "subnet")
    ovsnet_error_only(parse_supernet, text)
    ovsnet_error_only(parse_prefix, text)
    ovsnet_error_only(host_addressing, text, None)
    ovsnet_error_only(host_addressing, None, text)
    ovsnet_error_only(parse_peer, text, set(), SUPERNET)


inventory_yaml = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=10,
)
inventory_like = st.fixed_dictionaries(
    {},
    optional={
        "supernet": st.sampled_from(["10.0.0.0/16", "127.0.0.0/8", "x"]) | inventory_yaml,
        "hosts": st.lists(
            st.fixed_dictionaries(
                {},
                optional={
                    "name": st.sampled_from(["a", "b", "a\n", "é"]) | inventory_yaml,
                    "ip": st.sampled_from(["198.51.100.1", "224.0.0.1", "10.0.1.1"])
                    | inventory_yaml,
                    "prefix": st.sampled_from(["10.0.1", "10.0.255", "x"]) | inventory_yaml,
                },
            ),
            max_size=4,
        ),
        "allocations": st.dictionaries(st.text(max_size=5), inventory_yaml, max_size=3)
        | inventory_yaml,
        "image": inventory_yaml,
        "underlay_mtu": inventory_yaml,
    },
)


@FUZZ
@given(st.text(max_size=300) | inventory_like.map(lambda d: inv.yaml.safe_dump(d)))
def test_fuzz_inventories_load_or_give_one_ovsnet_error(text):
    ovsnet_error_only(inv.loads, text, "hosts.yaml")


@pytest.mark.parametrize(
    "data, fragment",
    [
        ({"hosts": [{"name": "a\n", "ip": "198.51.100.1"}]}, "is not a host name"),
        ({"hosts": [{"name": "a", "ip": "240.0.0.1"}]}, "reserved space"),
        ({"supernet": "127.0.0.0/8", "hosts": []}, "loopback"),
        ({"hosts": [], "allocations": {"a\x1b": "10.0.1"}}, "is not a host name"),
        ({"hosts": [], "image": "img\nExecStartPre=/bin/sh"}, "control character"),
        ("[" * 3000, "nested too deeply"),
    ],
)
def test_hostile_inventories_are_refused(data, fragment):
    text = data if isinstance(data, str) else inv.yaml.safe_dump(data)
    with pytest.raises(InvalidInput, match=fragment):
        inv.loads(text)


# -- the CLI edge: one line, exit 2, before anything is touched -------------------------------

NO_DB = ["--db", "unix:/nonexistent/ovsnet-test.sock"]  # touching OVSDB would be exit 3


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["init", "--prefix", "10.0.1", "--bridge", "a b"], "--bridge 'a b' contains a space"),
        (["init", "--prefix", "10.0.1", "--bridge", "br\n0"], "control character \\n"),
        (["init", "--prefix", "10.0.1", "--bridge", "a" * 16], "longer than 15 bytes"),
        (["init", "--prefix", "10.0.1", "--bridge", ".."], "'.' or '..'"),
        (["init", "--prefix", "10.0.1", "--docker-bridge", "d/0"], "--docker-bridge 'd/0'"),
        (["init", "--prefix", "127.0.1", "--supernet", "127.0.0.0/8"], "loopback"),
        (["init", "--prefix", "224.0.1", "--supernet", "224.0.0.0/8"], "multicast"),
        (["peer", "add", "--bridge", "a/b", "198.51.100.2"], "--bridge 'a/b'"),
        (["reset", "--docker-bridge", "x y"], "contains a space"),
        (["status", "--bridge", "br0:1"], "':'"),
    ],
)
def test_cli_refuses_bad_names_and_spaces_before_touching_anything(capsys, argv, fragment):
    code = main([*NO_DB, *argv])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("ovsnet: error: ") and fragment in err


def test_peer_sync_names_the_bad_line_before_touching_anything(capsys, tmp_path: Path):
    peers = tmp_path / "peers.txt"
    peers.write_bytes(b"198.51.100.2\n198.51.100.3\n255.255.255.255\n")
    assert main([*NO_DB, "peer", "sync", str(peers)]) == 2
    err = capsys.readouterr().err
    assert f"{peers}:3: peer 255.255.255.255 is not a unicast host address (broadcast" in err
    assert err.count("\n") == 1


# -- a trailing newline is a control character too ---------------------------------------------
# `re.match` with a `$`-anchored pattern accepts "name\n": such a value would end up as an
# extra line in ipsec.conf, ipsec.secrets, a systemd unit or a certificate's CN.


def _checks():
    from ovsnet.ipsec import credentials as ipsec_credentials
    from ovsnet.pki import profile as pki_profile
    from ovsnet.render import safe_text

    return [
        ("pki host name", lambda v: pki_profile.check_host_name(v), "node1"),
        ("IPsec remote name", lambda v: ipsec_credentials.check_remote_name(v), "node1"),
        (
            "certificate path",
            lambda v: ipsec_credentials.check_pem_path(v, "cert"),
            "/etc/ovsnet/c.pem",
        ),
        ("PSK", lambda v: ipsec_credentials.validate_psk(v), "x" * 40),
        ("unit command line", lambda v: safe_text.command_line(["ovsnet", v]), "--peers=a"),
        ("image", lambda v: safe_text.check_image(v), "ovsnet:latest"),
        ("TLS directory", lambda v: safe_text.check_tls_dir(v), "/etc/ovsnet/tls"),
    ]


@pytest.mark.parametrize("what", [c[0] for c in _checks()])
def test_a_trailing_newline_is_refused_everywhere(what):
    check, good_value = next((c, g) for name, c, g in _checks() if name == what)
    check(good_value)
    try:
        accepted = check(good_value + "\n")
    except InvalidInput:
        return
    assert "\n" not in str(getattr(accepted, "value", accepted))  # stripped, never passed on


def test_cluster_status_shows_bad_records_as_plain_text():
    from rich.console import Console

    from ovsnet.cluster.admin import ClusterStatusResult

    table = ClusterStatusResult(
        hosts=[],
        problems=["h1 and h2 both publish underlay 198.51.100.1"],
        bad_records=[{"key": "/ovsnet/hosts/[bold]x", "reason": "not JSON ([/] oops)"}],
    )
    console = Console(record=True, width=200, color_system=None)
    table.render(console)
    text = console.export_text()
    assert "bad records (1, left out by every agent):" in text
    assert "/ovsnet/hosts/[bold]x: not JSON ([/] oops)" in text
    assert table.as_json()["bad_records"] == table.bad_records


def test_the_companions_peer_file_names_the_bad_line_too():
    from ovsnet.companion.config import parse_peers_file

    assert parse_peers_file(b"198.51.100.2, 198.51.100.3 # two\n", "f") == [
        "198.51.100.2",
        "198.51.100.3",
    ]
    with pytest.raises(InvalidInput, match=r"^/etc/p:2: peer 'x' is not an IP address"):
        parse_peers_file(b"198.51.100.2\n198.51.100.3 x\n", "/etc/p")
    with pytest.raises(InvalidInput, match=r"^f:1: not UTF-8"):
        parse_peers_file(b"\xff", "f")


@FUZZ
@given(st.binary(max_size=200))
def test_fuzz_the_companions_peer_files(data):
    from ovsnet.companion.config import parse_peers_file

    ovsnet_error_only(parse_peers_file, data, "f")


@given(st.integers(min_value=0, max_value=2**32 - 1))
def test_special_space_is_the_first_block_holding_the_address(value):
    from ovsnet.validate import BROADCAST, SPECIAL_SPACE, special_space

    address = IPv4Address(value)
    blocks = [kind for network, kind in SPECIAL_SPACE if address in network]
    expected = "broadcast" if address == BROADCAST else (blocks[0] if blocks else None)
    assert special_space(address) == expected
