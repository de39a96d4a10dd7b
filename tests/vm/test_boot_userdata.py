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

Once the mesh is up, the same VMs serve more scenarios (no extra boot): the mesh switched on
every host at once, round after round (the all-at-once IPsec bring-up, healed by the product
alone), then Docker restarted on one host (the companion restarts with it: docker0 must be
re-attached and IPsec back, nothing readable on the wire meanwhile), or one host rebooted (back
in the encrypted mesh with no human step).

`make test` boots two fleets: one with the fleet's PSK embedded, then one with each host's own
certificate from `ovsnet pki`. This module is `make test`'s whole VM tier (the shared host-unit
lab is `vm_extended`: docs/decisions.md). The Docker restart runs on the PSK fleet, the reboot
on the certificate fleet. OVSNET_VM_USERDATA=psk (or pki) boots one (tests/vm/README.md).
"""

from __future__ import annotations

import itertools
import json
import os
import re
import secrets
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest

from ovsnet.errors import OvsnetError
from ovsnet.ipsec_healing import DEFAULT_GRACE as HEAL_GRACE  # the companions' healers' grace
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
PEER_SUBNETS = {"edge-1": "10.80.1.0/24", "edge-2": "10.80.2.0/24", "edge-3": "10.80.3.0/24"}
CONTAINER = "ping-c"
# Which boots run, in order: both in make test; the reboot runs on the last one.
VARIANTS = tuple(os.environ.get("OVSNET_VM_USERDATA", "psk,pki").split(","))
assert set(VARIANTS) <= {"psk", "pki"} and VARIANTS, f"OVSNET_VM_USERDATA={VARIANTS}"
# Where the user-data writes each variant's private part (ovsnet.render.host_secrets).
SECRET_FILE = {"psk": "/etc/ovsnet/ipsec.psk", "pki": "/etc/ovsnet/ipsec-key.pem"}
# Power-on to every pair established. Measured here: see tests/vm/README.md. The bound covers
# a slow TCG boot, cloud-init, loading the companion image, and the healer's grace and repairs.
MESH_TIMEOUT = 1200
# A Python start in a TCG VM on a loaded machine takes 15-60 s: a slower status counts as "not
# up yet", and the callers' own deadlines bound the wait.
STATUS_TIMEOUT = 120
# After Docker restarts or the host reboots: the companion's start (OVS, strongSwan, ovsnet
# init under emulation), then its healer's grace (60 s) and one backoff (60 s), with room.
BACK_TIMEOUT = 600
# All-at-once switches of the booted mesh per fleet: the acceptance's five bring-ups in one run
# (switching tunnels, not rebooting), with both kinds of IKE authentication.
SWITCH_ROUNDS = {"psk": 3, "pki": 2}


@dataclass
class Booted:
    lab: object
    capture: object
    variant: str
    mesh_s: float | None = None
    ips: dict | None = None  # each VM's ping container address, once started


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


def _secret(variant: str, folder) -> dict:
    """The Seeding arguments of a variant: a PSK file, or an `ovsnet pki` directory with an IKE
    CA and one certificate per inventory host (CN = its name, SAN = its underlay address)."""
    import sys

    import yaml

    if variant == "psk":
        psk = folder / "ipsec.psk"
        psk.touch(mode=0o600)
        psk.write_text(secrets.token_urlsafe(36) + "\n")
        return {"psk_file": psk}
    pki = folder / "pki"
    ovsnet = [sys.executable, "-m", "ovsnet"]
    subprocess.run([*ovsnet, "pki", "init", "--dir", str(pki)], check=True, capture_output=True)
    for host in yaml.safe_load(INVENTORY)["hosts"]:
        subprocess.run([*ovsnet, "pki", "issue", host["name"], "--purpose", "ike",
                        "--ip", host["ip"], "--dir", str(pki)],
                       check=True, capture_output=True)  # fmt: skip
    return {"pki_dir": pki}


@pytest.fixture(scope="module", params=VARIANTS)
def booted(request, vm_tier_ready, lab_factory_module, tmp_path_factory, measurements):
    from ovsnet.vmlab import VmLab
    from ovsnet.vmlab.lab import Seeding

    variant = request.param
    labs = [VmLab.load(name) for name in VmLab.names()]
    for stale in [lab for lab in labs if not any(vm.running() for vm in lab.vms)]:
        stale.down()  # left by an interrupted run: its qemu processes are gone (2026-12-01)
    running = [lab.name for lab in labs if any(vm.running() for vm in lab.vms)]
    assert not running, f"another VM lab is running ({running}): one lab's VMs at a time"
    started = time.monotonic()
    archive = _companion_archive(lab_factory_module)
    measurements[f"userdata_{variant}_companion_archive_s"] = round(time.monotonic() - started, 1)
    folder = tmp_path_factory.mktemp(f"userdata-{variant}")
    inventory = folder / "hosts.yaml"
    inventory.write_text(INVENTORY)
    captures = []
    lab = VmLab.up(
        name=f"userdata-{variant}-{secrets.token_hex(2)}",
        seeding=Seeding(inventory=inventory, image_archive=archive, **_secret(variant, folder)),
        on_underlay=lambda lab: captures.append(lab.capture("from-power-on").start()),
    )
    measurements.update({f"userdata_{variant}_lab_{key}": value
                         for key, value in lab.timings.items()})  # fmt: skip
    try:
        yield Booted(lab=lab, capture=captures[0], variant=variant)
    finally:
        try:
            if captures[0].proc and captures[0].proc.poll() is None:
                captures[0].stop()
        finally:
            lab.down()


def _status(vm) -> dict:
    """The companion's `ovsnet status` (a read); {} while the companion is not up yet."""
    try:
        proc = vm.ssh("docker exec ovsnet ovsnet --json status", timeout=STATUS_TIMEOUT)
    except subprocess.TimeoutExpired:
        return {}
    if proc.returncode != 0:
        return {}
    try:
        return json.loads(proc.stdout)
    except json.JSONDecodeError:
        return {}


