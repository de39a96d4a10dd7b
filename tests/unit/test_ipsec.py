"""IPsec planning (pure): PSK rules, OVS versions, one method per host, fail-closed, and the
parser of ovs-monitor-ipsec's tunnels/show, checked against the formatter in OVS's own script."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import string
import types

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ovsnet.errors import InvalidInput, NotReady
from ovsnet.ipsec import checks as ipsec_checks
from ovsnet.ipsec import compat as ipsec_compat
from ovsnet.ipsec import credentials as ipsec_credentials
from ovsnet.ipsec import keys as ipsec_keys
from ovsnet.ipsec import observed as ipsec_observed
from ovsnet.ipsec import plan as ipsec_plan
from ovsnet.ipsec import tunnels_show

GOOD_PSK = "k" * 16 + "Q7/+=" + "x" * 11  # 32 characters
CERT_CONFIG = {
    "certificate": "/etc/ovsnet/pki/hosts/node1-cert.pem",
    "private_key": "/etc/ovsnet/pki/hosts/node1-key.pem",
    "ca_cert": "/etc/ovsnet/pki/ca-cert.pem",
}
PSK_ALPHABET = "".join(c for c in string.printable if c not in ' "\t\n\r\x0b\x0c')


def host(other_config=None, tunnels=(), version="3.1.0") -> ipsec_observed.ObservedHost:
    return ipsec_observed.ObservedHost(
        version,
        dict(other_config or {}),
        tuple(ipsec_observed.ObservedTunnel(name, kind, opts) for name, kind, opts in tunnels),
    )


def psk_request(**kw) -> ipsec_plan.TunnelIpsecRequest:
    return ipsec_plan.TunnelIpsecRequest(method="psk", psk=ipsec_credentials.Psk(GOOD_PSK), **kw)


# --- PSKs -------------------------------------------------------------------------------------


@pytest.mark.parametrize("length", [0, 1, 31])
def test_short_psks_are_rejected(length):
    with pytest.raises(InvalidInput, match="at least 32"):
        ipsec_credentials.validate_psk("a" * length)


def test_a_32_character_psk_is_accepted():
    assert ipsec_credentials.validate_psk(GOOD_PSK).value == GOOD_PSK


@pytest.mark.parametrize("bad", ['"', " ", "\n", "\t", "é", "\x00"])
def test_psks_that_would_break_ipsec_secrets_are_rejected(bad):
    # ovs-monitor-ipsec writes `%any IP : PSK "<psk>"` unescaped into ipsec.secrets.
    with pytest.raises(InvalidInput):
        ipsec_credentials.validate_psk(GOOD_PSK + bad + "tail")


@settings(max_examples=300)
@given(st.text(min_size=1, max_size=80))
def test_rejection_messages_never_depend_on_the_psk(text):
    # "text not in message" would fail on a short PSK that happens to be a word of the message
    # ("the "); the stronger claim is that the message depends on the length alone: a PSK of
    # the same length made only of NUL characters gets the very same message.
    try:
        psk = ipsec_credentials.validate_psk(text)
    except InvalidInput as exc:
        with pytest.raises(InvalidInput) as same_length:
            ipsec_credentials.validate_psk("\x00" * len(text))
        assert exc.one_line() == same_length.value.one_line()
    else:
        assert len(text) >= 32 and text not in repr(psk) and text not in str(psk)


@settings(max_examples=200)
@given(st.text(alphabet=PSK_ALPHABET, min_size=32, max_size=200))
def test_every_long_printable_psk_survives_a_file_round_trip(text):
    for ending in ("", "\n", "\r\n"):
        assert ipsec_credentials.psk_from_file_bytes((text + ending).encode(), "f").value == text


def test_psk_file_with_two_lines_is_rejected():
    with pytest.raises(InvalidInput, match="more than one line"):
        ipsec_credentials.psk_from_file_bytes(f"{GOOD_PSK}\n{GOOD_PSK}\n".encode(), "f")


# --- OVS versions -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "tunnel", "method", "expected"),
    [
        ("2.5.0", "gre", "psk", "ipsec_gre"),
        ("2.6.9", "gre", "psk", "ipsec_gre"),
        ("2.11.0", "gre", "psk", "gre"),
        ("2.11.0", "gre", "cert", "gre"),
        ("3.1.0", "vxlan", "cert", "vxlan"),
        ("3.1.0", "geneve", "psk", "geneve"),
        ("3.5.90", "gre", "psk", "gre"),
    ],
)
def test_port_type_by_ovs_version(version, tunnel, method, expected):
    assert ipsec_compat.port_type(version, tunnel, method) == expected


@pytest.mark.parametrize("version", ["2.7.0", "2.8.1", "2.9.5", "2.10.7"])
def test_ovs_2_7_to_2_10_refuse_ipsec_with_an_explanation(version):
    with pytest.raises(NotReady) as raised:
        ipsec_compat.port_type(version, "gre", "psk")
    assert "2.11" in raised.value.one_line() and version in raised.value.one_line()


@pytest.mark.parametrize(("tunnel", "method"), [("gre", "cert"), ("vxlan", "psk")])
def test_legacy_ovs_supports_only_psk_over_gre(tunnel, method):
    with pytest.raises(NotReady, match="ipsec_gre"):
        ipsec_compat.port_type("2.5.0", tunnel, method)


@pytest.mark.parametrize("version", [None, "", "unknown", "v3"])
def test_unreadable_ovs_version_is_not_ready(version):
    with pytest.raises(NotReady):
        ipsec_compat.port_type(version, "gre", "psk")


@given(st.integers(0, 4), st.integers(0, 30), st.integers(0, 20))
def test_port_type_follows_the_version_thresholds(major, minor, patch):
    version = f"{major}.{minor}.{patch}"
    try:
        kind = ipsec_compat.port_type(version, "gre", "psk")
    except NotReady:
        assert (2, 7) <= (major, minor) < (2, 11)
    else:
        assert kind == ("ipsec_gre" if (major, minor) < (2, 7) else "gre")


# --- planning a tunnel --------------------------------------------------------------------------


def test_psk_tunnel_gets_options_psk_and_the_host_drops_plaintext():
    plan = ipsec_plan.plan_tunnel_ipsec(psk_request(), host())
    assert plan.port_type == "gre"
    assert dict(plan.options) == {"psk": GOOD_PSK}
    assert plan.other_config == {"ipsec_skb_mark": "0/1"}


def test_plan_json_and_repr_hide_the_psk():
    plan = ipsec_plan.plan_tunnel_ipsec(psk_request(), host())
    assert GOOD_PSK not in repr(plan) and GOOD_PSK not in str(plan.as_json())
    assert plan.as_json()["options"] == {"psk": "<secret>"}


def test_a_psk_left_in_ovsdb_by_an_older_ovsnet_is_not_used_and_the_error_says_how_to_move_it():
    request = ipsec_plan.TunnelIpsecRequest(method="psk")
    with pytest.raises(InvalidInput) as raised:
        ipsec_plan.plan_tunnel_ipsec(request, host({ipsec_keys.LEGACY_PSK_KEY: GOOD_PSK}))
    assert "psk set --file" in raised.value.one_line()
    assert GOOD_PSK not in raised.value.one_line()


def test_psk_tunnel_without_any_psk_is_a_usage_error():
    with pytest.raises(InvalidInput) as raised:
        ipsec_plan.plan_tunnel_ipsec(ipsec_plan.TunnelIpsecRequest(method="psk"), host())
    assert "--psk-file" in raised.value.one_line()


def test_cert_tunnel_gets_remote_name():
    request = ipsec_plan.TunnelIpsecRequest(method="cert", remote_name="node2")
    plan = ipsec_plan.plan_tunnel_ipsec(request, host(CERT_CONFIG))
    assert dict(plan.options) == {"remote_name": "node2"}
    assert plan.other_config == {"ipsec_skb_mark": "0/1"}


def test_cert_tunnel_before_ipsec_cert_is_not_ready():
    request = ipsec_plan.TunnelIpsecRequest(method="cert", remote_name="node2")
    with pytest.raises(NotReady) as raised:
        ipsec_plan.plan_tunnel_ipsec(request, host())
    assert "ovsnet ipsec cert" in raised.value.one_line()


def test_cert_tunnel_needs_a_remote_name():
    with pytest.raises(InvalidInput, match="name"):
        ipsec_plan.plan_tunnel_ipsec(
            ipsec_plan.TunnelIpsecRequest(method="cert"), host(CERT_CONFIG)
        )


@pytest.mark.parametrize("name", ["node2\n    rightid=%any", "a b", "", "node2,O=x", "-x"])
def test_remote_names_that_would_inject_ipsec_conf_lines_are_rejected(name):
    request = ipsec_plan.TunnelIpsecRequest(method="cert", remote_name=name)
    with pytest.raises(InvalidInput):
        ipsec_plan.plan_tunnel_ipsec(request, host(CERT_CONFIG))


def test_psk_on_a_host_with_cert_tunnels_is_refused():
    existing = host(CERT_CONFIG, [("gre-c6336402", "gre", {"remote_name": "node2"})])
    with pytest.raises(InvalidInput) as raised:
        ipsec_plan.plan_tunnel_ipsec(psk_request(), existing)
    assert "one method" in raised.value.one_line() and "gre-c6336402" in raised.value.one_line()


def test_psk_on_a_host_with_certificate_settings_is_refused():
    with pytest.raises(InvalidInput, match="certificate"):
        ipsec_plan.plan_tunnel_ipsec(psk_request(), host(CERT_CONFIG))


def test_cert_on_a_host_with_psk_tunnels_is_refused():
    existing = host(CERT_CONFIG, [("gre-c6336402", "gre", {"psk": GOOD_PSK})])
    request = ipsec_plan.TunnelIpsecRequest(method="cert", remote_name="node3")
    with pytest.raises(InvalidInput) as raised:
        ipsec_plan.plan_tunnel_ipsec(request, existing)
    assert GOOD_PSK not in raised.value.one_line()


def test_re_adding_the_same_tunnel_does_not_conflict_with_itself():
    existing = host({"ipsec_skb_mark": "0/1"}, [("gre-c6336402", "gre", {"remote_name": "node2"})])
    plan = ipsec_plan.plan_tunnel_ipsec(psk_request(), existing, port="gre-c6336402")
    assert dict(plan.options) == {"psk": GOOD_PSK}
    assert plan.other_config == {}  # skb_mark already there


def test_fail_closed_refused_while_plaintext_tunnels_exist():
    existing = host(tunnels=[("gre-c6336402", "gre", {"remote_ip": "198.51.100.2"})])
    with pytest.raises(InvalidInput) as raised:
        ipsec_plan.plan_tunnel_ipsec(psk_request(), existing)
    assert "--allow-plaintext" in raised.value.one_line()


def test_allow_plaintext_leaves_the_mark_alone_and_warns():
    plan = ipsec_plan.plan_tunnel_ipsec(psk_request(require_encryption=False), host())
    assert plan.other_config == {}
    assert any("plaintext" in w for w in plan.warnings)


def test_legacy_ovs_gets_ipsec_gre_without_skb_mark():
    plan = ipsec_plan.plan_tunnel_ipsec(psk_request(), host(version="2.5.2"))
    assert plan.port_type == "ipsec_gre" and plan.other_config == {}
    assert plan.warnings


def test_plaintext_tunnel_on_a_fail_closed_host_is_refused():
    with pytest.raises(InvalidInput) as raised:
        ipsec_checks.check_plaintext_allowed(host({"ipsec_skb_mark": "0/1"}))
    assert "--ipsec" in raised.value.one_line()
    ipsec_checks.check_plaintext_allowed(host())


def test_removing_the_last_ipsec_tunnel_lifts_the_drop():
    existing = host(
        {"ipsec_skb_mark": "0/1"},
        [("gre-1", "gre", {"psk": GOOD_PSK}), ("gre-2", "gre", {"psk": GOOD_PSK})],
    )
    assert ipsec_plan.other_config_after_removal(existing, ["gre-1"]) == {}
    assert ipsec_plan.other_config_after_removal(existing, ["gre-1", "gre-2"]) == {
        "ipsec_skb_mark": None
    }


# --- host-level settings ------------------------------------------------------------------------


def test_host_certificate_sets_the_three_keys_and_only_what_changed():
    paths = ipsec_plan.CertificatePaths(**CERT_CONFIG)
    assert ipsec_plan.plan_host_certificate(paths, host()) == CERT_CONFIG
    assert ipsec_plan.plan_host_certificate(paths, host(CERT_CONFIG)) == {}


def test_host_certificate_refused_while_psk_tunnels_exist():
    existing = host(tunnels=[("gre-1", "gre", {"psk": GOOD_PSK})])
    with pytest.raises(InvalidInput, match="PSK"):
        ipsec_plan.plan_host_certificate(ipsec_plan.CertificatePaths(**CERT_CONFIG), existing)


def test_host_certificate_paths_must_be_safe_for_ipsec_conf():
    paths = ipsec_plan.CertificatePaths("relative.pem", "/k.pem", "/ca.pem")
    with pytest.raises(InvalidInput, match="absolute"):
        ipsec_plan.plan_host_certificate(paths, host())


def test_unset_certificate_refused_while_cert_tunnels_use_it():
    existing = host(CERT_CONFIG, [("gre-1", "gre", {"remote_name": "node2"})])
    with pytest.raises(InvalidInput):
        ipsec_plan.plan_host_certificate(None, existing)
    assert ipsec_plan.plan_host_certificate(None, host(CERT_CONFIG)) == dict.fromkeys(
        ipsec_keys.CERT_KEYS
    )


def test_host_psk_set_stores_the_file_path_never_the_psk():
    path, key = "/etc/ovsnet/psk", ipsec_keys.PSK_FILE_KEY
    assert ipsec_plan.plan_host_psk(path, host()) == {key: path}
    assert ipsec_plan.plan_host_psk(path, host({key: path})) == {}
    assert ipsec_plan.plan_host_psk(None, host({key: path})) == {key: None}
    # The copy an older ovsnet kept in OVSDB goes on set and on unset.
    legacy = host({ipsec_keys.LEGACY_PSK_KEY: GOOD_PSK})
    assert ipsec_plan.plan_host_psk(path, legacy) == {key: path, ipsec_keys.LEGACY_PSK_KEY: None}
    assert ipsec_plan.plan_host_psk(None, legacy) == {ipsec_keys.LEGACY_PSK_KEY: None}
    with pytest.raises(InvalidInput):
        ipsec_plan.plan_host_psk(path, host(tunnels=[("gre-1", "gre", {"remote_name": "n"})]))


def test_plaintext_drop_refused_with_plaintext_tunnels_and_allow_removes_the_mark():
    with pytest.raises(InvalidInput):
        ipsec_plan.plan_plaintext_policy(False, host(tunnels=[("gre-1", "gre", {})]))
    assert ipsec_plan.plan_plaintext_policy(False, host()) == {"ipsec_skb_mark": "0/1"}
    assert ipsec_plan.plan_plaintext_policy(True, host({"ipsec_skb_mark": "0/1"})) == {
        "ipsec_skb_mark": None
    }


def test_observed_host_repr_hides_the_stored_psk():
    stored = host({ipsec_keys.LEGACY_PSK_KEY: GOOD_PSK}, [("g", "gre", {"psk": GOOD_PSK})])
    assert GOOD_PSK not in repr(stored)


# --- tunnels/show, formatted by OVS's own ovs-monitor-ipsec -----------------------------------

OVS_MONITOR_IPSEC = "/usr/share/openvswitch/scripts/ovs-monitor-ipsec"


@pytest.fixture(scope="module")
def monitor_script():
    """ovs-monitor-ipsec loaded as a module (its main() runs only as a script)."""
    loader = importlib.machinery.SourceFileLoader("ovs_monitor_ipsec", OVS_MONITOR_IPSEC)
    spec = importlib.util.spec_from_loader("ovs_monitor_ipsec", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def _show(module, name, options, pki=None, conns=None, policies=None, securities=None) -> str:
    """What ovs-monitor-ipsec's tunnels/show prints for one tunnel, by its own code."""
    pki = pki or {}
    module.monitor = types.SimpleNamespace(
        conf={
            "pki": {
                "certificate": pki.get("certificate"),
                "private_key": pki.get("private_key"),
                "ca_cert": pki.get("ca_cert"),
                "local_name": pki.get("local_name"),
            },
            "skb_mark": pki.get("skb_mark"),
        },
        _get_cn_from_cert=lambda cert: "peer",
    )
    row = types.SimpleNamespace(options=options, type="gre", cfm_fault=[], ofport=[3])
    tunnel = module.IPsecTunnel(name, row)
    return tunnel.show(policies or {}, securities or {}, conns or {})


