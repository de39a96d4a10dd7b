"""No re-statement of peers weakens an existing tunnel without --allow-downgrade (pure plans)."""

from __future__ import annotations

from dataclasses import replace
from ipaddress import IPv4Address

import pytest

from ovsnet.errors import InvalidInput
from ovsnet.ipsec import checks as ipsec_checks
from ovsnet.model import ObservedBridge, ObservedPort, TunnelSpec
from ovsnet.plan import plan_peers
from ovsnet.services.peers import transitions
from ovsnet.tunnels import port_name

PSK = "Zq8Vw2Lm5Xc7Rb3Tn9Wk4Yd6Hf1Gj0Ps"
PEER = "198.51.100.2"


def initialised_bridge(tunnels) -> ObservedBridge:
    ports = {"br0": ObservedPort("br0", "internal", mtu_request=1400, ofport=65534)}
    for t in tunnels:
        ports[t.port] = ObservedPort(
            t.port, t.type, t.options, t.external_ids, protected=True, bfd=dict(t.bfd), ofport=1
        )
    return ObservedBridge("br0", "netdev", {}, ports)


def spec(ip=PEER, kind="gre", **options) -> TunnelSpec:
    address = IPv4Address(ip)
    return TunnelSpec(address, port_name(address, kind), kind, tuple(options.items()))


def check(existing: TunnelSpec, wanted: TunnelSpec, allow=False, exact=False) -> None:
    bridge = initialised_bridge([existing])
    plan = plan_peers(bridge, [wanted], exact=exact)
    ipsec_checks.check_no_downgrade(transitions(plan, bridge), allow)


@pytest.mark.parametrize("exact", [False, True], ids=["peer add", "peer sync"])
@pytest.mark.parametrize(
    "existing",
    [spec(psk=PSK), spec(remote_name="host-b"), spec(kind="vxlan", psk=PSK)],
    ids=["psk", "cert", "vxlan psk"],
)
def test_ipsec_to_plaintext_is_refused_without_the_flag(existing, exact):
    with pytest.raises(InvalidInput) as refused:
        check(existing, spec(), exact=exact)  # also a type change (vxlan -> gre)
    assert "into plaintext" in refused.value.message and PEER in refused.value.message
    assert "--allow-downgrade" in refused.value.hint
    assert PSK not in refused.value.one_line()
    check(existing, spec(), allow=True, exact=exact)


def test_certificate_to_psk_is_refused_without_the_flag():
    with pytest.raises(InvalidInput, match="from certificate to pre-shared key"):
        check(spec(remote_name="host-b"), spec(psk=PSK))
    check(spec(remote_name="host-b"), spec(psk=PSK), allow=True)


@pytest.mark.parametrize(
    "existing, wanted",
    [
        (spec(), spec()),  # plain stays plain
        (spec(), spec(psk=PSK)),  # an upgrade
        (spec(psk=PSK), spec(psk=PSK + "x")),  # PSK rotation
        (spec(psk=PSK), spec(remote_name="host-b")),  # PSK to certificates
        (spec(remote_name="host-b"), spec(remote_name="host-c")),
    ],
)
def test_what_does_not_weaken_a_tunnel_passes(existing, wanted):
    check(existing, wanted)


def test_removing_an_ipsec_peer_is_not_a_downgrade():
    bridge = initialised_bridge([spec(psk=PSK), spec("198.51.100.3", psk=PSK)])
    plan = plan_peers(bridge, [spec("198.51.100.3", psk=PSK)], exact=True)
    assert plan.removed == [PEER]
    ipsec_checks.check_no_downgrade(transitions(plan, bridge), allow=False)


def test_new_plaintext_peers_next_to_ipsec_ones_are_not_downgrades():
    bridge = initialised_bridge([spec(psk=PSK)])
    plan = plan_peers(bridge, [replace(spec("198.51.100.3"))])
    assert transitions(plan, bridge) == []
