"""Key and certificate rotation on the real-kernel 3-host IPsec mesh, under traffic.

- PSK rotation: `ovsnet ipsec rotate-psk` in its three stages (accept on every VM, switch VM by
  VM, finish on every VM) while every pair of containers pings each other every 0.2 s.
- Certificate renewal: the mesh switched to ovsnet CA certificates, then every VM's
  certificate renewed in place (`pki renew`, same paths) and `ovsnet ipsec cert` run again.

For both, tcpdump on the underlay holds no GRE and no readable container ICMP, and the longest
run of lost echoes per pair (the pair's interruption) is written to `measurements`.

Runs alone or after the other VM modules: the fixtures of test_vm_ipsec.py bring up the
overlay and the PSK mesh; the module leaves a plain GRE mesh behind.
"""

# ruff: noqa: F401, F811 - overlay and psk_mesh, imported from test_vm_ipsec, are fixtures
from __future__ import annotations

import itertools
import json
import re
import secrets
import time

import pytest
from test_kernel_lab import CONTAINER
from test_vm_ipsec import (
    PKI_VM_DIR,
    _in_parallel,
    _install_certificate,
    _issue_certificates,
    _ping_all_pairs,
    _remove_all_peers,
    _switch_to_certificates,
    _wait_for_sas,
    overlay,
    psk_mesh,
)

from ovsnet.strongswan import parse_own_certificate_serials

pytestmark = pytest.mark.vm

NEW_PSK_PATH = "/etc/ovsnet/ipsec.psk.next"
INTERVAL = 0.2  # seconds between echoes
MAX_ECHOES = 3000  # 10 minutes at INTERVAL: the pings are stopped long before
# A pair must be back within this: one IKE exchange per switch under emulation (1-3 s), and room
# for the healer's grace (60 s) if a negotiation gets stuck (docs/facts.md, all-at-once bring-up).
INTERRUPTION_BOUND_S = 90


def _pairs(vms):
    return list(itertools.combinations(vms, 2))


def _ping_file(dst) -> str:
    return f"/tmp/rotation-ping-{dst.name}"


def _start_pings(vms, overlay) -> None:
    """In each container, one ping per other host, detached; its PID (the shell's, which
    execs ping) in a file beside its output."""
    for src, dst in itertools.permutations(vms, 2):
        out = _ping_file(dst)
        script = (f"echo $$ > {out}.pid; exec ping -i {INTERVAL} -c {MAX_ECHOES} -W 1 "
                  f"{overlay[dst.name]} > {out} 2>&1")  # fmt: skip
        src.ssh(f"docker exec -d {CONTAINER} sh -c '{script}'", check=True, timeout=60)


def _stop_pings(vms) -> dict[tuple[str, str], str]:
    """Stop them by PID (ping prints its summary on SIGINT); their outputs."""
    outputs = {}
    for src, dst in itertools.permutations(vms, 2):
        out = _ping_file(dst)
        src.ssh(f"docker exec {CONTAINER} sh -c 'kill -INT $(cat {out}.pid)'", timeout=60)
    time.sleep(1)
    for src, dst in itertools.permutations(vms, 2):
        out = _ping_file(dst)
        outputs[(src.name, dst.name)] = src.ssh(
            f"docker exec {CONTAINER} sh -c 'cat {out}; rm -f {out} {out}.pid'", timeout=60
        ).stdout
    return outputs


def longest_gap(output: str) -> tuple[int, int, int]:
    """(echoes sent, answered, longest run of unanswered) from busybox ping's output."""
    answered = sorted({int(m) for m in re.findall(r"seq=(\d+)", output)})
    sent_match = re.search(r"(\d+) packets transmitted", output)
    sent = int(sent_match.group(1)) if sent_match else (answered[-1] + 1 if answered else 0)
    gap, previous = 0, -1
    for seq in [*answered, sent]:
        gap = max(gap, seq - previous - 1)
        previous = seq
    return sent, len(answered), gap


def _interruptions(outputs, measurements, name: str) -> dict[str, float]:
    """Per unordered pair: the longer of its two directions' longest gaps, in seconds."""
    per_pair: dict[str, float] = {}
    lost: dict[str, int] = {}
    for (src, dst), output in outputs.items():
        sent, answered, gap = longest_gap(output)
        assert sent > 0 and answered > 0, f"{src} -> {dst}: no echo at all\n{output[-2000:]}"
        key = "<->".join(sorted((src, dst)))
        per_pair[key] = max(per_pair.get(key, 0.0), round(gap * INTERVAL, 1))
        lost[f"{src}->{dst}"] = sent - answered
    measurements[f"{name}_ping_interruption_s_per_pair"] = per_pair
    measurements[f"{name}_ping_lost_echoes"] = lost
    print(f"{name}: longest ping interruption per pair (s):", per_pair, "lost echoes:", lost)
    return per_pair