@settings(max_examples=60, deadline=None)
@given(
    st.from_regex(r"gre-[0-9a-f]{8}", fullmatch=True),
    st.text(alphabet=PSK_ALPHABET, min_size=32, max_size=64),
)
def test_parsed_psk_tunnel_matches_and_never_holds_the_psk(monitor_script, name, psk):
    text = _show(
        monitor_script, name, {"remote_ip": "198.51.100.2", "psk": psk}, {"skb_mark": "0/1"}
    )
    assert psk in text  # OVS itself prints the PSK: ovsnet must never show the raw reply
    (tunnel,) = tunnels_show.parse_tunnels_show(text)
    assert (tunnel.name, tunnel.version, tunnel.state) == (name, 1, "CONFIGURED")
    assert tunnel.config["Remote IP"] == "198.51.100.2"
    assert tunnel.config["SKB mark"] == "0/1"
    assert tunnel.config["PSK"] == "<secret>"
    assert psk not in repr(tunnel) and psk not in str(tunnel.as_json())
    assert tunnel.summary() == "configured but not established"


def test_parsed_invalid_tunnel_keeps_the_reason(monitor_script):
    # PSK together with a certificate: ovs-monitor-ipsec drops the tunnel's IPsec (fail-open).
    text = _show(
        monitor_script,
        "gre-c6336402",
        {"remote_ip": "198.51.100.2", "psk": GOOD_PSK},
        {"certificate": "/c.pem", "private_key": "/k.pem"},
    )
    (tunnel,) = tunnels_show.parse_tunnels_show(text)
    assert tunnel.state == "INVALID"
    assert tunnel.invalid_reason.startswith("'certificate', 'private_key'")
    assert tunnel.summary().startswith("invalid: ")