def _pairs_not_up(vms) -> list[str]:
    """Pairs a->b without keyed transport-mode SAs both ways in a's kernel, or whose tunnel a's
    status does not report established.

    The kernel is read first, and `ovsnet status` asked only of hosts whose every pair has its
    SAs: a status is a Python start in the companion, 15-60 s of a TCG VM's one CPU, which the
    host's own boot (or restart) needs meanwhile. Polling status on every host every few
    seconds had the test slow down what it was timing."""
    with ThreadPoolExecutor(max_workers=len(vms)) as pool:
        kernels = dict(zip([vm.name for vm in vms], pool.map(guest.keyed_esp_pairs, vms),
                           strict=True))  # fmt: skip
        down = [(a, b) for a, b in itertools.permutations(vms, 2)
                if not {(a.underlay_ip, b.underlay_ip), (b.underlay_ip, a.underlay_ip)}
                <= kernels[a.name]]  # fmt: skip
        keyed = [vm for vm in vms if not any(a is vm for a, _ in down)]
        states = dict(zip([vm.name for vm in keyed], pool.map(_status, keyed), strict=True))
    for a in keyed:
        peers = {p["remote_ip"]: p for p in states[a.name].get("peers", [])}
        down += [(a, b) for b in vms if b is not a
                 and peers.get(b.underlay_ip, {}).get("ipsec_state") != "established"]  # fmt: skip
    return sorted(f"{a.name}->{b.name}" for a, b in down)


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
    measurements[f"userdata_{booted.variant}_power_on_to_encrypted_mesh_s"] = booted.mesh_s
    measurements[f"userdata_{booted.variant}_healer_repairs"] = _repairs(lab.vms)
    return booted


def _repairs(vms) -> dict[str, dict]:
    """The companion healers' repairs, from their status: {host: {peer: {count, last, why}}}."""
    with ThreadPoolExecutor(max_workers=len(vms)) as pool:
        states = dict(zip([vm.name for vm in vms], pool.map(_status, vms), strict=True))
    return {name: {p["remote_ip"]: p["ipsec_repairs"] for p in state.get("peers", [])
                   if p.get("ipsec_repairs")}
            for name, state in states.items()}  # fmt: skip


def _pings(src, ip: str) -> bool:
    return guest.container_ping(src, CONTAINER, ip, 1).received == 1


