"""The real boot path: three hosts powered on together with their rendered user-data alone.

`VmLab.up(seeding=...)` boots one VM per inventory host, each given nothing but its host's
`ovsnet render cloud-init` user-data (IPsec, PSK embedded opt-in) through a NoCloud seed, with
this checkout's companion image preloaded in its Docker (no registry is reachable; `docker load`
under emulation would take 5-10 minutes per VM). The VMs' own cloud-init writes daemon.json, the
PSK and the units, starts Docker and the companion (kernel datapath, as rendered), and
ovsnet-init joins the mesh. This test runs nothing in the VMs
but reads (status, xfrm state, cloud-init's status, the companion's inspect) and the workload:
one busybox container per host that pings every other host's. No repair, no xfrm flush, no
strongSwan restart: pairs not established at first are the companion's healer's to bring up.

The underlay is captured from power-on: no GRE and no readable inner packet may cross it, ever.

This module boots its own three VMs: it runs before the session lab of conftest.py boots
(conftest orders it first) and removes its VMs when done, so one lab's VMs run at a time.
"""

from __future__ import annotations

import itertools
import json
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest

from ovsnet.render.host_layout import COMPANION_CAPABILITIES
from ovsnet.vmlab import guest

pytestmark = pytest.mark.vm
BOOTS_ITS_OWN_LAB = True  # conftest.py runs this module before the shared lab boots

INVENTORY = """\
supernet: 10.80.0.0/16
underlay_mtu: 1500
ipsec: true
hosts:
- {name: edge-1, ip: 203.0.113.21, prefix: 10.80.1}
- {name: edge-2, ip: 203.0.113.22, prefix: 10.80.2}
- {name: edge-3, ip: 203.0.113.23, prefix: 10.80.3}
"""
CONTAINER = "ping-c"
# Power-on to every pair established. Measured here: see tests/vm/README.md. The bound covers
# a slow TCG boot, cloud-init, loading the companion image, and the healer's grace and repairs.
MESH_TIMEOUT = 1200


@dataclass
class Booted:
    lab: object
    capture: object
    mesh_s: float | None = None


def _companion_archive(lab_factory_module):
    """The companion image archive of this checkout (cached; built on a netns lab host's dockerd
    when the sources changed, as the companion lab tests do)."""
    from tests.lab.companion_harness import CACHE_DIR, ensure_image, image_key

    archive = CACHE_DIR / f"ovsnet-image-{image_key()}.tar"
    if archive.exists():
        return archive
    builder = lab_factory_module(hosts=1, docker=True)
    try:
        return ensure_image(builder.hosts[0]).archive
    finally:
        builder.down()


@pytest.fixture(scope="module")
def booted(vm_tier_ready, lab_factory_module, tmp_path_factory, measurements):
    from ovsnet.vmlab import VmLab
    from ovsnet.vmlab.lab import Seeding

    running = VmLab.names()
    assert not running, f"another VM lab is running ({running}): one lab's VMs at a time"
    started = time.monotonic()
    archive = _companion_archive(lab_factory_module)
    measurements["userdata_companion_archive_s"] = round(time.monotonic() - started, 1)
    folder = tmp_path_factory.mktemp("userdata")
    inventory = folder / "hosts.yaml"
    inventory.write_text(INVENTORY)
    psk = folder / "ipsec.psk"
    psk.touch(mode=0o600)
    psk.write_text(secrets.token_urlsafe(36) + "\n")
    captures = []
    lab = VmLab.up(
        name=f"userdata-{secrets.token_hex(2)}",
        seeding=Seeding(inventory=inventory, psk_file=psk, image_archive=archive),
        on_underlay=lambda lab: captures.append(lab.capture("from-power-on").start()),
    )
    measurements.update({f"userdata_lab_{key}": value for key, value in lab.timings.items()})
    try:
        yield Booted(lab=lab, capture=captures[0])
    finally:
        try:
            if captures[0].proc and captures[0].proc.poll() is None:
                captures[0].stop()
        finally:
            lab.down()


def _status(vm) -> dict:
    """The companion's `ovsnet status` (a read); {} while the companion is not up yet."""
    proc = vm.ssh("docker exec ovsnet ovsnet --json status", timeout=180)
    if proc.returncode != 0:
        return {}
    try:
        return json.loads(proc.stdout)
    except json.JSONDecodeError:
        return {}


def _keyed_transport_sas(vm, src: str, dst: str) -> int:
    out = vm.ssh(f"ip xfrm state list src {src} dst {dst} proto esp").stdout
    keyed, mode = 0, None
    for line in out.splitlines():
        words = line.split()
        if "mode" in words[:-1]:
            mode = words[words.index("mode") + 1]
        if words and words[0] in ("aead", "enc") and mode == "transport":
            keyed += 1
    return keyed