def _active(port: str, *lines: str) -> dict:
    """`ipsec status` lines as ovs-monitor-ipsec's get_active_conns() keys them."""
    return {port: {line.split(":")[0]: line for line in lines}}


def _cert_tunnel(module, name, remote, local_name, **state) -> tunnels_show.MonitorTunnel:
    """One certificate tunnel to `remote` (address, name), as ovsnet parses OVS's tunnels/show."""
    options = {"remote_ip": remote[0], "remote_name": remote[1]}
    text = _show(module, name, options, {**CERT_CONFIG, "local_name": local_name}, **state)
    (tunnel,) = tunnels_show.parse_tunnels_show(text)
    return tunnel


def _esp_listing(*sas: tuple[str, str, str]) -> list:
    """The kernel's ESP SAs (src, dst, spi) as `ip xfrm state list proto esp nokeys` prints
    them in the VMs, parsed."""
    from ovsnet.ipsec.xfrm_states import parse_esp_states

    text = "".join(
        f"src {src} dst {dst}\n\tproto esp spi {spi} reqid 1 mode transport\n"
        f"\treplay-window 0 seq 0x00000000 flag  (0x00000000)\n"
        f"\tsel src {src}/32 dst {dst}/32 proto gre\n"
        for src, dst, spi in sas
    )
    return parse_esp_states(text)


