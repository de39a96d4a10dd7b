"""Scenarios 2 and 3 of the real-kernel lab (issue 8): IPsec on Debian's own kernel.

The GRE mesh of scenario 1 (test_kernel_lab.py) is switched to IPsec, driven by ovsnet:
ovs-monitor-ipsec + strongSwan negotiate IKEv2 and the kernel puts ESP on the underlay. tcpdump
in the lab's namespace proves what crosses the wire once the SAs are up: ESP only, no plain GRE
and no container ICMP readable inside. (Fail-closed with the IKE daemon down and certificates
are not covered here yet: stopping charon was seen to put plain GRE with inner ICMP on the wire.)

Runs after test_kernel_lab.py in the same VMs, or alone: the module brings the plain mesh up
itself when it is missing, and leaves a plain GRE mesh behind.
"""

from __future__ import annotations

import itertools
import json
import secrets
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from test_kernel_lab import CONTAINER, _bring_up_host

from ovsnet.vmlab import guest

pytestmark = pytest.mark.vm

PSK_PATH = "/etc/ovsnet/ipsec.psk"
IKE_TIMEOUT = 90  # IKE takes 1-3 s under emulation; ovs-monitor-ipsec reacts within seconds


def _others(vm, vms) -> list:
    return [peer for peer in vms if peer is not vm]


def _peer_ips(vm, vms) -> str:
    return " ".join(peer.underlay_ip for peer in _others(vm, vms))


def _in_parallel(vms, action) -> None:
    with ThreadPoolExecutor(max_workers=len(vms)) as pool:
        list(pool.map(action, vms))


def _host_is_up(vm) -> bool:
    """Scenario 1 already ran here: bridge, Docker and ovsnet are in place."""
    proc = vm.ssh("ovs-vsctl br-exists br0 && docker info --format '{{.ID}}' >/dev/null "
                  "&& ovsnet --json status >/dev/null")  # fmt: skip
    return proc.returncode == 0


def _ensure_ipsec_monitor(vm) -> None:
    # A restart: whatever an earlier run left in strongSwan does not leak into this one.
    vm.ssh("systemctl restart openvswitch-ipsec", check=True, timeout=120)
    guest.wait_until(lambda: vm.ssh("systemctl is-active --quiet openvswitch-ipsec")
                     .returncode == 0, 60, f"ovs-monitor-ipsec on {vm.name}")  # fmt: skip


def _set_peers(vm, vms, options: str = "") -> None:
    """Replace every tunnel of `vm` by one with `options` (plain GRE when empty)."""
    ips = _peer_ips(vm, vms)
    vm.ssh(f"ovsnet peer remove {ips}", check=True, timeout=120)
    vm.ssh(f"ovsnet peer add {ips} {options}", check=True, timeout=120)


def _restore_plain_mesh(vms) -> None:
    def restore(vm):
        vm.ssh(f"ovsnet peer remove {_peer_ips(vm, vms)}", check=True, timeout=120)
        vm.ssh("ovsnet ipsec cert --unset", timeout=120)
        vm.ssh(f"ovsnet peer add {_peer_ips(vm, vms)}", check=True, timeout=120)

    _in_parallel(vms, restore)


@pytest.fixture(scope="module")
def overlay(vmlab, measurements):
    """Plain GRE mesh with one container per VM (from scenario 1 or made here): {vm: IP}."""
    started = time.monotonic()
    missing = [vm for vm in vmlab.vms if not _host_is_up(vm)]
    if missing:
        _in_parallel(missing, lambda vm: _bring_up_host(vm, vmlab.vms))
    _in_parallel(vmlab.vms, _ensure_ipsec_monitor)
    ips = {vm.name: guest.run_container(vm, CONTAINER) for vm in vmlab.vms}
    measurements["ipsec_overlay_setup_s"] = round(time.monotonic() - started, 1)
    try:
        yield ips
    finally:
        vmlab.on_all(f"docker rm -f {CONTAINER} >/dev/null 2>&1 || true", check=False)
        _restore_plain_mesh(vmlab.vms)


def _routed_tunnels(vm) -> int:
    return int(vm.ssh("ipsec statusall | grep -c ROUTED").stdout.strip() or 0)


def _load_ipsec_at_once(vms) -> None:
    """Restart strongSwan once ovs-monitor-ipsec has written every tunnel of every host.

    Workaround (DESIGN.md section 2, half-built SAs): ovs-monitor-ipsec adds a connection
    before its PSK/certificate, so a peer that initiates in between fails ("no shared key
    found") and leaves a one-way SA that blocks the pair (seen in this lab). A restart loads
    connections and secrets together. ovsnet should detect or repair this itself.
    """
    for vm in vms:
        guest.wait_until(lambda vm=vm: _routed_tunnels(vm) >= len(vms) - 1, IKE_TIMEOUT,
                         f"ovs-monitor-ipsec to load every tunnel on {vm.name}")  # fmt: skip
    restart = "ipsec stop >/dev/null; ip xfrm state flush; ipsec start >/dev/null"
    _in_parallel(vms, lambda vm: vm.ssh(restart, check=True, timeout=120))


