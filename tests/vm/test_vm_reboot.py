"""Scenario 4 of the real-kernel lab: a rebooted VM gets its overlay back by itself.

The VM is prepared the way an operator prepares a Debian host that runs Open vSwitch from its
packages: `/etc/docker/daemon.json` from `ovsnet render daemon-json` (scenario 1) and the unit
from `ovsnet render host-unit`, enabled. Then it reboots, and nobody touches it: Docker,
vswitchd and the rendered unit must bring the bridge, the address move and every tunnel back,
and the container (restart=always) must reach the others again.
"""

from __future__ import annotations

import itertools
import json
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from test_kernel_lab import CONTAINER, _bring_up_host, prefix_of

from ovsnet.vmlab import guest

# In `make test-vm-extended`: make test's reboot is the certificate fleet's (test_boot_userdata).
pytestmark = [pytest.mark.vm, pytest.mark.vm_extended]

UNIT = "/etc/systemd/system/ovsnet-init.service"
BACK_TIMEOUT = 300  # boot under emulation, then Docker and the unit's retries


def _host_is_up(vm) -> bool:
    proc = vm.ssh("ovs-vsctl br-exists br0 && docker info --format '{{.ID}}' >/dev/null")
    return proc.returncode == 0


@pytest.fixture(scope="module")
def mesh(vmlab):
    """Plain GRE mesh (from the earlier scenarios or made here), a restart=always container each."""
    missing = [vm for vm in vmlab.vms if not _host_is_up(vm)]
    with ThreadPoolExecutor(max_workers=len(vmlab.vms)) as pool:
        list(pool.map(lambda vm: _bring_up_host(vm, vmlab.vms), missing))
    for vm in vmlab.vms:
        guest.run_container(vm, CONTAINER, "--restart=always")
    try:
        yield
    finally:
        vmlab.on_all(f"docker rm -f {CONTAINER} >/dev/null 2>&1 || true", check=False)


def _ips(vms) -> dict[str, str]:
    return {vm.name: guest.container_ip(vm, CONTAINER) for vm in vms}


def _pings(src, dst_ip) -> bool:
    return guest.container_ping(src, CONTAINER, dst_ip, count=1).received == 1


def test_a_rebooted_vm_brings_its_overlay_back_from_the_rendered_unit(vmlab, mesh, measurements):
    vm = vmlab.vms[1]
    others = [peer for peer in vmlab.vms if peer is not vm]
    peers = " ".join(f"--peer {peer.underlay_ip}" for peer in others)
    vm.ssh(f"ovsnet render host-unit --prefix {prefix_of(vm)} {peers} -o {UNIT}", check=True)
    verify = vm.ssh("systemctl daemon-reload && systemd-analyze verify ovsnet-init.service")
    assert verify.returncode == 0 and not verify.stderr.strip(), verify.stderr
    vm.ssh("systemctl enable ovsnet-init.service docker.service openvswitch-switch.service",
           check=True)  # fmt: skip

    measurements["scenario4_reboot_to_ssh_s"] = round(vm.reboot(), 1)
    started = time.monotonic()
    guest.wait_until(
        lambda: vm.ssh("systemctl is-active --quiet ovsnet-init.service").returncode == 0,
        BACK_TIMEOUT,
        f"ovsnet-init.service on {vm.name} after the reboot",
    )
    guest.wait_until(lambda: vm.ssh("docker exec ovl true").returncode == 0, BACK_TIMEOUT,
                     f"the restart=always container on {vm.name}")  # fmt: skip
    ips = _ips(vmlab.vms)
    for src, dst in itertools.permutations(vmlab.vms, 2):
        if vm in (src, dst):
            guest.wait_until(lambda s=src, d=dst: _pings(s, ips[d.name]), BACK_TIMEOUT,
                             f"{src.name} -> {dst.name} after the reboot")  # fmt: skip
    measurements["scenario4_overlay_back_after_ssh_s"] = round(time.monotonic() - started, 1)

    status = json.loads(vm.ssh("ovsnet --json status", check=True, timeout=120).stdout)
    assert status["problems"] == [], status["problems"]
    assert status["docker_attached"] and status["bridge_up"], status
    assert {peer["remote_ip"] for peer in status["peers"]} == {p.underlay_ip for p in others}
    journal = vm.ssh("journalctl -b -u ovsnet-init.service --no-pager -o cat", check=True).stdout
    assert "Traceback" not in journal, journal

    with vmlab.capture("scenario4-after-reboot") as capture:
        for peer in others:
            result = guest.container_ping(vm, CONTAINER, ips[peer.name], count=5)
            assert result.loss == 0, result.output
    counts = capture.counts
    measurements["scenario4_ping_packets"] = counts.as_dict()
    print("scenario 4 pings after the reboot of", vm.name, counts.as_dict())
    for peer in others:
        assert counts.between(vm.underlay_ip, peer.underlay_ip, "gre") > 0, counts.explain()
    assert counts.inner_icmp > 0, counts.explain()  # plain GRE: the pings are readable
