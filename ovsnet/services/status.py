"""`ovsnet status`: what the host's overlay looks like right now, and what is wrong with it.

Place: docs/architecture.md, "Packages and what they own": the services layer.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ovsnet.addressing import host_addressing
from ovsnet.errors import OvsnetError
from ovsnet.model import DEFAULT_DOCKER_BRIDGE, DOCKER_BRIDGE_KEY, SUBNET_KEY, SUPERNET_KEY
from ovsnet.netlink import Netlink
from ovsnet.openflow import FlowRead
from ovsnet.ovs_daemons import vswitchd_answers
from ovsnet.ovsdb.client import OvsDb
from ovsnet.services.flows import read_flow_state, start_flow_read
from ovsnet.services.observed import observe_snapshot
from ovsnet.services.peer_rows import sorted_peers


@dataclass
class StatusResult:
    bridge: str
    exists: bool
    ovs_version: str | None = None
    datapath: str | None = None
    subnet: str | None = None
    supernet: str | None = None
    gateway: str | None = None
    mtu: int | None = None
    bridge_up: bool = False
    docker_bridge: str | None = None
    docker_attached: bool = False
    peers: list[dict] = field(default_factory=list)
    plaintext_guard: dict | None = None
    problems: list[str] = field(default_factory=list)  # make `status --check` fail
    warnings: list[str] = field(default_factory=list)  # shown, but the host still works

    def as_json(self) -> dict:
        return dict(self.__dict__)

    def render(self, console) -> None:
        from rich.table import Table

        from ovsnet.views import peer_table

        if not self.exists:
            console.print(f"bridge {self.bridge}: not initialised (run `ovsnet init`)")
            return
        summary = Table.grid(padding=(0, 2))
        rows = [
            ("bridge", f"{self.bridge} ({self.datapath}, {'up' if self.bridge_up else 'DOWN'})"),
            ("subnet", f"{self.subnet} of {self.supernet}"),
            ("gateway", str(self.gateway)),
            ("MTU", str(self.mtu)),
            (
                "docker bridge",
                f"{self.docker_bridge} ({'attached' if self.docker_attached else 'NOT attached'})",
            ),
            ("OVS", self.ovs_version or "unknown (no daemon answered, no ovs_version in OVSDB)"),
        ]
        if self.plaintext_guard:
            guard = self.plaintext_guard
            state = "in place" if guard["in_place"] else "NOT in place"
            rows.append(("plaintext guard", f"{state}, {guard['peers']} peers, "
                         f"{guard['dropped_packets']} packets dropped"))  # fmt: skip
        for key, value in rows:
            summary.add_row(f"[bold]{key}[/]", value)
        console.print(summary)
        console.print(peer_table(self.peers))
        for line in repair_lines(self.peers):
            console.print(line, markup=False)
        for problem in self.problems:
            console.print(f"[red]problem:[/] {problem}")
        for warning in self.warnings:
            console.print(f"[yellow]warning:[/] {warning}")

    def health_problems(self, check_peers: bool = False) -> list[str]:
        """For `status --check`: this host's problems, and with check_peers its peers' too."""
        return host_health(self) + (peer_health(self) if check_peers else [])


def host_health(status: StatusResult) -> list[str]:
    """Why this host is unhealthy (empty: healthy): the bridge, its gateway address, docker0
    attached, the plaintext guard, ovs-vswitchd answering, the IKE side when IPsec peers are
    configured. What `status --check`, the container HEALTHCHECK and /healthz judge.

    Peers are left out on purpose: one dead host must not turn every other host of the fleet
    unhealthy (and get its companion restarted for nothing). See peer_health."""
    return list(status.problems)


def peer_health(status: StatusResult) -> list[str]:
    """The peers this host cannot reach (BFD down, or a port ovs-vswitchd refused), one line
    each; `status --check-peers` fails on them."""
    return [
        f"peer {p['remote_ip']} is {p['state']}"
        for p in status.peers
        if p["state"] in ("down", "error", "admin_down")
    ]


def host_status(db: OvsDb, net: Netlink, bridge_name: str) -> StatusResult:
    snapshot = db.snapshot()
    bridge = snapshot.bridges.get(bridge_name)
    status = StatusResult(
        bridge=bridge_name, exists=bridge is not None, ovs_version=snapshot.ovs_version
    )
    if bridge is None:
        status.problems.append(f"bridge {bridge_name} does not exist")
        return status
    # NOTE(perf): ovs-ofctl reads the flows while OVSDB's rows become peers and the kernel is
    # asked about the links (~0.02 s of a 1,000-peer status's wall time).
    reading = start_flow_read(db, bridge)
    try:
        if vswitchd_answers(db.db) is False:
            status.problems.append(
                "ovs-vswitchd does not answer on its control socket: the bridge and tunnels in "
                "OVSDB are not forwarding (start ovs-vswitchd, or the ovsnet container)"
            )
        status.datapath = bridge.datapath_type or "system"
        status.subnet = bridge.external_ids.get(SUBNET_KEY)
        status.supernet = bridge.external_ids.get(SUPERNET_KEY)
        status.docker_bridge = bridge.external_ids.get(DOCKER_BRIDGE_KEY, DEFAULT_DOCKER_BRIDGE)
        internal = bridge.internal
        status.mtu = internal.mtu_request if internal else None
        link = net.link(bridge_name)
        status.bridge_up = link.up
        if status.subnet and status.supernet:
            addressing = host_addressing(subnet=status.subnet, supernet=status.supernet)
            gateway = addressing.bridge_address
            status.gateway = str(addressing.gateway)
            docker = net.link(status.docker_bridge)
            status.docker_attached = status.docker_bridge in bridge.ports and docker.exists
            if gateway in docker.addresses:
                status.problems.append(
                    f"{status.docker_bridge} has the gateway address again (Docker restarted?): "
                    "run `ovsnet init` to heal"
                )
            elif gateway not in link.addresses:
                status.problems.append(f"{bridge_name} does not carry the gateway {gateway}")
            if not docker.exists:
                status.problems.append(f"docker bridge {status.docker_bridge} does not exist")
        if not status.docker_attached:
            status.problems.append(f"{status.docker_bridge} is not attached to {bridge_name}")
        status.peers = sorted_peers(bridge)
        _add_pinning_view(status, db, bridge, reading)
        if any(peer["ipsec"] for peer in status.peers):
            _add_ipsec_view(status, snapshot.other_config)
        _add_guard_view(status, observe_snapshot(snapshot))
        return status
    finally:
        if reading is not None:
            reading.close()


def _add_pinning_view(status: StatusResult, db: OvsDb, bridge, reading: FlowRead | None) -> None:
    """Warn when vswitchd lacks the source-pinning flows OVSDB's records ask for (it keeps
    flows only in memory: a restart drops them until `init` or the companion's heal)."""
    from ovsnet import antispoof

    if reading is None:
        return  # not ovsnet's bridge, or vswitchd not local (start_flow_read)
    try:
        current, _, metered = read_flow_state(db, bridge, reading)
    except OvsnetError:
        return  # vswitchd not answering is reported above
    if antispoof.diff_flows(current, antispoof.plan_bridge(bridge, metered).flows):
        status.warnings.append(
            "source-pinning flows differ from OVSDB's records (ovs-vswitchd restarted?): "
            "`ovsnet init` puts them back"
        )