LOCAL, REMOTE = "198.51.100.1", "198.51.100.2"
# `ipsec status` of an established pair: ovs-monitor-ipsec keys its lines by connection name,
# so of a CHILD_SA's two lines only the last (the selectors) reaches tunnels/show.
ESTABLISHED_PAIR = _active(
    "gre-c6336402",
    f"gre-c6336402-1[1]: ESTABLISHED 2 seconds ago, {LOCAL}[node1]...{REMOTE}[node2]",
    "gre-c6336402-1{1}:  INSTALLED, TRANSPORT, reqid 1, ESP SPIs: c1234567_i c7654321_o",
    f"gre-c6336402-1{{1}}:   {LOCAL}/32[gre] === {REMOTE}/32[gre]",
)
SELECTOR = f"sel src {LOCAL}/32 dst {REMOTE}/32 proto gre"


def test_parsed_cert_tunnel_with_strongswan_connections(monitor_script):
    policies = {REMOTE: [f"src {LOCAL}/32 dst {REMOTE}/32 proto gre"]}
    text = _show(monitor_script, "gre-c6336402",
                 {"remote_ip": REMOTE, "remote_name": "node2"},
                 {**CERT_CONFIG, "local_name": "node1"},
                 conns=ESTABLISHED_PAIR, policies=policies)  # fmt: skip
    other_peer = (LOCAL, "198.51.100.9", "0xc9")
    kernel = _esp_listing((LOCAL, REMOTE, "0xc7654321"), (REMOTE, LOCAL, "0xc1234567"), other_peer)
    (tunnel,) = tunnels_show.parse_tunnels_show(text, kernel)
    assert tunnel.config["Remote name"] == "node2"
    assert tunnel.config["Local name"] == "node1"
    assert tunnel.policies == (f"src {LOCAL}/32 dst {REMOTE}/32 proto gre",)
    assert len(tunnel.kernel_sas) == 2  # the SA with another peer is not this tunnel's
    assert tunnel.ike_established and tunnel.child_installed
    assert tunnel.summary() == "established"
    assert tunnel.as_json()["kernel_sas"][0] == {"src": LOCAL, "dst": REMOTE, "spi": "0xc7654321"}