def _pairs_not_up(vms) -> list[str]:
    """Pairs a->b whose tunnel a's status does not report established, or without keyed
    transport-mode SAs both ways in a's kernel."""
    with ThreadPoolExecutor(max_workers=len(vms)) as pool:
        states = dict(zip([vm.name for vm in vms], pool.map(_status, vms), strict=True))
    down = []
    for a, b in itertools.permutations(vms, 2):
        peers = {p["remote_ip"]: p for p in states[a.name].get("peers", [])}
        if peers.get(b.underlay_ip, {}).get("ipsec_state") != "established" or not (
            _keyed_transport_sas(a, a.underlay_ip, b.underlay_ip)
            and _keyed_transport_sas(a, b.underlay_ip, a.underlay_ip)
        ):
            down.append(f"{a.name}->{b.name}")
    return down


def _diagnosis(vm) -> str:
    out = vm.ssh(
        "cloud-init status --long; systemctl --no-pager status ovsnet.service ovsnet-init.service"
        " | tail -n 30; docker logs --tail 40 ovsnet 2>&1",
        timeout=120,
    )
    return f"--- {vm.name}:\n{out.stdout}{out.stderr}\nconsole:\n{vm.console_tail(15)}"


@pytest.fixture(scope="module")
def mesh(booted, measurements):
    """Wait (reads only) until every pair is established; the time since power-on."""
    lab = booted.lab
    deadline = lab.powered_on_at + MESH_TIMEOUT
    first_seen: dict[str, float] = {}
    while down := _pairs_not_up(lab.vms):
        for pair in down:
            first_seen.setdefault(pair, time.time())
        if time.time() > deadline:
            views = "\n".join(_diagnosis(vm) for vm in lab.vms)
            pytest.fail(f"{', '.join(down)} not up {MESH_TIMEOUT} s after power-on:\n{views}")
        time.sleep(5)
    booted.mesh_s = round(time.time() - lab.powered_on_at, 1)
    measurements["userdata_power_on_to_encrypted_mesh_s"] = booted.mesh_s
    repairs = {}
    for vm in lab.vms:
        peers = _status(vm).get("peers", [])
        repairs[vm.name] = {p["remote_ip"]: p["ipsec_repairs"] for p in peers
                            if p.get("ipsec_repairs")}  # fmt: skip
    measurements["userdata_healer_repairs"] = repairs
    return booted


def _pings(src, ip: str) -> bool:
    return guest.container_ping(src, CONTAINER, ip, 1).received == 1


def test_cloud_init_ran_the_user_data_offline_and_the_companion_runs_as_rendered(mesh):
    for vm in mesh.lab.vms:
        status = vm.ssh("cloud-init status --long", timeout=120)
        assert "status: done" in status.stdout, _diagnosis(vm)
        assert vm.ssh("hostname").stdout.strip() == vm.name
        units = vm.ssh("systemctl is-active ovsnet.service ovsnet-init.service docker.service")
        assert units.stdout.split() == ["active"] * 3, (vm.name, units.stdout)
        inspect = json.loads(vm.ssh("docker inspect ovsnet", check=True).stdout)[0]
        assert inspect["HostConfig"]["NetworkMode"] == "host"
        # Not privileged: the rendered capabilities and no other (docs/security.md).
        host_config = inspect["HostConfig"]
        assert host_config["Privileged"] is False
        assert [c.removeprefix("CAP_") for c in host_config["CapDrop"]] == ["ALL"]
        added = {c.removeprefix("CAP_") for c in host_config["CapAdd"]}
        assert added == set(COMPANION_CAPABILITIES), (vm.name, host_config["CapAdd"])
        # The kernel datapath, not the netdev one the netns lab uses.
        datapath = vm.ssh("docker exec ovsnet ovs-vsctl get bridge br0 datapath_type").stdout
        assert datapath.strip() in ('""', "system"), (vm.name, datapath)
        # The PSK came with the user-data, written 0600.
        mode = vm.ssh("stat -c %a /etc/ovsnet/ipsec.psk", check=True).stdout.strip()
        assert mode == "600", (vm.name, mode)


def test_every_container_pings_every_other_over_ipsec_and_nothing_readable_crossed(
    mesh, measurements
):
    vms = mesh.lab.vms
    with ThreadPoolExecutor(max_workers=len(vms)) as pool:
        ips = dict(zip([vm.name for vm in vms],
                       pool.map(lambda vm: guest.run_container(vm, CONTAINER), vms),
                       strict=True))  # fmt: skip
    for src, dst in itertools.permutations(vms, 2):
        guest.wait_until(lambda src=src, dst=dst: _pings(src, ips[dst.name]), 120,
                         f"first ping {src.name} -> {dst.name}")  # fmt: skip
        result = guest.container_ping(src, CONTAINER, ips[dst.name], count=5)
        assert result.loss == 0, f"{src.name} -> {dst.name}:\n{result.output}"
    counts = mesh.capture.stop()
    measurements["userdata_capture_from_power_on"] = counts.as_dict()
    assert counts["gre"] == 0, counts.explain()
    assert not counts.readable, counts.explain()
    assert counts.inner_icmp == counts.inner_tcp == 0, counts.explain()
    for a, b in itertools.combinations(vms, 2):
        assert counts.between(a.underlay_ip, b.underlay_ip, "esp") > 0, (a.name, b.name)
