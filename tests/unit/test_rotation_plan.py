"""PSK rotation planning (pure): what each stage loads into charon, writes to OVSDB and forgets,
that a stage run twice plans nothing, and that no plan output ever holds a key."""

from __future__ import annotations

import json
import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ovsnet.errors import InvalidInput
from ovsnet.ipsec import keys as ipsec_keys
from ovsnet.ipsec import observed as ipsec_observed
from ovsnet.ipsec import rotation
from ovsnet.ipsec.credentials import Psk
from ovsnet.model import Changes

OLD = Psk("o" * 20 + "Ld/+=" + "1" * 11)
NEW = Psk("n" * 20 + "Ew/+=" + "2" * 11)
NEW_FILE = "/etc/ovsnet/psk.next"
PEERS = {"gre-c6336402": "198.51.100.2", "gre-c6336403": "198.51.100.3"}
PSK_ALPHABET = "".join(c for c in string.printable if c not in ' "\t\n\r\x0b\x0c')


def host(psks: dict[str, Psk], other_config=None) -> ipsec_observed.ObservedHost:
    tunnels = tuple(
        ipsec_observed.ObservedTunnel(port, "gre", {"remote_ip": PEERS[port], "psk": psk.value})
        for port, psk in psks.items()
    )
    config = {ipsec_keys.SKB_MARK_KEY: "0/1", **(other_config or {})}
    return ipsec_observed.ObservedHost("3.1.0", config, tunnels)


def both(psk: Psk) -> dict[str, Psk]:
    return dict.fromkeys(PEERS, psk)


def plan(stage, h, loaded=(), new=NEW):
    return rotation.plan_psk_rotation(stage, new, NEW_FILE, h, loaded)


def applied(h: ipsec_observed.ObservedHost, p: rotation.RotationPlan, loaded: set[str]):
    """The host and charon's key ids once plan p is carried out (what the service does)."""
    tunnels = tuple(
        ipsec_observed.ObservedTunnel(
            t.port, t.type, {**t.options, "psk": p.tunnel_psks[t.port].value}
        )
        if t.port in p.tunnel_psks
        else t
        for t in h.tunnels
    )
    config = {**h.other_config, **p.other_config}
    config = {k: v for k, v in config.items() if v is not None}
    keys = (loaded | {k.key_id for k in p.load}) - set(p.unload)
    return ipsec_observed.ObservedHost(h.ovs_version, config, tunnels), keys


# --- the stages -------------------------------------------------------------------------------


def test_accept_loads_the_new_and_current_key_for_each_peer_and_touches_no_tunnel():
    p = plan("accept", host(both(OLD)))
    loaded = {(k.key_id.split("-")[2], k.remote_ip, k.psk) for k in p.load}
    assert loaded == {(role, ip, psk) for ip in PEERS.values()
                      for role, psk in (("next", NEW), ("previous", OLD))}  # fmt: skip
    assert not p.tunnel_psks and not p.other_config and not p.unload


def test_after_accept_a_switch_has_no_key_left_to_load():
    h = host(both(OLD))
    _, loaded = applied(h, plan("accept", h), set())
    p = plan("switch", h, loaded)
    assert p.load == () and p.tunnel_psks == both(NEW)


def test_accept_again_plans_nothing():
    h = host(both(OLD))
    _, loaded = applied(h, plan("accept", h), set())
    assert plan("accept", h, loaded).steps == ()


def test_accept_forgets_the_next_key_of_an_abandoned_rotation():
    h = host(both(OLD))
    _, loaded = applied(h, plan("accept", h), set())
    other = Psk("z" * 40)
    p = plan("accept", h, loaded, new=other)
    next_ids = {i for i in loaded if i.startswith("ovsnet-psk-next-")}
    assert set(p.unload) == next_ids and len(p.load) == 2  # the current keys stay loaded


def test_switch_writes_the_new_key_and_keeps_accepting_the_old_one():
    h = host(both(OLD))
    p = plan("switch", h)
    assert p.tunnel_psks == both(NEW)
    assert {(k.remote_ip, k.psk) for k in p.load} == {(ip, OLD) for ip in PEERS.values()}
    assert all(k.key_id.startswith("ovsnet-psk-previous-") for k in p.load)
    assert p.other_config == {ipsec_keys.PSK_FILE_KEY: NEW_FILE}


def test_switch_removes_a_psk_an_older_ovsnet_kept_in_ovsdb():
    p = plan("switch", host(both(OLD), {ipsec_keys.LEGACY_PSK_KEY: OLD.value}))
    assert p.other_config[ipsec_keys.LEGACY_PSK_KEY] is None


def test_switch_of_one_tunnel_already_on_the_new_key_only_switches_the_other():
    h = host({"gre-c6336402": NEW, "gre-c6336403": OLD})
    p = plan("switch", h)
    assert list(p.tunnel_psks) == ["gre-c6336403"]
    assert [k.remote_ip for k in p.load] == ["198.51.100.3"]


