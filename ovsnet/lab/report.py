"""What `ovsnet lab` commands print: rich tables for people, one JSON document for `--json`."""

from __future__ import annotations

import time
from dataclasses import dataclass


def _pid_cell(pid: int | None) -> str:
    return f"[green]{pid}[/]" if pid else "[red]down[/]"


@dataclass
class LabStatusResult:
    status: dict
    hint: bool = False  # after `up`: say what to try next

    def as_json(self) -> dict:
        return self.status

    def render(self, console) -> None:
        from rich.table import Table

        s = self.status
        docker = "with Docker" if s["docker"] else "without Docker"
        table = Table(
            title=f"lab {s['name']} ({len(s['hosts'])} hosts, {docker})", title_justify="left"
        )
        for column in (
            "host",
            "netns",
            "underlay",
            "subnet",
            "ovsdb-server",
            "ovs-vswitchd",
            "dockerd",
        ):
            table.add_column(column)
        table.add_column("db (--db)", overflow="fold")
        for host in s["hosts"]:
            pids = host["pids"]
            table.add_row(
                host["name"],
                host["netns"] if host["netns_exists"] else f"[red]{host['netns']} (gone)[/]",
                host["underlay_ip"],
                host["subnet"],
                _pid_cell(pids.get("ovsdb-server")),
                _pid_cell(pids.get("ovs-vswitchd")),
                _pid_cell(pids.get("dockerd")) if s["docker"] else "-",
                host["db"],
            )
        console.print(table)
        if self.hint:
            first = s["hosts"][0]["name"]
            name = s["name"]
            console.print(
                f"next: `ovsnet lab exec --name {name} {first} -- ovsnet init --prefix "
                f"{s['hosts'][0]['prefix']} --datapath netdev`, "
                f"`ovsnet lab status --name {name}`, `ovsnet lab down --name {name}`"
            )


@dataclass
class LabListResult:
    labs: list[dict]

    def as_json(self) -> list[dict]:
        return self.labs

    def render(self, console) -> None:
        from rich.table import Table

        if not self.labs:
            console.print("no labs")
            return
        table = Table(title=f"{len(self.labs)} lab(s)", title_justify="left")
        for column in ("name", "hosts", "docker", "owner", "age", "directory"):
            table.add_column(column)
        now = time.time()
        for lab in self.labs:
            table.add_row(
                lab["name"],
                str(lab["hosts"]),
                "yes" if lab["docker"] else "no",
                lab["owner"],
                f"{now - lab['created']:.0f} s",
                lab["directory"],
            )
        console.print(table)


@dataclass
class LabDownResult:
    labs: list[str]

    def as_json(self) -> dict:
        return {"removed": self.labs}

    def render(self, console) -> None:
        console.print(f"removed lab {', '.join(self.labs)}" if self.labs else "nothing to do")


def ping_matrix(pings, containers: dict[str, str]):
    """Rows: from which host's container; columns: to which; cells: answered or not."""
    from rich.table import Table

    hosts = list(containers)
    results = {(p.source, p.target): p.ok for p in pings}
    table = Table(title="ping: from row to column", title_justify="left")
    table.add_column("from \\ to")
    for host in hosts:
        table.add_column(f"{host} {containers[host]}", justify="center")
    for source in hosts:
        cells = []
        for target in hosts:
            ok = results.get((source, target))
            cells.append("-" if ok is None else "[green]ok[/]" if ok else "[red]FAIL[/]")
        table.add_row(f"{source} {containers[source]}", *cells)
    return table
