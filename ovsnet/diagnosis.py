"""`ovsnet doctor`'s judgements: observed facts in, one Check per thing that breaks overlays out.

Pure: the facts are gathered by ovsnet.services.doctor through the facades, so every judgement
here is a plain function a unit test can feed.

Place: docs/architecture.md, "Layers": pure layer (judgements for `ovsnet doctor`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from typing import Any

OK, WARN, FAIL = "ok", "warn", "fail"


@dataclass(frozen=True)
class Check:
    check: str  # e.g. "path MTU 198.51.100.2"
    result: str  # ok | warn | fail
    detail: str
    fix: str = ""


@dataclass
class DoctorResult:
    checks: list[Check] = field(default_factory=list)

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if c.result == FAIL]

    def as_json(self) -> dict[str, Any]:
        return {"ok": not self.failed, "checks": [asdict(c) for c in self.checks]}

    def render(self, console: Any) -> None:  # a rich Console, as ChangeReport.render
        from rich.markup import escape
        from rich.table import Table

        colour = {OK: "green", WARN: "yellow", FAIL: "red"}
        table = Table("check", "result", "detail", "how to fix")
        for c in self.checks:
            result = f"[{colour[c.result]}]{c.result}[/]"
            table.add_row(escape(c.check), result, escape(c.detail), escape(c.fix))
        console.print(table)
        counts = {r: sum(c.result == r for c in self.checks) for r in (OK, WARN, FAIL)}
        console.print(f"{counts[OK]} ok, {counts[WARN]} warn, {counts[FAIL]} fail")


# -- kernel modules ------------------------------------------------------------------------------

TUNNEL_MODULES = {"gre": "ip_gre", "vxlan": "vxlan", "geneve": "geneve"}


def needed_modules(datapath: str, tunnel_types: set[str], ipsec: bool) -> dict[str, str]:
    """Kernel module -> why this host needs it. The userspace datapath (netdev) tunnels in
    ovs-vswitchd itself, so only IPsec (which needs the kernel datapath anyway) asks for ESP."""
    needed = {}
    if datapath == "system":
        needed["openvswitch"] = "the kernel datapath"
        for kind in sorted(tunnel_types):
            if kind in TUNNEL_MODULES:
                needed[TUNNEL_MODULES[kind]] = f"{kind} tunnels on the kernel datapath"
    if ipsec:
        needed["esp4"] = "IPsec (ESP) tunnels"
    return needed


def judge_modules(needed: dict[str, str], present: set[str], datapath: str) -> Check:
    missing = [name for name in needed if name not in present]
    if missing:
        why = "; ".join(f"{name} ({needed[name]})" for name in missing)
        fix = f"modprobe {' '.join(missing)} (and list them in /etc/modules-load.d/)"
        return Check("kernel modules", FAIL, f"not loaded: {why}", fix)
    if not needed:
        return Check("kernel modules", OK, f"{datapath} datapath (userspace): no module needed")
    return Check("kernel modules", OK, "loaded: " + ", ".join(needed))


# -- br_netfilter ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class BridgeFilter:
    call_iptables: str | None  # the sysctl's value; None when br_netfilter is not loaded
    accept_rule: bool | None  # ovsnet's DOCKER-USER rule; None when there is no such chain
    forward_policy: str | None  # iptables FORWARD policy (ACCEPT/DROP), None if unknown


def judge_bridge_filter(seen: BridgeFilter, docker_bridge: str) -> Check:
    name = "br_netfilter"
    if seen.call_iptables is None:
        return Check(name, OK, "br_netfilter not loaded: bridged frames skip iptables")
    if seen.call_iptables.strip() == "0":
        return Check(name, OK, "net.bridge.bridge-nf-call-iptables=0")
    if seen.accept_rule:
        return Check(name, OK, f"bridge-nf-call-iptables=1, ovsnet's accept rule for "
                     f"{docker_bridge} is in DOCKER-USER")  # fmt: skip
    fix = (f"run `ovsnet init` (adds ovsnet's DOCKER-USER accept rule for {docker_bridge}), "
           "or sysctl net.bridge.bridge-nf-call-iptables=0 if nothing else needs it")  # fmt: skip
    where = "no DOCKER-USER chain" if seen.accept_rule is None else "no ovsnet accept rule"
    if seen.forward_policy == "DROP":
        return Check(name, FAIL, f"bridge-nf-call-iptables=1, iptables FORWARD policy DROP and "
                     f"{where}: frames docker0 bridges to OVS are dropped", fix)  # fmt: skip
    return Check(name, WARN, f"bridge-nf-call-iptables=1 and {where}: bridged frames pass only "
                 "while iptables' FORWARD chain accepts them", fix)  # fmt: skip


# -- Docker ---------------------------------------------------------------------------------------


def judge_docker(mismatches: list[str] | None, hint: str, unreachable: str | None) -> Check:
    name = "docker options"
    if unreachable is not None:
        return Check(name, WARN, f"cannot ask Docker: {unreachable}",
                     "pass --docker-host, or check that dockerd runs")  # fmt: skip
    if mismatches:
        return Check(name, FAIL, "; ".join(mismatches), hint)
    return Check(name, OK, "bip, fixed-cidr and mtu match the bridge")


# -- plaintext guard, IKE, BFD -------------------------------------------------------------------


def judge_guard(
    ipsec_peers: int, wanted: bool, guard: dict[str, Any] | None, error: str | None
) -> Check:
    name = "plaintext guard"
    if not ipsec_peers:
        return Check(name, OK, "no IPsec peers: nothing to guard")
    if not wanted:
        return Check(name, WARN, "IPsec peers allow plaintext fallback (ipsec_skb_mark unset)",
                     "`ovsnet ipsec plaintext drop` to fail closed")  # fmt: skip
    restore = "run `ovsnet ipsec plaintext restore` (or `ovsnet init`)"
    if error is not None:
        return Check(name, FAIL, f"cannot read the guard: {error}", restore)
    if guard is None or not guard["in_place"]:
        return Check(name, FAIL, "missing or out of date: tunnel traffic would leave "
                     "unencrypted if the IKE daemon stopped", restore)  # fmt: skip
    return Check(name, OK, f"in place for {guard['peers']} peer(s), "
                 f"{guard['dropped_packets']} packets dropped")  # fmt: skip


def judge_ike(peer: dict[str, Any]) -> Check:
    state = peer.get("ipsec_state", "unknown")
    name = f"IKE {peer['remote_ip']}"
    if state == "established":
        return Check(name, OK, "established")
    return Check(name, FAIL, f"IPsec {state}",
                 "check ovs-monitor-ipsec and the IKE daemon on both hosts; "
                 "`ovsnet ipsec repair` restarts IKE on a clean kernel state")  # fmt: skip


def judge_bfd(peer: dict[str, Any]) -> Check:
    name = f"BFD {peer['remote_ip']}"
    state, bfd = peer["state"], peer.get("bfd_state")
    if state == "up":
        return Check(name, OK, "up" if bfd else "link up (no BFD on this port)")
    if state in ("down", "error", "admin_down"):
        detail = f"{state}" + (f": {peer['error']}" if peer.get("error") else "")
        return Check(name, FAIL, detail,
                     f"is ovsnet's peer added on {peer['remote_ip']} too, and is the underlay "
                     "reachable (GRE, IP protocol 47, allowed)?")  # fmt: skip
    return Check(name, WARN, f"{state}", "wait a few seconds; BFD takes ~3 s to come up")


# -- path MTU -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MtuProbe:
    """Echo replies to a small probe and to a DF probe of the tunnel's full underlay size."""

    remote_ip: str
    size: int  # IP packet length of the big probe
    small_reply: bool
    big_reply: bool
    local_error: str | None = None  # e.g. the sender's own route is smaller (EMSGSIZE)