def test_finish_refuses_while_a_tunnel_has_the_old_key():
    with pytest.raises(InvalidInput, match="gre-c6336402.*do not use the new PSK yet"):
        plan("finish", host({"gre-c6336402": OLD, "gre-c6336403": NEW}))


def test_finish_forgets_ovsnets_keys_and_no_one_elses():
    h = host(both(NEW))
    loaded = {"ovsnet-psk-previous-198.51.100.2-abc", "site-vpn-key"}
    assert plan("finish", h, loaded).unload == ("ovsnet-psk-previous-198.51.100.2-abc",)


def test_a_host_with_certificate_tunnels_is_refused():
    cert = ipsec_observed.ObservedHost(
        "3.1.0",
        {},
        (ipsec_observed.ObservedTunnel("gre-c6336402", "gre", {"remote_name": "h2"}),),
    )
    with pytest.raises(InvalidInput, match="certificates"):
        plan("switch", cert)


@pytest.mark.parametrize("stage", ["", "Accept", "rollback"])
def test_unknown_stages_are_refused(stage):
    with pytest.raises(InvalidInput, match="unknown rotation stage"):
        plan(stage, host(both(OLD)))


def test_a_relative_key_file_is_refused():
    with pytest.raises(InvalidInput, match="absolute"):
        rotation.plan_psk_rotation("switch", NEW, "psk.next", host(both(OLD)), ())


def test_a_psk_change_is_a_secret_for_ovsdb_transport():
    assert Changes(tunnel_options={"gre-c6336402": {"psk": NEW.value}}).carries_secret
    assert Changes(tunnel_options={"gre-c6336402": {"psk": NEW.value}})


def test_key_ids_name_the_role_and_peer_and_differ_per_key():
    assert rotation.key_id("next", "198.51.100.2", NEW) != rotation.key_id(
        "next", "198.51.100.2", OLD
    )
    assert rotation.key_id("next", "198.51.100.2", NEW).startswith("ovsnet-psk-next-198.51.100.2-")


# --- properties -------------------------------------------------------------------------------

psks = st.text(alphabet=PSK_ALPHABET, min_size=32, max_size=64).map(Psk)


@settings(max_examples=150)
@given(old=psks, new=psks, switched=st.sets(st.sampled_from(sorted(PEERS))))
def test_the_three_stages_converge_and_never_show_a_key(old, new, switched):
    """For every pair of keys and any tunnels already switched: each stage, run twice, plans
    nothing the second time; after finish every tunnel has the new key and ovsnet holds no
    extra key; no step, JSON or repr holds either key (a PSK has no space and 32 or more
    characters, and no output here has such a run of another key's characters)."""
    h = host({port: (new if port in switched else old) for port in PEERS})
    loaded: set[str] = set()
    for stage in rotation.STAGES:
        p = rotation.plan_psk_rotation(stage, new, NEW_FILE, h, loaded)
        shown = "\n".join(p.steps) + json.dumps(p.as_json()) + repr(p)
        for secret in {old.value, new.value}:
            assert secret not in shown
        h, loaded = applied(h, p, loaded)
        assert rotation.plan_psk_rotation(stage, new, NEW_FILE, h, loaded).steps == ()
    assert {t.options["psk"] for t in h.tunnels} == {new.value}
    assert loaded == set()
    assert h.other_config[ipsec_keys.PSK_FILE_KEY] == NEW_FILE


# --- certificate renewal: what charon authenticates with -----------------------------------------

LISTCERTS = """
List of X.509 End Entity Certificates

  subject:  "O=ovsnet, CN=h1"
  issuer:   "O=ovsnet, OU=ike, CN=ovsnet ike CA"
  serial:    51:e1:63:e2
  pubkey:    RSA 3072 bits
  subject:  "O=ovsnet, CN=h2"
  issuer:   "O=ovsnet, OU=ike, CN=ovsnet ike CA"
  serial:    68:e6:b5:55
  pubkey:    RSA 3072 bits
  subject:  "O=ovsnet, CN=h2"
  serial:    00:84:e6:d7
  pubkey:    RSA 3072 bits, has private key
"""


def test_own_certificates_are_those_charon_holds_a_private_key_for():
    # Seen in the lab after a renewal in place and `ipsec reload`: the peer's certificate, the
    # old own one (key gone) and the renewed one (with its key).
    from ovsnet.strongswan import parse_own_certificate_serials

    assert parse_own_certificate_serials(LISTCERTS) == {0x84E6D7}
    assert parse_own_certificate_serials("") == set()


def test_without_charons_vici_socket_rotation_is_not_ready(tmp_path):
    # A host without strongswan-swanctl (or with charon stopped): exit 3 with the hint.
    from ovsnet import vici_keys
    from ovsnet.errors import NotReady

    with pytest.raises(NotReady, match="vici socket") as raised:
        vici_keys.loaded_key_ids(str(tmp_path / "charon.vici"))
    assert "strongswan-swanctl" in (raised.value.hint or "")
