"""`ovsnet lab up|status|list|exec|down|prune|demo`: a multi-host lab on this machine (root).

Hosts are network namespaces on one emulated switch, each with its own Open vSwitch (userspace
datapath) and its own dockerd; see ovsnet/lab/.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from ovsnet.cli.output import Settings, emit

lab_app = typer.Typer(
    help="A multi-host lab on this machine: each host a network namespace with its own OVS "
    "and Docker engine (needs root).",
    no_args_is_help=True,
)

LabName = Annotated[
    str | None,
    typer.Option("--name", help="Lab name (env OVSNET_LAB; default: the only lab kept by `up`)."),
]
LabWorkdir = Annotated[
    str | None,
    typer.Option(
        "--workdir", help="Where labs keep state (env OVSNET_LAB_DIR; default /run/ovsnet-lab)."
    ),
]


@lab_app.command("up")
def up(
    ctx: typer.Context,
    hosts: Annotated[int, typer.Option("--hosts", "-n", help="Number of hosts (1-40).")] = 3,
    name: Annotated[str, typer.Option("--name", envvar="OVSNET_LAB", help="Lab name.")] = "ovsnet",
    no_docker: Annotated[
        bool, typer.Option("--no-docker", help="Hosts without a Docker engine.")
    ] = False,
    workdir: LabWorkdir = None,
) -> None:
    """Build a lab and keep it until `ovsnet lab down`."""
    from ovsnet.lab import Lab
    from ovsnet.lab.report import LabStatusResult

    lab = Lab.up(hosts, docker=not no_docker, name=name, workdir=workdir)
    lab.disown()
    emit(ctx.obj, LabStatusResult(lab.status(), hint=True))


@lab_app.command("status")
def status(ctx: typer.Context, name: LabName = None, workdir: LabWorkdir = None) -> None:
    """Hosts, addresses, sockets and whether each daemon is alive."""
    from ovsnet.lab import Lab
    from ovsnet.lab.report import LabStatusResult
    from ovsnet.lab.state import resolve_name

    lab = Lab.load(resolve_name(name, workdir), workdir)
    emit(ctx.obj, LabStatusResult(lab.status()))


@lab_app.command("list")
def list_(ctx: typer.Context, workdir: LabWorkdir = None) -> None:
    """Every lab on this machine, with its owner (a test run, or `kept` for `ovsnet lab up`)."""
    from ovsnet.lab import list_labs
    from ovsnet.lab.report import LabListResult

    emit(ctx.obj, LabListResult([_summary(lab) for lab in list_labs(workdir)]))


def _summary(lab) -> dict:
    owner = lab.state.owner
    if owner is None:
        who = "kept"
    else:
        who = f"pid {owner.pid}" + ("" if owner.alive() else " (gone: leaked)")
    return {
        "name": lab.name,
        "hosts": len(lab.hosts),
        "docker": lab.has_docker,
        "owner": who,
        "created": lab.state.created,
        "directory": str(lab.directory),
    }


@lab_app.command(
    "exec",
    context_settings={"allow_interspersed_args": False, "ignore_unknown_options": True},
)
def exec_(
    host: Annotated[str, typer.Argument(help="Host name: h1, h2, ...")],
    command: Annotated[
        list[str], typer.Argument(metavar="-- CMD...", help="Command to run there.")
    ],
    name: LabName = None,
    workdir: LabWorkdir = None,
) -> None:
    """Run a command on a lab host, with OVSNET_DB and DOCKER_HOST set to that host's.

    Example: `ovsnet lab exec h1 -- ovsnet status`, `ovsnet lab exec h2 -- docker ps`.
    """
    from ovsnet.errors import InvalidInput, NotReady
    from ovsnet.lab import Lab, netns
    from ovsnet.lab.proc import plumbing_env
    from ovsnet.lab.state import resolve_name

    argv = command[1:] if command and command[0] == "--" else command
    if not argv:
        raise InvalidInput("no command given", "write it after `--`, e.g. -- ovsnet status")
    lab = Lab.load(resolve_name(name, workdir), workdir)
    target = lab.host(host)
    if not netns.exists(target.netns):
        raise NotReady(
            f"host {host} of lab {lab.name} is gone (no netns {target.netns})",
            f"remove the lab with `ovsnet lab down --name {lab.name}`",
        )
    env = plumbing_env(target.env)
    # The same ovsnet (and python) as this one comes first on the host's PATH.
    env["PATH"] = f"{os.path.dirname(sys.executable)}:{env['PATH']}"
    os.execvpe("ip", ["ip", "netns", "exec", target.netns, *argv], env)


@lab_app.command("down")
def down(ctx: typer.Context, name: LabName = None, workdir: LabWorkdir = None) -> None:
    """Stop every daemon by PID, delete the namespaces and files. Idempotent."""
    from ovsnet.errors import NotReady
    from ovsnet.lab import Lab
    from ovsnet.lab.report import LabDownResult
    from ovsnet.lab.state import resolve_name

    try:
        lab = Lab.load(resolve_name(name, workdir), workdir)
    except NotReady:
        emit(ctx.obj, LabDownResult([]))  # nothing up: nothing to do
        return
    lab.down()
    emit(ctx.obj, LabDownResult([lab.name]))


@lab_app.command("prune")
def prune(ctx: typer.Context, workdir: LabWorkdir = None) -> None:
    """Remove labs whose owning process is gone (e.g. a test run that was killed)."""
    from ovsnet.lab import prune_labs
    from ovsnet.lab.report import LabDownResult

    emit(ctx.obj, LabDownResult(prune_labs(workdir)))


@lab_app.command("demo")
def demo(
    ctx: typer.Context,
    hosts: Annotated[int, typer.Option("--hosts", "-n", help="Number of hosts (2-40).")] = 3,
    name: Annotated[str, typer.Option("--name", help="Lab name.")] = "demo",
    keep: Annotated[bool, typer.Option("--keep", help="Keep the lab afterwards.")] = False,
) -> None:
    """Show ovsnet at work: a lab, init + full mesh, containers pinging across hosts.

    Builds the lab, runs `ovsnet init` and `ovsnet peer add <all others>` on each host, starts
    a container per host, prints `ovsnet status` of each host and a ping matrix between the
    containers, then removes the lab (unless --keep). Exits 1 if any step or ping fails.
    """
    from rich.console import Console

    from ovsnet.errors import InvalidInput
    from ovsnet.lab.demo import run_demo

    if hosts < 2:
        raise InvalidInput("the demo needs at least 2 hosts", "use --hosts 3")
    settings: Settings = ctx.obj
    console = Console(highlight=False, stderr=settings.json)

    def say(text, markup: bool = True) -> None:
        if not settings.json:
            # Command output keeps its own line width (tables): no re-wrapping.
            console.print(text, markup=markup, soft_wrap=not markup)

    result = run_demo(hosts, name=name, keep=keep, say=say)
    emit(settings, result)
    if not result.ok:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.add_typer(lab_app, name="lab")
