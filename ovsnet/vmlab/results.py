"""What the `ovsnet vmlab ...` commands return: results the CLI prints as text or one JSON document.

Place: docs/architecture.md, "Packages and what they own": `ovsnet/vmlab/` (its commands' results).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class LabsResult:
    labs: list[dict[str, Any]]

    def as_json(self) -> Any:
        return self.labs

    def render(self, console) -> None:
        from rich.table import Table

        if not self.labs:
            console.print("no VM lab running")
            return
        for lab in self.labs:
            table = Table(title=f"{lab['name']} (netns {lab['netns']})")
            for column in ("vm", "underlay", "pid", "running", "ssh", "rss MiB"):
                table.add_column(column)
            for vm in lab["vms"]:
                table.add_row(vm["name"], vm["underlay_ip"], str(vm["pid"]), str(vm["running"]),
                              str(vm["ssh"]), str(vm["rss_mib"]))  # fmt: skip
            console.print(table)
            if lab.get("timings"):
                console.print(f"timings: {lab['timings']}")


@dataclass
class ImageResult:
    meta: dict[str, Any]

    def as_json(self) -> Any:
        return self.meta

    def render(self, console) -> None:
        console.print(f"image {self.meta['key']} at {self.meta['directory']}")
        console.print(f"built in {self.meta['build_seconds']} s, {self.meta['used_bytes']} bytes")


@dataclass
class RemovedResult:
    names: list[str]

    def as_json(self) -> Any:
        return {"removed": self.names}

    def render(self, console) -> None:
        console.print("removed " + (", ".join(self.names) or "nothing"))