def _add_guard_view(status: StatusResult, host) -> None:
    """Is the plaintext guard in the kernel what the IPsec tunnels need (survives charon)?"""
    from ovsnet.plaintext_guard import desired_guard

    wanted = desired_guard(host)
    if not wanted and not any(tunnel.method for tunnel in host.tunnels):
        return  # a plaintext mesh: nothing to guard, no nft process to start
    from ovsnet import nftables

    try:
        current = nftables.read_guard()
    except OvsnetError as exc:
        status.problems.append(exc.one_line())
        return
    if wanted or current.present:
        status.plaintext_guard = {
            "peers": len(current.guard.peers),
            "in_place": not current.needs(wanted),
            "dropped_packets": current.dropped_packets,
        }
    if wanted and current.needs(wanted):
        status.problems.append(
            "the plaintext guard is missing or out of date, so tunnel traffic would leave "
            "unencrypted if the IKE daemon stopped: run `ovsnet init` to restore it"
        )
    elif current.needs(wanted):
        status.warnings.append("a plaintext guard is left from removed IPsec peers (ovsnet init)")
    if current.dropped_packets:
        status.warnings.append(
            f"the plaintext guard dropped {current.dropped_packets} unencrypted tunnel packets "
            "(an IKE daemon down, here or on a peer?)"
        )


