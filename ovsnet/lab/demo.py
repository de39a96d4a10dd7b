"""`ovsnet lab demo`: the README's main job, on a lab built for the occasion.

Up N hosts, `ovsnet init` and a full `peer add` mesh on each, one container per host, `ovsnet
status` of each host, then a ping from every container to every other host's container.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from ovsnet.lab.container import LabContainer
from ovsnet.lab.lab import Lab
from ovsnet.lab.report import ping_matrix

MESH_READY_TIMEOUT = 20.0

# say(text, markup=True): progress for people; command output is printed with markup=False.
Say = Callable[..., None]


def _quiet(text: str, markup: bool = True) -> None:
    pass


@dataclass
class Step:
    host: str
    command: str
    exit_code: int
    output: str

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


@dataclass
class Ping:
    source: str  # host name
    source_ip: str
    target: str
    target_ip: str
    ok: bool


@dataclass
class DemoResult:
    lab: str
    kept: bool = False
    steps: list[Step] = field(default_factory=list)
    containers: dict[str, str] = field(default_factory=dict)  # host -> container IP
    pings: list[Ping] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return (
            self.error is None
            and all(s.ok for s in self.steps)
            and bool(self.pings)
            and all(p.ok for p in self.pings)
        )

    def as_json(self) -> dict:
        return {
            "lab": self.lab,
            "ok": self.ok,
            "kept": self.kept,
            "error": self.error,
            "steps": [vars(s) for s in self.steps],
            "containers": self.containers,
            "pings": [vars(p) for p in self.pings],
            "timings": {k: round(v, 2) for k, v in self.timings.items()},
        }

    def render(self, console) -> None:
        failed = [p for p in self.pings if not p.ok]
        for step in self.steps:
            if not step.ok:
                console.print(f"[red]{step.host}: `{step.command}` exited {step.exit_code}[/]")
        if self.error:
            console.print(f"[red]demo failed: {self.error}[/]")
        elif self.ok:
            console.print(f"[green]all {len(self.pings)} cross-host pings answered[/]")
        else:
            console.print(f"[red]{len(failed)} of {len(self.pings)} cross-host pings failed[/]")
        console.print("timings: " + ", ".join(f"{k} {v:.1f} s" for k, v in self.timings.items()))
        if self.kept:
            console.print(
                f"lab {self.lab!r} kept: `ovsnet lab exec --name {self.lab} h1 -- "
                f"ovsnet status`, then `ovsnet lab down --name {self.lab}`"
            )


def run_demo(
    hosts: int = 3, *, name: str = "demo", keep: bool = False, say: Say = _quiet
) -> DemoResult:
    """Run the whole demo; tear the lab down at the end unless `keep`."""
    result = DemoResult(lab=name)
    clock = time.monotonic()
    say(f"[bold]Building lab {name!r}: {hosts} hosts, each with its own OVS and dockerd[/]")
    lab = Lab.up(hosts, name=name)
    result.timings["lab_up"] = time.monotonic() - clock
    try:
        _mesh(lab, result, say)
    except Exception as exc:  # noqa: BLE001 - the demo reports any failure, then cleans up
        result.error = str(exc)
    finally:
        if keep:
            lab.disown()
            result.kept = True
        else:
            say("[bold]Tearing the lab down[/]")
            clock = time.monotonic()
            lab.down()
            result.timings["lab_down"] = time.monotonic() - clock
    return result


def _mesh(lab: Lab, result: DemoResult, say: Say) -> None:
    if not _on_each(
        lab, result, say, lambda h: ("init", "--prefix", h.prefix, "--datapath", "netdev")
    ):
        return
    peers = {h.name: [o.underlay_ip for o in lab.hosts if o is not h] for h in lab.hosts}
    if not _on_each(lab, result, say, lambda h: ("peer", "add", *peers[h.name])):
        return
    containers = _start_containers(lab, result, say)
    _wait_mesh_ready(lab, say)
    _on_each(lab, result, say, lambda h: ("status",))
    say("[bold]Pinging every other host's container from each container[/]")
    clock = time.monotonic()
    result.pings = _ping_all(containers)
    result.timings["pings"] = time.monotonic() - clock
    say(ping_matrix(result.pings, result.containers))


def _on_each(lab: Lab, result: DemoResult, say: Say, args_for) -> bool:
    """Run one ovsnet command on every host at once; print the outputs in host order."""
    with ThreadPoolExecutor(max_workers=len(lab.hosts)) as pool:
        runs = list(pool.map(lambda h: (h, args_for(h), h.ovsnet(*args_for(h))), lab.hosts))
    for host, args, done in runs:
        command = "ovsnet " + " ".join(args)
        say(f"[bold cyan]{host.name}$ {command}[/]")
        output = (done.stdout + done.stderr).rstrip()
        if output:
            say(output, markup=False)
        result.steps.append(Step(host.name, command, done.returncode, output))
    return all(done.returncode == 0 for _, _, done in runs)


def _start_containers(lab: Lab, result: DemoResult, say: Say) -> dict[str, LabContainer]:
    clock = time.monotonic()
    with ThreadPoolExecutor(max_workers=len(lab.hosts)) as pool:
        started = list(pool.map(lambda h: h.start_container(), lab.hosts))
    result.timings["containers"] = time.monotonic() - clock
    containers = {c.host.name: c for c in started}
    result.containers = {name: c.ip for name, c in containers.items()}
    listing = ", ".join(f"{c.name} {c.ip}" for c in started)
    say(f"[bold]Started one container per host:[/] {listing}")
    return containers


def _wait_mesh_ready(lab: Lab, say: Say) -> None:
    """Tunnels forward only once BFD is up: wait (bounded) until every host reports healthy."""
    deadline = time.monotonic() + MESH_READY_TIMEOUT
    pending = list(lab.hosts)
    while pending and time.monotonic() < deadline:
        pending = [h for h in pending if h.ovsnet("status", "--check-peers").returncode != 0]
        if pending:
            time.sleep(0.5)
    if pending:
        say(f"[yellow]not every tunnel is up yet on {', '.join(h.name for h in pending)}[/]")


def _ping_all(containers: dict[str, LabContainer]) -> list[Ping]:
    pairs = [(a, b) for a in containers.values() for b in containers.values() if a is not b]
    with ThreadPoolExecutor(max_workers=min(8, len(pairs) or 1)) as pool:
        answers = list(pool.map(lambda pair: pair[0].ping(pair[1].ip), pairs))
    return [
        Ping(a.host.name, a.ip, b.host.name, b.ip, ok)
        for (a, b), ok in zip(pairs, answers, strict=True)
    ]