def test_cloud_init_ran_the_user_data_offline_and_the_companion_runs_as_rendered(mesh):
    with ThreadPoolExecutor(max_workers=len(mesh.lab.vms)) as pool:
        list(pool.map(lambda vm: _assert_booted_as_rendered(vm, mesh), mesh.lab.vms))


def _assert_booted_as_rendered(vm, mesh) -> None:
    """What the user-data alone made of one host (called for every host at once)."""
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
    # Each tunnel carries only its peer's containers (the inventory knows every /24).
    pinned = {p["remote_ip"]: (p["sources_pinned"], p["subnet"])
              for p in _status(vm).get("peers", [])}  # fmt: skip
    expected = {peer.underlay_ip: (True, PEER_SUBNETS[peer.name])
                for peer in mesh.lab.vms if peer is not vm}  # fmt: skip
    assert pinned == expected, (vm.name, pinned)
    # The PSK or the host's private key came with the user-data, written 0600.
    secret = SECRET_FILE[mesh.variant]
    mode = vm.ssh(f"stat -c %a {secret}", check=True).stdout.strip()
    assert mode == "600", (vm.name, secret, mode)


def _start_containers(mesh) -> dict[str, str]:
    """One busybox container per host (restart=always: it must come back with Docker or the
    host); their addresses by host."""
    if mesh.ips is None:
        vms = mesh.lab.vms
        with ThreadPoolExecutor(max_workers=len(vms)) as pool:
            started = pool.map(lambda vm: guest.run_container(vm, CONTAINER, "--restart=always"),
                               vms)  # fmt: skip
            mesh.ips = dict(zip([vm.name for vm in vms], started, strict=True))
    return mesh.ips


def _pair_evidence(vm, peer) -> str:
    """What one end holds about a pair: its IKE SAs, its kernel's SAs and policies for the
    peer, and the tunnel's OpenFlow rules (source pinning)."""
    out = vm.ssh(
        f"docker exec ovsnet ipsec statusall | grep -E '{peer.underlay_ip}|Security' ; "
        f"ip xfrm state | grep -A2 '{peer.underlay_ip}' | grep -E 'src|proto|mode' ; "
        f"ip xfrm policy | grep -A3 '{peer.underlay_ip}' | grep -E 'src|dir|tmpl' ; "
        "docker exec ovsnet ovs-ofctl dump-flows br0 | grep -E 'in_port|nw_src' | cut -c1-160",
        timeout=120,
    )
    return f"--- {vm.name} about {peer.name}:\n{out.stdout}{out.stderr}"


def _ping_all(vms, ips: dict[str, str], count: int = 5) -> None:
    """Every container pings every other (every pair at once): the first reply within 2
    minutes, then `count` echoes with no loss. A pair that never answers fails with both ends'
    IPsec and flows."""

    def ping(src, dst) -> str | None:
        try:
            guest.wait_until(lambda: _pings(src, ips[dst.name]), 120,
                             f"first ping {src.name} -> {dst.name}", interval=2)  # fmt: skip
        except OvsnetError as exc:
            return f"{exc.one_line()}\n{_pair_evidence(src, dst)}{_pair_evidence(dst, src)}"
        result = guest.container_ping(src, CONTAINER, ips[dst.name], count=count)
        return None if result.loss == 0 else f"{src.name} -> {dst.name}:\n{result.output}"

    if failures := guest.failures_of_every_pair(vms, ping):
        pytest.fail("\n".join(failures), pytrace=False)


def _assert_encrypted_only(counts, host, peers) -> None:
    """No GRE and nothing readable on the underlay; ESP between `host` and each of `peers`."""
    assert counts["gre"] == 0, counts.explain()
    assert not counts.readable, counts.explain()
    assert counts.inner_icmp == counts.inner_tcp == 0, counts.explain()
    for peer in peers:
        assert counts.between(host.underlay_ip, peer.underlay_ip, "esp") > 0, (host.name, peer.name)