def _add_ipsec_view(status: StatusResult, other_config: dict[str, str]) -> None:
    """ovs-monitor-ipsec's view per peer, so "configured but not established" is visible."""
    from ovsnet.errors import NotReady
    from ovsnet.ipsec_monitor import monitor_tunnels

    try:
        seen = {tunnel.name: tunnel for tunnel in monitor_tunnels()}
    except NotReady as exc:
        # No IKE side: the IPsec tunnels carry nothing (or, allowed plaintext, leave in clear).
        status.problems.append(f"IPsec peers configured but {exc.one_line()}")
        seen = None
    for peer in status.peers:
        if not peer["ipsec"]:
            continue
        if seen is None:
            peer["ipsec_state"] = "unknown (monitor not running)"
        elif peer["port"] not in seen:
            peer["ipsec_state"] = "not seen by ovs-monitor-ipsec"
        else:
            peer["ipsec_state"] = seen[peer["port"]].summary(peer.get("bfd_state"))
        if peer["ipsec_state"] != "established":
            status.warnings.append(f"peer {peer['remote_ip']}: IPsec {peer['ipsec_state']}")
    add_repair_history(status.peers)
    stuck = seen is not None and any(
        p["ipsec"] and p["ipsec_state"] != "established" for p in status.peers
    )
    if stuck:
        status.warnings.append(
            "IKE takes seconds; a peer still not established after a minute is repaired by the "
            "healer (companion, agent or `ovsnet ipsec heal --watch`); `ovsnet ipsec repair "
            "PEER` re-negotiates it now"
        )
    certificate = other_config.get("certificate")
    if certificate:
        status.warnings.extend(_certificate_warnings(certificate))


def _certificate_warnings(path: str) -> list[str]:
    from ovsnet.pki import profile as pki_profile
    from ovsnet.pki import reading as pki_reading

    try:
        with open(path, "rb") as handle:
            summary = pki_reading.summarize(pki_reading.load_certificate(handle.read(), path))
    except (OSError, ValueError, OvsnetError) as exc:
        return [f"cannot read the host certificate {path}: {exc}"]
    if summary.expires_soon(pki_profile.utcnow()):
        return [f"the host certificate {path} expires on {summary.not_after:%Y-%m-%d}"]
    return []


# --- the IPsec repair history in the status ----------------------------------------------------


def add_repair_history(peers: list[dict], state_file: str | None = None) -> None:
    """Put each IPsec peer's repairs into its status row (`ipsec_repairs`): count, last repair
    (UTC, ISO 8601) and why. Peers never repaired get nothing."""
    from ovsnet.repair_history import repair_history

    history = repair_history(state_file)
    for peer in peers:
        record = history.get(peer.get("remote_ip", ""))
        if peer.get("ipsec") and record is not None and record.repairs:
            peer["ipsec_repairs"] = {
                "count": record.repairs,
                "last": _utc(record.last_repair),
                "why": record.last_reason,
            }


def repair_lines(peers: list[dict]) -> list[str]:
    """One line per repaired peer, for the human status."""
    return [
        f"IPsec repairs of {p['remote_ip']}: {r['count']}, last {r['last']} ({r['why']})"
        for p in peers
        if (r := p.get("ipsec_repairs"))
    ]


def _utc(stamp: float | None) -> str | None:
    from datetime import UTC, datetime

    if stamp is None:
        return None
    return datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
