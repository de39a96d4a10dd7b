"""`ovsnet cluster status` and `release`: what etcd knows about every host, and freeing one."""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Address
from typing import Any

from ovsnet.cluster.claims import ClaimView
from ovsnet.cluster.keys import ClusterKeys, check_name, role_name
from ovsnet.cluster.plan import subnet_conflicts, underlay_conflicts
from ovsnet.cluster.records import BadRecord, HostRecord, claim_value, parse_host_entry
from ovsnet.etcd.client import Etcd
from ovsnet.report import ChangeReport
from ovsnet.validate import printable


@dataclass(frozen=True)
class ClusterStatusResult:
    """`ovsnet cluster status`: every host's row, what looks wrong, the values left out."""

    hosts: list[dict]
    problems: list[str] = field(default_factory=list)
    bad_records: list[dict] = field(default_factory=list)  # {"key", "reason"}: left out

    def as_json(self) -> Any:
        return {"hosts": self.hosts, "problems": self.problems, "bad_records": self.bad_records}

    def render(self, console) -> None:
        from rich.markup import escape
        from rich.table import Table

        table = Table(box=None, pad_edge=False)
        for column in ("host", "state", "subnet", "underlay", "type", "ttl left", "last seen"):
            table.add_column(column)
        for h in self.hosts:
            table.add_row(
                h["name"],
                h["state"],
                h["subnet"] or "-",
                h["underlay_ip"] or "-",
                h["tunnel_type"] or "-",
                f"{h['ttl_left']} s" if h["ttl_left"] is not None else "-",
                f"{h['last_seen_s_ago']} s ago" if h["last_seen_s_ago"] is not None else "-",
            )
        console.print(table)
        for problem in self.problems:
            console.print(f"[yellow]warning:[/yellow] {escape(problem)}")
        if self.bad_records:
            console.print(f"bad records ({len(self.bad_records)}, left out by every agent):")
            for bad in self.bad_records:
                console.print(f"  {escape(bad['key'])}: {escape(bad['reason'])}")


def cluster_status(etcd: Etcd, keys: ClusterKeys) -> ClusterStatusResult:
    snaps = etcd.read_many(keys.hosts, keys.subnets, keys.last_subnets)
    view = ClaimView.parse(keys, snaps[keys.subnets].items, snaps[keys.last_subnets].items)
    records, leases, bad = {}, {}, []
    for key, item in sorted(snaps[keys.hosts].items.items()):
        try:
            record = parse_host_entry(keys, key, item.value)
        except BadRecord as exc:
            bad.append({"key": printable(key), "reason": printable(str(exc))})
            continue
        records[record.name] = record
        leases[record.name] = item.lease
    bad += [{"key": printable(k), "reason": printable(r)} for k, r in view.bad.items()]
    problems = subnet_conflicts(records) + underlay_conflicts(records)
    rows = [_live_row(etcd, records[n], leases[n]) for n in records]
    for name, subnet in view.memory.items():
        if name not in records:
            holder = view.holders.get(subnet)
            rows.append(_gone_row(name, subnet, holder.host if holder else None))
    for subnet, holder in view.holders.items():
        if holder.host not in records:
            problems.append(f"{subnet} is claimed by {holder.host}, which has no record")
    rows.sort(key=lambda r: (r["state"] != "live", IPv4Address(r["subnet_start"])))
    for row in rows:
        del row["subnet_start"]
    return ClusterStatusResult(rows, problems, bad)


def _live_row(etcd: Etcd, record: HostRecord, lease: int) -> dict:
    left, granted = etcd.lease_ttl(lease) if lease else (-1, 0)
    return {
        **record.as_json(),
        "state": "live",
        "lease": lease,
        "ttl_left": left if left >= 0 else None,
        # etcd resets the TTL on every keepalive: what has run down since is the time since.
        "last_seen_s_ago": granted - left if left >= 0 else None,
        "subnet_start": str(record.subnet.network_address),
    }


def _gone_row(name: str, subnet, holder: str | None) -> dict:
    note = "free" if holder is None else f"now held by {holder}"
    return {
        "name": name,
        "state": "gone",
        "subnet": str(subnet),
        "subnet_note": note,
        "underlay_ip": None,
        "tunnel_type": None,
        "ipsec": None,
        "lease": None,
        "ttl_left": None,
        "last_seen_s_ago": None,
        "subnet_start": str(subnet.network_address),
    }


def release_host(etcd: Etcd, keys: ClusterKeys, name: str, dry_run: bool = False) -> ChangeReport:
    """Delete the host's record, its subnet claims and its last-subnet memory."""
    check_name(name)
    snaps = etcd.read_many(keys.hosts, keys.subnets, keys.last_subnets)
    view = ClaimView.parse(keys, snaps[keys.subnets].items, snaps[keys.last_subnets].items)
    steps, freed = [], []
    for subnet in view.held_by(name):
        steps.append(f"free subnet {subnet}")
        freed.append(subnet)
        if not dry_run:
            etcd.delete_if_value(keys.subnet(subnet), claim_value(name).encode())
    for key, what in ((keys.host(name), "record"), (keys.last_subnet(name), "last-subnet memory")):
        if key in snaps[keys.hosts].items or key in snaps[keys.last_subnets].items:
            steps.append(f"delete {what} of {name}")
            if not dry_run:
                etcd.delete(key)
    return ChangeReport(
        "cluster release",
        steps,
        dry_run=dry_run,
        details={"host": name, "subnets": [str(s) for s in freed]},
    )


def grant_host(etcd: Etcd, keys: ClusterKeys, name: str) -> ChangeReport:
    """Create the etcd user NAME and its role: write only its own keys and subnet claims,
    read the rest of ovsnet's prefix."""
    role = role_name(name)
    steps = etcd.ensure_host_role(name, role, keys.host_permissions(name))
    return ChangeReport("cluster grant", steps, details={"host": name, "role": role})
