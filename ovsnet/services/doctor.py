"""`ovsnet doctor`: gather what usually breaks an overlay through the facades, judge each.

The judgements are pure (ovsnet.diagnosis); this module only observes: OVSDB and netlink via
`ovsnet status`, iptables via ovsnet.firewall, the kernel via ovsnet.kernel, Docker via
ovsnet.docker, the underlay via ICMP probes (ovsnet.probe). It changes nothing.

Place: docs/architecture.md, "Packages and what they own": the services layer.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from ovsnet import diagnosis, firewall, kernel, probe
from ovsnet.diagnosis import Check, DoctorResult
from ovsnet.errors import OvsnetError
from ovsnet.model import DEFAULT_BRIDGE, DEFAULT_DOCKER_BRIDGE
from ovsnet.netlink import Netlink
from ovsnet.ovsdb.client import OvsDb
from ovsnet.services.status import StatusResult, host_status
from ovsnet.tunnels import overlay_mtu

REFERENCE_UNDERLAY = 1500  # any value: the overhead is what we want from overlay_mtu


@dataclass(frozen=True)
class DoctorRequest:
    bridge: str = DEFAULT_BRIDGE
    docker_host: str | None = None
    docker_tls: str | None = None
    probe_timeout: float = 1.5


def run_doctor(db: OvsDb, net: Netlink, request: DoctorRequest) -> DoctorResult:
    from ovsnet.plaintext_guard import desired_guard
    from ovsnet.services.observed import observe_host

    status = host_status(db, net, request.bridge)
    host = observe_host(db)
    report = DoctorResult()
    checks = report.checks
    checks.append(_bridge_check(status))
    ipsec_peers = [p for p in status.peers if p["ipsec"]]
    datapath = status.datapath or "system"
    tunnel_types = {p["type"] for p in status.peers}
    needed = diagnosis.needed_modules(datapath, tunnel_types, bool(ipsec_peers))
    checks.append(diagnosis.judge_modules(needed, kernel.modules(), datapath))
    docker_bridge = status.docker_bridge or DEFAULT_DOCKER_BRIDGE
    checks.append(diagnosis.judge_bridge_filter(_bridge_filter(docker_bridge), docker_bridge))
    if status.exists:
        checks.append(_docker_check(status, request))
    guard_error = next((p for p in status.problems if "nft" in p), None)
    checks.append(
        diagnosis.judge_guard(
            len(ipsec_peers), bool(desired_guard(host)), status.plaintext_guard, guard_error
        )
    )
    checks += [diagnosis.judge_ike(p) for p in ipsec_peers]
    checks += [diagnosis.judge_bfd(p) for p in status.peers]
    if status.mtu and status.peers:
        checks += _mtu_checks(status, status.mtu, request.probe_timeout)
    checks += _clock_checks(host.other_config.get("certificate"))
    return report


def _bridge_check(status: StatusResult) -> Check:
    others = [p for p in status.problems if "guard" not in p and "nft" not in p]
    if not status.exists:
        return Check("overlay bridge", diagnosis.FAIL, f"{status.bridge} does not exist",
                     "run `ovsnet init` (or pass --bridge / --db)")  # fmt: skip
    if others:
        return Check("overlay bridge", diagnosis.FAIL, "; ".join(others), "run `ovsnet init`")
    return Check("overlay bridge", diagnosis.OK, f"{status.bridge} up, {status.docker_bridge} "
                 f"attached, gateway {status.gateway}, MTU {status.mtu}")  # fmt: skip


def _bridge_filter(docker_bridge: str) -> diagnosis.BridgeFilter:
    value = kernel.sysctl("net.bridge.bridge-nf-call-iptables")
    if value is None or value == "0":
        return diagnosis.BridgeFilter(value, None, None)  # no need to run iptables
    return diagnosis.BridgeFilter(
        value, firewall.accept_present(docker_bridge), firewall.forward_policy()
    )


def _docker_check(status: StatusResult, request: DoctorRequest) -> Check:
    from ovsnet import docker
    from ovsnet.addressing import host_addressing
    from ovsnet.plan import docker_mismatches, docker_options_hint

    if not (status.subnet and status.supernet and status.mtu):
        # A bridge ovsnet did not set up (or a half-done init): nothing to compare Docker with.
        return Check("docker options", diagnosis.WARN,
                     f"{status.bridge} has no ovsnet subnet, supernet or MTU to compare Docker's "
                     "options with", "run `ovsnet init`")  # fmt: skip
    addressing = host_addressing(subnet=status.subnet, supernet=status.supernet)
    try:
        target = docker.resolve_target(request.docker_host, request.docker_tls)
        if target.url.startswith("unix://") and not os.path.exists(target.url[len("unix://") :]):
            return diagnosis.judge_docker(None, "", f"no Docker socket at {target.url}")
        with docker.DockerClient(target) as client:
            settings = client.bridge_settings()
    except OvsnetError as exc:
        return diagnosis.judge_docker(None, "", exc.one_line())
    wrong = docker_mismatches(settings, addressing, status.mtu)
    return diagnosis.judge_docker(wrong, docker_options_hint(addressing, status.mtu), None)


def _mtu_checks(status: StatusResult, mtu: int, timeout: float) -> list[Check]:
    """One DF probe per peer at the size its tunnel puts on the underlay for a full overlay
    frame: overlay MTU (`mtu`, the bridge's) + the tunnel's overhead (type, IPsec)."""
    by_size: dict[int, list[str]] = {}
    for peer in status.peers:
        overhead = REFERENCE_UNDERLAY - overlay_mtu(REFERENCE_UNDERLAY, peer["type"], peer["ipsec"])
        by_size.setdefault(mtu + overhead, []).append(peer["remote_ip"])
    checks = []
    for size, peers in sorted(by_size.items()):
        for remote, seen in probe.probe_df(peers, size, timeout=timeout).items():
            measured = diagnosis.MtuProbe(remote, size, seen.small_reply, seen.big_reply,
                                          seen.local_error)  # fmt: skip
            checks.append(diagnosis.judge_mtu(measured, mtu))
    order = {p["remote_ip"]: i for i, p in enumerate(status.peers)}
    return sorted(checks, key=lambda c: order[c.check.split()[-1]])


def _clock_checks(certificate: str | None) -> list[Check]:
    from ovsnet.pki import profile as pki_profile
    from ovsnet.pki import reading as pki_reading

    checks = [diagnosis.judge_clock_sync(kernel.clock_synchronised())]
    if not certificate:
        return checks
    try:
        with open(certificate, "rb") as handle:
            summary = pki_reading.summarize(
                pki_reading.load_certificate(handle.read(), certificate)
            )
    except (OSError, ValueError, OvsnetError) as exc:
        checks.append(Check("clock vs certificate", diagnosis.WARN,
                            f"cannot read the host certificate {certificate}: {exc}"))  # fmt: skip
        return checks
    checks.append(diagnosis.judge_certificate_clock(
        certificate, pki_profile.utcnow(), summary.not_before, summary.not_after))  # fmt: skip
    return checks