def judge_mtu(probe: MtuProbe, overlay_mtu: int) -> Check:
    name = f"path MTU {probe.remote_ip}"
    lower = (f"lower the overlay MTU (`ovsnet init --underlay-mtu N`, Docker's --mtu to match) "
             f"or raise the underlay MTU to {probe.size} on the whole path")  # fmt: skip
    if probe.local_error:
        return Check(name, FAIL, f"a {probe.size}-byte DF packet cannot leave: "
                     f"{probe.local_error}", lower)  # fmt: skip
    if not probe.small_reply:
        return Check(name, WARN, "no reply to a small ICMP echo: cannot measure",
                     "allow ICMP echo between the hosts' underlay addresses")  # fmt: skip
    if not probe.big_reply:
        return Check(name, FAIL, f"a {probe.size}-byte DF echo gets no reply while small ones "
                     f"do: an MTU black hole for overlay MTU {overlay_mtu}", lower)  # fmt: skip
    return Check(name, OK, f"{probe.size}-byte DF echo crosses (overlay MTU {overlay_mtu})")


# -- clock ----------------------------------------------------------------------------------------


def judge_certificate_clock(
    path: str, now: dt.datetime, not_before: dt.datetime, not_after: dt.datetime
) -> Check:
    name = "clock vs certificate"
    fix = "set the clock (NTP: systemd-timesyncd or chrony), then check the certificate"
    if now < not_before:
        return Check(name, FAIL, f"clock {now:%Y-%m-%d %H:%M} UTC is before {path} is valid "
                     f"({not_before:%Y-%m-%d %H:%M}): IKE and TLS refuse it", fix)  # fmt: skip
    if now > not_after:
        return Check(name, FAIL, f"{path} expired on {not_after:%Y-%m-%d} (clock "
                     f"{now:%Y-%m-%d})", "`ovsnet pki issue` a new one, or " + fix)  # fmt: skip
    return Check(name, OK, f"clock {now:%Y-%m-%d %H:%M} UTC within {path}'s validity "
                 f"(until {not_after:%Y-%m-%d})")  # fmt: skip


def judge_clock_sync(synchronised: bool | None) -> Check:
    if synchronised is None:
        return Check("clock sync", WARN, "cannot read the kernel's sync state")
    if synchronised:
        return Check("clock sync", OK, "kernel clock synchronised (NTP)")
    return Check("clock sync", WARN, "kernel clock not synchronised: skew breaks certificates",
                 "run an NTP client (systemd-timesyncd, chrony)")  # fmt: skip