def _xfrm_esp_states(vm, peer, kernel=None) -> int:
    """ESP SAs from vm to peer in the kernel of `kernel` (default: vm's)."""
    out = (kernel or vm).ssh(f"ip xfrm state list src {vm.underlay_ip} "
                             f"dst {peer.underlay_ip} proto esp", check=True).stdout  # fmt: skip
    return out.count("proto esp")


def _wait_for_sas(vms, pairs=None) -> float:
    started = time.monotonic()
    for a, b in pairs or itertools.permutations(vms, 2):
        guest.wait_until(lambda a=a, b=b: _xfrm_esp_states(a, b) and _xfrm_esp_states(b, a, a),
                         IKE_TIMEOUT,
                         f"ESP SA {a.name} -> {b.name}")  # fmt: skip
    return round(time.monotonic() - started, 1)


def _ping_ok(src, dst_ip, count: int = 1) -> bool:
    return guest.container_ping(src, CONTAINER, dst_ip, count=count).received == count


def _ping_all_pairs(vms, ips, count: int = 5) -> None:
    for src, dst in itertools.permutations(vms, 2):
        guest.wait_until(lambda src=src, dst=dst: _ping_ok(src, ips[dst.name]), IKE_TIMEOUT,
                         f"first ping {src.name} -> {dst.name} over IPsec")  # fmt: skip
        result = guest.container_ping(src, CONTAINER, ips[dst.name], count=count)
        assert result.loss == 0, f"{src.name} -> {dst.name}:\n{result.output}"


def _assert_only_esp_between(counts, a, b) -> None:
    pair = f"{a.name}<->{b.name}"
    assert counts.between(a.underlay_ip, b.underlay_ip, "esp") > 0, (pair, counts.as_dict())
    assert counts.between(a.underlay_ip, b.underlay_ip, "gre") == 0, (pair, counts.as_dict())


def _ipsec_states(vm) -> dict[str, str]:
    status = json.loads(vm.ssh("ovsnet --json status", timeout=120).stdout)
    return {peer["remote_ip"]: peer.get("ipsec_state") for peer in status["peers"]}


def _write_psk(vm, psk: str) -> None:
    vm.ssh(f"mkdir -p /etc/ovsnet && umask 077 && cat > {PSK_PATH}", input=psk, check=True)


@pytest.fixture(scope="module")
def psk_mesh(vmlab, overlay, measurements):
    """Every tunnel switched to IPsec with one PSK (fail closed, the default)."""
    psk = secrets.token_urlsafe(36)  # 48 characters
    _in_parallel(vmlab.vms, lambda vm: _write_psk(vm, psk))
    with vmlab.capture("scenario2-psk-setup") as capture:
        started = time.monotonic()
        _in_parallel(vmlab.vms, lambda vm: _set_peers(
            vm, vmlab.vms, f"--ipsec --psk-file {PSK_PATH}"))  # fmt: skip
        _wait_for_sas(vmlab.vms)
        measurements["scenario2_psk_sas_established_s"] = round(time.monotonic() - started, 1)
        _ping_all_pairs(vmlab.vms, overlay)
    measurements["scenario2_psk_setup_and_ping_packets"] = capture.counts.as_dict()
    print("scenario 2 PSK setup + pings:", capture.counts.as_dict())
    return {"psk": psk, "setup_counts": capture.counts}


def test_psk_mesh_puts_only_ike_and_esp_on_the_underlay(vmlab, overlay, psk_mesh, measurements):
    for vm in vmlab.vms:
        skb_mark = vm.ssh("ovs-vsctl get Open_vSwitch . other_config:ipsec_skb_mark",
                          check=True).stdout.strip()  # fmt: skip
        assert skb_mark.strip('"') == "0/1", (vm.name, skb_mark)
        status = vm.ssh("ovsnet --json status", check=True, timeout=120).stdout
        assert psk_mesh["psk"] not in status, "the PSK must not appear in status output"
    setup = psk_mesh["setup_counts"]
    assert setup["ike"] > 0, setup.as_dict()
    # Setup may show a few plain GRE (BFD) while charon restarts: its DROP shunts go with it.
    assert setup.inner_icmp == 0, setup.as_dict()
    with vmlab.capture("scenario2-psk-ping") as capture:
        _ping_all_pairs(vmlab.vms, overlay, count=10)
    counts = capture.counts
    measurements["scenario2_psk_ping_packets"] = counts.as_dict()
    print("scenario 2 PSK pings:", counts.as_dict())
    for a, b in itertools.combinations(vmlab.vms, 2):
        _assert_only_esp_between(counts, a, b)
    assert counts["esp"] >= 6 * 2 * 10, counts.as_dict()
    assert counts["gre"] == 0 and counts.inner_icmp == 0 and counts["icmp"] == 0, counts.as_dict()
    for vm in vmlab.vms:
        states = _ipsec_states(vm)
        assert set(states.values()) == {"established"}, (vm.name, states)