def test_larval_states_and_charons_word_are_not_installed_sas(monitor_script):
    """What a clean-clone CI run showed for a rogue peer reported "established": charon still
    held an IKE SA (and its CHILD_SA) left from before `peer remove`, whose kernel SAs were
    deleted; the kernel had only larval acquire states (SPI 0), whose selectors the monitor
    lists as "security associations installed". Only keyed SAs both ways count."""
    text = _show(monitor_script, "gre-c6336402", {"remote_ip": REMOTE, "psk": GOOD_PSK},
                 conns=ESTABLISHED_PAIR, securities={REMOTE: [SELECTOR, SELECTOR]})  # fmt: skip

    def summary(*sas):
        (tunnel,) = tunnels_show.parse_tunnels_show(text, _esp_listing(*sas))
        return tunnel.summary()

    larval = [(LOCAL, REMOTE, "0x00000000"), (REMOTE, LOCAL, "0x00000000")]
    assert summary(*larval) == "IKE up, no IPsec SA installed"
    assert summary() == "IKE up, no IPsec SA installed"
    assert summary(*larval, (LOCAL, REMOTE, "0xc7654321")) == "IKE up, no IPsec SA installed"
    assert summary(*larval, (LOCAL, REMOTE, "0xc7"), (REMOTE, LOCAL, "0xc1")) == "established"