def _assert_no_plaintext(capture, vms) -> None:
    counts = capture.counts
    assert counts["gre"] == 0 and counts.inner_icmp == 0, counts.explain()
    for a, b in _pairs(vms):
        assert counts.between(a.underlay_ip, b.underlay_ip, "esp") > 0, counts.explain()


def _rotate(vm, stage: str) -> None:
    done = vm.ssh(f"ovsnet --json ipsec rotate-psk --stage {stage} --psk-file {NEW_PSK_PATH}",
                  check=True, timeout=180)  # fmt: skip
    assert json.loads(done.stdout)["changed"] is True, (vm.name, stage, done.stdout)


def test_psk_rotation_under_traffic_sends_no_plaintext(vmlab, overlay, psk_mesh, measurements):
    vms = vmlab.vms
    new_psk = secrets.token_urlsafe(36)
    _in_parallel(vms, lambda vm: vm.ssh(f"umask 077 && cat > {NEW_PSK_PATH}", input=new_psk,
                                        check=True))  # fmt: skip
    with vmlab.capture("rotation-psk") as capture:
        _start_pings(vms, overlay)
        started = time.monotonic()
        try:
            time.sleep(2)  # a few answered echoes before anything changes
            _in_parallel(vms, lambda vm: _rotate(vm, "accept"))
            for vm in vms:  # a rolling switch, host by host
                _rotate(vm, "switch")
            _wait_for_sas(vms, measurements, "rotation_psk")
            _in_parallel(vms, lambda vm: _rotate(vm, "finish"))
            time.sleep(3)  # answered echoes after the last change
        finally:
            outputs = _stop_pings(vms)
        measurements["rotation_psk_total_s"] = round(time.monotonic() - started, 1)
    measurements["rotation_psk_packets"] = capture.counts.as_dict()
    _assert_no_plaintext(capture, vms)
    per_pair = _interruptions(outputs, measurements, "rotation_psk")
    for vm in vms:
        status = vm.ssh("ovsnet --json status", check=True, timeout=120).stdout
        assert new_psk not in status and psk_mesh["psk"] not in status
        options = vm.ssh("ovs-vsctl --columns=options list Interface", check=True).stdout
        assert psk_mesh["psk"] not in options and options.count(new_psk) == 2, vm.name
    _ping_all_pairs(vms, overlay)
    assert all(seconds < INTERRUPTION_BOUND_S for seconds in per_pair.values()), per_pair


def test_certificate_renewal_under_traffic_sends_no_plaintext(
    vmlab, overlay, psk_mesh, measurements, tmp_path_factory
):
    from ovsnet.pki import lifecycle as pki_lifecycle

    vms = vmlab.vms
    directory = tmp_path_factory.mktemp("rotation-pki")
    issued = _issue_certificates(directory, vms, "ca")
    _remove_all_peers(vms)
    with vmlab.capture("rotation-cert-setup") as setup:
        _switch_to_certificates(vms, issued)
        _wait_for_sas(vms, measurements, "rotation_cert_setup")
    assert setup.counts["gre"] == 0 and setup.counts.inner_icmp == 0, setup.counts.explain()

    for vm in vms:
        pki_lifecycle.renew(directory / "ca", "ike", vm.name)  # same files, new certificate
    with vmlab.capture("rotation-cert-renewal") as capture:
        _start_pings(vms, overlay)
        started = time.monotonic()
        try:
            time.sleep(2)
            _in_parallel(vms, lambda vm: _install_certificate(vm, issued[vm.name]))
            _wait_for_sas(vms, measurements, "rotation_cert_renewal")
            time.sleep(3)
        finally:
            outputs = _stop_pings(vms)
        measurements["rotation_cert_total_s"] = round(time.monotonic() - started, 1)
    measurements["rotation_cert_packets"] = capture.counts.as_dict()
    _assert_no_plaintext(capture, vms)
    per_pair = _interruptions(outputs, measurements, "rotation_cert")
    for vm in vms:
        # charon now authenticates with the renewed certificate (it holds its private key).
        from cryptography import x509

        serial = x509.load_pem_x509_certificate(issued[vm.name][0].read_bytes()).serial_number
        listing = vm.ssh("ipsec listcerts", check=True, timeout=60).stdout
        assert serial in parse_own_certificate_serials(listing), (vm.name, PKI_VM_DIR)
    assert all(seconds < INTERRUPTION_BOUND_S for seconds in per_pair.values()), per_pair