def test_every_container_pings_every_other_over_ipsec_and_nothing_readable_crossed(
    mesh, measurements
):
    vms = mesh.lab.vms
    _ping_all(vms, _start_containers(mesh))
    counts = mesh.capture.stop()
    measurements[f"userdata_{mesh.variant}_capture_from_power_on"] = counts.as_dict()
    for host in vms:
        _assert_encrypted_only(counts, host, [vm for vm in vms if vm is not host])


def _repair_count(repairs: dict[str, dict]) -> dict[tuple[str, str], int]:
    return {(host, peer): record["count"] for host, peers in repairs.items()
            for peer, record in peers.items()}  # fmt: skip


def _repairs_since(before: dict[str, dict], after: dict[str, dict]) -> int:
    """Repairs made between two `_repairs` reads (a peer's count restarts if its history was
    dropped with the peer: then all of the new count is new)."""
    old, new = _repair_count(before), _repair_count(after)
    return sum(n - old.get(key, 0) if n >= old.get(key, 0) else n for key, n in new.items())


def _in_companions(vms, command_of) -> None:
    """`ovsnet <command_of(vm)>` in every host's companion at once (as its init unit runs it)."""
    with ThreadPoolExecutor(max_workers=len(vms)) as pool:
        list(pool.map(lambda vm: vm.ssh(f"docker exec ovsnet ovsnet {command_of(vm)}",
                                        check=True, timeout=300), vms))  # fmt: skip


def _peer_adds(vm, vms, variant: str) -> str:
    """The host's peers added back as its user-data adds them: IPsec, each with its subnet and,
    with certificates, the CN its certificate must carry (the inventory name)."""
    cn = {"psk": lambda peer: [], "pki": lambda peer: ["--remote-name", peer.name]}[variant]
    steps = [" ".join(["peer", "add", peer.underlay_ip, "--ipsec", *cn(peer),
                       "--subnet", PEER_SUBNETS[peer.name]])
             for peer in vms if peer is not vm]  # fmt: skip
    return "batch " + " --then ".join(steps)


def _switch_all_at_once(mesh, name: str) -> dict:
    """One all-at-once bring-up: every host drops its tunnels, and once no tunnel SA is left
    anywhere, all hosts add them back at the same moment, as a fleet does at power-on. Nothing
    is repaired here: pairs left not established are the companions' healers' to bring up.
    The round's row: pairs not up at the first look once the commands returned, still down
    60 s after that (the healer's grace), seconds the commands took and from the commands to
    every pair up, the healers' repairs."""
    vms = mesh.lab.vms
    others = {vm.name: " ".join(p.underlay_ip for p in vms if p is not vm) for vm in vms}
    _in_companions(vms, lambda vm: f"peer remove {others[vm.name]}")
    with ThreadPoolExecutor(max_workers=len(vms)) as pool:
        guest.wait_until(lambda: not any(pool.map(guest.keyed_esp_pairs, vms)), BACK_TIMEOUT,
                         f"{name}: every tunnel SA gone after peer remove", interval=3)  # fmt: skip
    before = _repairs(vms)
    started = time.monotonic()  # the switch as a user times it: from the commands on
    _in_companions(vms, lambda vm: _peer_adds(vm, vms, mesh.variant))
    # Every tunnel is in OVSDB from here: no healer's grace for a pair can have begun before.
    added = time.monotonic()
    not_up_at_first, down_after_grace = None, None
    while down := _pairs_not_up(vms):
        not_up_at_first = len(down) if not_up_at_first is None else not_up_at_first
        if down_after_grace is None and time.monotonic() - added >= HEAL_GRACE:
            down_after_grace = down
        if time.monotonic() - added > BACK_TIMEOUT:
            views = "\n".join(_diagnosis(vm) for vm in vms)
            pytest.fail(f"{name}: {', '.join(down)} still down after {BACK_TIMEOUT} s of the "
                        f"companions' own healing:\n{views}")  # fmt: skip
        time.sleep(3)
    return {"switch": name, "pairs": len(vms) * (len(vms) - 1),
            "not_up_at_first": not_up_at_first or 0,
            "down_after_grace": len(down_after_grace or []),
            "commands_s": round(added - started, 1),
            "all_up_s": round(time.monotonic() - started, 1),
            "healer_repairs": _repairs_since(before, _repairs(vms))}  # fmt: skip