def test_an_established_pair_is_only_established_while_bfd_is_up_or_absent(monitor_script):
    text = _show(monitor_script, "gre-c6336402", {"remote_ip": REMOTE, "psk": GOOD_PSK},
                 conns=ESTABLISHED_PAIR)  # fmt: skip
    keyed = _esp_listing((LOCAL, REMOTE, "0xc7"), (REMOTE, LOCAL, "0xc1"))
    (tunnel,) = tunnels_show.parse_tunnels_show(text, keyed)
    assert tunnel.summary() == tunnel.summary("up") == "established"
    assert tunnel.summary("down") == (
        "established, but BFD is down: packets do not cross both ways"
    )
    (unkeyed,) = tunnels_show.parse_tunnels_show(text)
    assert unkeyed.summary("up") == "IKE up, no IPsec SA installed"


def test_ike_without_child_sa_is_reported_as_such(monitor_script):
    conns = {"gre-1": {"gre-1-1[1]": "gre-1-1[1]: ESTABLISHED 2 seconds ago, a[n1]...b[n2]"}}
    text = _show(
        monitor_script, "gre-1", {"remote_ip": "198.51.100.2", "psk": GOOD_PSK}, conns=conns
    )
    (tunnel,) = tunnels_show.parse_tunnels_show(text)
    assert tunnel.summary() == "IKE up, no IPsec SA installed"


