"""Fixtures of the real-kernel lab: one boot of 3 Debian VMs shared by the host-unit scenarios
(`vm_extended`: `make test-vm-extended`); test_boot_userdata.py boots fleets of its own.

Run alone with `.venv/bin/python -m pytest -m vm tests/vm` (as root). The first run builds the
VM image (about 2 minutes); later runs reuse it from the cache (OVSNET_VMLAB_CACHE). To iterate
on a test without rebooting, start a lab with `ovsnet vmlab up --name dev` and run the tests
with OVSNET_VMLAB_REUSE=dev (the lab is left running; `ovsnet vmlab down dev` removes it).
"""

from __future__ import annotations

import json
import os
import shutil
import time

import pytest

VM_COUNT = 3

# Figures the tests measure, printed at the end of the run (build/boot times, memory, packets).
MEASUREMENTS: dict[str, object] = {}


def _missing_requirements() -> str | None:
    if os.geteuid() != 0:
        return "the VM lab needs root"
    tools = ("qemu-system-x86_64", "qemu-img", "debootstrap", "mkfs.ext4", "tcpdump", "ssh",
             "mkfs.vfat", "mcopy")  # fmt: skip
    missing = [tool for tool in tools if not shutil.which(tool)]
    if missing:
        return f"missing {' '.join(missing)} (run bash scripts/setup.sh)"
    return None


def pytest_collection_modifyitems(items):
    """Modules that boot a lab of their own (BOOTS_ITS_OWN_LAB) run first, and tear it down
    before the shared session lab boots: only one lab's VMs run at a time on 2 cores."""
    slots = [i for i, item in enumerate(items) if item.get_closest_marker("vm")]
    vm_items = sorted(
        (items[i] for i in slots),
        key=lambda item: not getattr(item.module, "BOOTS_ITS_OWN_LAB", False),
    )
    for slot, item in zip(slots, vm_items, strict=True):
        items[slot] = item


@pytest.fixture(scope="session")
def vm_tier_ready() -> None:
    reason = _missing_requirements()
    if reason:
        # Fail, never skip: a VM tier that cannot run under `make test` must not pass as green.
        pytest.fail(f"the VM tier cannot run: {reason}", pytrace=False)


@pytest.fixture(scope="session")
def vmlab(vm_tier_ready):
    """Three booted VMs with this checkout's ovsnet installed; removed at the end.

    Session scope: booting costs about a minute of two CPUs, so all VM test modules share one
    boot. Tests must leave the VMs usable for the next test (clean up their containers).
    """
    from ovsnet.vmlab import VmLab
    from ovsnet.vmlab.image import ensure_image

    reuse = os.environ.get("OVSNET_VMLAB_REUSE")
    if reuse:
        # Developers: iterate on tests against a lab from `ovsnet vmlab up --name NAME`.
        yield VmLab.load(reuse)
        return
    started = time.monotonic()
    image = ensure_image()
    MEASUREMENTS["image_ready_s"] = round(time.monotonic() - started, 1)  # ~0 when cached
    MEASUREMENTS["image_cold_build_s"] = image.meta().get("build_seconds")
    lab = VmLab.up(vms=VM_COUNT)
    MEASUREMENTS.update({f"lab_{key}": value for key, value in lab.timings.items()})
    MEASUREMENTS["vm_rss_mib_after_boot"] = [round(vm.rss_mib() or 0) for vm in lab.vms]
    try:
        yield lab
    finally:
        MEASUREMENTS["vm_rss_mib"] = [round(vm.rss_mib() or 0) for vm in lab.vms]
        lab.down()


@pytest.fixture(scope="session")
def measurements() -> dict[str, object]:
    """Record a figure to print in the run's summary: `measurements["key"] = value`."""
    return MEASUREMENTS


def pytest_terminal_summary(terminalreporter):
    target = os.environ.get("OVSNET_VM_MEASUREMENTS")
    if MEASUREMENTS and target:  # for `python -m bench vm`
        with open(target, "w") as handle:
            json.dump(MEASUREMENTS, handle, indent=2, sort_keys=True)
    if MEASUREMENTS:
        terminalreporter.write_sep("-", "real-kernel lab measurements")
        for key, value in MEASUREMENTS.items():
            texts = isinstance(value, dict) and all(isinstance(v, str) for v in value.values())
            if value and texts:
                # Evidence kept per host (several lines each): printed as it reads on the host.
                terminalreporter.write_line(f"{key}:")
                for host, text in value.items():
                    terminalreporter.write_line(f"  --- {host}:")
                    for line in text.splitlines():
                        terminalreporter.write_line(f"    {line}")
            else:
                terminalreporter.write_line(f"{key}: {value}")
