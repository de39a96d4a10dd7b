"""The VMs are what the real-kernel scenarios need: kernel OVS, an underlay, Docker."""

from __future__ import annotations

import itertools

import pytest

from ovsnet.vmlab import guest

# The shared host-unit lab runs in `make test-vm-extended` (CI's time budget, docs/decisions.md).
pytestmark = [pytest.mark.vm, pytest.mark.vm_extended]


def test_vms_run_debian_kernel_with_openvswitch_module_and_ovsdb(vmlab):
    for vm in vmlab.vms:
        assert vm.ssh("hostname", check=True).stdout.strip() == vm.name
        modules = vm.ssh("lsmod", check=True).stdout.split()
        assert "openvswitch" in modules, f"{vm.name}: kernel openvswitch module not loaded"
        show = vm.ssh("ovs-vsctl show", check=True).stdout
        assert "ovs_version" in show
        ovsnet = vm.ssh("ovsnet --help", check=True).stdout
        assert "init" in ovsnet and "peer" in ovsnet


def test_underlay_pings_between_every_pair_of_vms(vmlab):
    for src, dst in itertools.permutations(vmlab.vms, 2):
        proc = src.ssh(f"ping -c 2 -i 0.3 -W 3 {dst.underlay_ip}")
        assert proc.returncode == 0, f"{src.name} -> {dst.name}: {proc.stdout}{proc.stderr}"


def test_docker_runs_a_container_from_the_locally_imported_busybox_image(vmlab):
    vm = vmlab.vms[0]
    if vm.ssh("docker info --format '{{.ID}}'").returncode != 0:
        guest.start_docker(vm)
    image = guest.import_busybox(vm)
    proc = vm.ssh(f"docker run --rm {image} sh -c 'echo hello from $(uname -r)'", check=True)
    kernel = vm.ssh("uname -r", check=True).stdout.strip()
    assert proc.stdout.strip() == f"hello from {kernel}"


def test_memory_per_vm_stays_below_the_tcg_default(vmlab, measurements):
    rss = [vm.rss_mib() for vm in vmlab.vms]
    measurements["vm_rss_mib_after_smoke"] = [round(r or 0) for r in rss]
    # 1 GiB guest RAM + a 256 MiB translation buffer; qemu's default buffer alone is 1 GiB.
    assert all(r is not None and r < 1600 for r in rss), rss


def test_without_a_seed_cloud_init_disables_itself(vmlab):
    """The image has cloud-init for the seeded labs; with no `cidata` disk, ds-identify finds no
    datasource and cloud-init does nothing on these VMs (they boot as before it was added)."""
    for vm in vmlab.vms:
        status = vm.ssh("cloud-init status", timeout=120).stdout
        assert "status: disabled" in status, (vm.name, status)