def test_the_mesh_switched_on_every_host_at_once_comes_up_by_itself_every_round(mesh, measurements):
    """The all-at-once IPsec bring-up, repeated on the booted fleet (SWITCH_ROUNDS: five in
    all in make test, with certificates and with the PSK). Every round must end with every
    pair established by the product alone, and no GRE and nothing readable on the underlay
    while the tunnels go and come back (the plaintext guard)."""
    vms, ips = mesh.lab.vms, _start_containers(mesh)
    # Traffic the whole time: every container pings every other once a second, so a tunnel
    # that carried anything before its SAs existed would show on the underlay.
    for vm in vms:
        for peer in vms:
            if peer is not vm:
                vm.ssh(f"docker exec -d {CONTAINER} ping -i 1 {ips[peer.name]}", check=True)
    rows = measurements.setdefault("ipsec_all_at_once_bring_ups", [])
    try:
        for round_number in range(1, SWITCH_ROUNDS[mesh.variant] + 1):
            name = f"{mesh.variant}-switch-{round_number}"
            with mesh.lab.capture(name) as capture:
                row = _switch_all_at_once(mesh, name)
            rows.append(row)
            print(f"{name}: {row}; {capture.counts.explain()}")
            assert capture.counts["gre"] == 0, capture.counts.explain()
            assert not capture.counts.readable, capture.counts.explain()
            assert capture.counts.inner_icmp == 0, capture.counts.explain()
    finally:
        mesh.lab.on_all(f"docker exec {CONTAINER} killall ping", check=False)
    _ping_all(vms, ips)


def _orphan_sas(vm) -> list[str]:
    """ESP SAs in the host's kernel that its charon does not report as a CHILD_SA's: left by a
    charon that was killed, or by a repair that did not delete them; the kernel may send on
    them, and the peer cannot decrypt."""
    from ovsnet.ipsec.xfrm_states import parse_esp_states

    kernel = parse_esp_states(vm.ssh("ip xfrm state list proto esp", check=True).stdout)
    statusall = vm.ssh("docker exec ovsnet ipsec statusall", check=True).stdout
    owned = {f"0x{spi[:-2]}" for spi in re.findall(r"\b([0-9a-f]{8}_[io])\b", statusall)}
    return [f"{sa.src}->{sa.dst} {sa.spi}" for sa in kernel if sa.spi not in owned]


def _wait_for_mesh(vms, what: str) -> tuple[float, list[str]]:
    """Poll (reads only) until every pair is up at once: the seconds it took and the pairs seen
    down on the way (none of them is repaired here: that is the companion's healer's job)."""
    started = time.monotonic()
    seen_down: set[str] = set()
    while down := _pairs_not_up(vms):
        seen_down.update(down)
        if time.monotonic() - started > BACK_TIMEOUT:
            views = "\n".join(_diagnosis(vm) for vm in vms)
            pytest.fail(f"{what}: {', '.join(down)} still down after {BACK_TIMEOUT} s:\n{views}")
        time.sleep(3)
    return round(time.monotonic() - started, 1), sorted(seen_down)