def test_an_ike_sa_of_an_earlier_configuration_does_not_count(monitor_script):
    """The tunnel is at v1 (re-created with certificates); only its v2 PSK IKE SA from before
    is up. That pair is not established under the configuration it has now: the healer must
    repair it, not leave it (seen in the VM lab's certificate switch)."""
    conns = _active(
        "gre-c633640d",
        "gre-c633640d-2[29]: ESTABLISHED 4 minutes ago, 198.51.100.11[198.51.100.11]..."
        "198.51.100.13[198.51.100.13]",
        "gre-c633640d-1{43}:   198.51.100.11/32[gre] === 198.51.100.13/32[gre]",
    )
    securities = {"198.51.100.13": ["src 198.51.100.11 dst 198.51.100.13 proto esp spi 0xc9913da6"]}
    tunnel = _cert_tunnel(monitor_script, "gre-c633640d", ("198.51.100.13", "vm3"), "vm1",
                          conns=conns, securities=securities)  # fmt: skip
    assert tunnel.version == 1
    assert not tunnel.ike_established and tunnel.outdated_ike
    assert tunnel.summary().startswith("configured but not established")
    assert "earlier configuration" in tunnel.summary()
    assert tunnel.idle  # nothing under way for the current connection: the healer initiates it


def test_idle_means_no_ike_sa_of_the_current_connection_up_or_under_way(monitor_script):
    """What a host back from a restart showed: "0 up, 0 connecting" for its peers, while the
    kernel held larval acquire states only. Then and only then the healer initiates."""
    connecting = _active("gre-c6336402", "gre-c6336402-1[3]: CONNECTING, 198.51.100.1[%any]..."
                         "198.51.100.2[%any]")  # fmt: skip

    def tunnel(conns):
        text = _show(monitor_script, "gre-c6336402", {"remote_ip": REMOTE, "psk": GOOD_PSK},
                     conns=conns)  # fmt: skip
        (parsed,) = tunnels_show.parse_tunnels_show(text)
        return parsed

    assert tunnel({}).idle
    assert not tunnel(connecting).idle and tunnel(connecting).summary() == "configured, negotiating"
    assert not tunnel(ESTABLISHED_PAIR).idle  # IKE up, whatever its CHILD_SA


def test_several_tunnels_and_the_empty_reply():
    assert tunnels_show.parse_tunnels_show("No tunnels configured with IPsec") == []
    text = (
        "Interface name: gre-1 v2 (CONFIGURED)\n  Remote IP:      198.51.100.2\n"
        "Kernel policies installed:\nKernel security associations installed:\n"
        "IPsec connections that are active:\n\n"
        "Interface name: gre-2 v1 (INVALID: must choose a authentication method)\n"
        "  Remote IP:      198.51.100.3\n"
    )
    first, second = tunnels_show.parse_tunnels_show(text)
    assert (first.name, first.version, first.state) == ("gre-1", 2, "CONFIGURED")
    assert second.invalid_reason == "must choose a authentication method"


def test_reset_removes_ovsnets_ipsec_settings_that_no_remaining_tunnel_needs():
    everything = {
        **CERT_CONFIG,
        ipsec_keys.SKB_MARK_KEY: "0/1",
        ipsec_keys.PSK_FILE_KEY: "/etc/ovsnet/psk",
        ipsec_keys.LEGACY_PSK_KEY: GOOD_PSK,
        "other-tool": "x",
    }
    assert ipsec_plan.settings_after_reset(host(everything)) == dict.fromkeys(
        [
            *ipsec_keys.CERT_KEYS,
            ipsec_keys.SKB_MARK_KEY,
            ipsec_keys.PSK_FILE_KEY,
            ipsec_keys.LEGACY_PSK_KEY,
        ]
    )
    # A certificate tunnel on a bridge reset does not touch keeps what it needs.
    kept = host(everything, [("gre-x", "gre", {"remote_ip": "198.51.100.9", "remote_name": "n"})])
    assert ipsec_plan.settings_after_reset(kept) == dict.fromkeys(
        [ipsec_keys.PSK_FILE_KEY, ipsec_keys.LEGACY_PSK_KEY]
    )
    assert ipsec_plan.settings_after_reset(host()) == {}