# One scenario per variant: neither depends on how IKE authenticates, and each costs minutes.
@pytest.mark.parametrize("booted", ["psk"], indirect=True)
def test_docker_restarted_on_one_host_comes_back_attached_and_encrypted(mesh, measurements):
    """`systemctl restart docker` on one host: the companion restarts with Docker (PartOf), and
    its OVS and IPsec daemons with it. docker0 must be re-attached to br0, every pair
    established again, the containers pinging, and nothing readable on the underlay meanwhile
    (the plaintext guard lives in the host's nftables, not in Docker)."""
    vms, host = mesh.lab.vms, mesh.lab.vms[1]
    _start_containers(mesh)
    repairs_before = _repairs(vms)
    with mesh.lab.capture("docker-restart") as capture:
        started = time.monotonic()
        host.ssh("systemctl restart docker", check=True, timeout=300)
        guest.wait_until(lambda: _docker0_in_datapath(host), BACK_TIMEOUT,
                         f"docker0 re-attached to br0 on {host.name}", interval=3)  # fmt: skip
        attached_s = round(time.monotonic() - started, 1)
        mesh_s, seen_down = _wait_for_mesh(vms, "after Docker restarted")
        _ping_all(vms, {vm.name: guest.container_ip(vm, CONTAINER) for vm in vms})
    prefix = f"userdata_{mesh.variant}_docker_restart"
    measurements[f"{prefix}_attached_s"] = attached_s
    measurements[f"{prefix}_mesh_s"] = round(attached_s + mesh_s, 1)
    measurements[f"{prefix}_pairs_seen_down"] = seen_down
    measurements[f"{prefix}_packets"] = capture.counts.as_dict()
    measurements[f"{prefix}_healer_repairs"] = _repairs(vms)
    # A status is a Python start in the VM: one that times out on a loaded machine is read again.
    guest.wait_until(lambda: _attached_without_problems(host), STATUS_TIMEOUT * 2,
                     f"{host.name}'s status: docker attached, no problem", interval=5)  # fmt: skip
    _assert_encrypted_only(capture.counts, host, [vm for vm in vms if vm is not host])
    # The new companion's charon started from a kernel with nothing of the last one's.
    assert not _orphan_sas(host), _orphan_sas(host)
    # Whatever the healers repaired meanwhile (a survivor, while the host was away; either end,
    # when IKE took longer than the grace on a slow machine) is the product healing itself, as
    # the design allows: it is measured above, and every repair must have succeeded. Which host
    # repaired when was asserted until 2026-12-01: that is timing under emulation, not a promise
    # to users, and it is what made this test fail on slower CI machines (docs/testing.md).
    repairs_after = measurements[f"{prefix}_healer_repairs"]
    for survivor in vms:
        for peer, repair in repairs_after[survivor.name].items():
            if repair != repairs_before[survivor.name].get(peer):
                assert "failed" not in repair["why"], (survivor.name, peer, repairs_after)


def _attached_without_problems(vm) -> bool:
    status = _status(vm)
    return status.get("docker_attached") is True and not status.get("problems")


def _docker0_in_datapath(vm) -> bool:
    """docker0 is br0's port in OVSDB and ovs-vswitchd has it in the kernel datapath: what
    status's docker_attached reports, read without a Python start in the restarting host."""
    out = vm.ssh("docker exec ovsnet ovs-vsctl --timeout=10 port-to-br docker0"
                 " && ip -o link show docker0", timeout=60)  # fmt: skip
    attached = out.stdout.startswith("br0\n") and "master ovs-system" in out.stdout
    return out.returncode == 0 and attached


# On the last fleet booted: the PSK one in make test, the certificate one when both boot.
@pytest.mark.parametrize("booted", [VARIANTS[-1]], indirect=True)
def test_a_rebooted_host_is_back_in_the_encrypted_mesh_with_no_human_step(mesh, measurements):
    """One host of the fleet reboots. Nothing is run in it but reads: its own units (Docker,
    the companion, ovsnet-init) must bring the bridge, the guard and every IPsec tunnel back,
    its container (restart=always) must reach the others, and nothing readable may cross the
    underlay from the reboot on."""
    vms, host = mesh.lab.vms, mesh.lab.vms[2]
    _start_containers(mesh)
    with mesh.lab.capture("reboot") as capture:
        reboot_s = host.reboot()
        mesh_s, seen_down = _wait_for_mesh(vms, f"after {host.name} rebooted")
        _ping_all(vms, {vm.name: guest.container_ip(vm, CONTAINER) for vm in vms})
    prefix = f"userdata_{mesh.variant}_reboot"
    measurements[f"{prefix}_to_ssh_s"] = round(reboot_s, 1)
    measurements[f"{prefix}_mesh_back_after_ssh_s"] = mesh_s
    measurements[f"{prefix}_pairs_seen_down"] = seen_down
    measurements[f"{prefix}_packets"] = capture.counts.as_dict()
    measurements[f"{prefix}_healer_repairs"] = _repairs(vms)
    guest.wait_until(lambda: _status(host).get("docker_attached") is True, STATUS_TIMEOUT * 2,
                     f"{host.name}'s status: docker attached", interval=5)  # fmt: skip
    _assert_encrypted_only(capture.counts, host, [vm for vm in vms if vm is not host])
