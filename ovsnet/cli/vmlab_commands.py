"""`ovsnet vmlab image|up|exec|status|down`: the real-kernel lab (Debian VMs under qemu)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from ovsnet.cli.output import emit
from ovsnet.errors import InvalidInput
from ovsnet.vmlab.results import ImageResult, LabsResult, RemovedResult

vmlab_app = typer.Typer(
    help="Real-kernel lab: Debian 12 VMs under qemu (kernel OVS datapath, GRE, IPsec, Docker).",
    no_args_is_help=True,
)

# `exec` and `sync` pick the lab the same way (`status` and `down` have their own wording).
LabName = Annotated[
    str | None, typer.Option("--name", help="Lab name (default: the only lab running).")
]


@vmlab_app.command("image")
def image(ctx: typer.Context) -> None:
    """Build the VM image if it is not cached yet (about 2 minutes cold)."""
    from ovsnet.vmlab.image import ensure_image

    built = ensure_image()
    emit(ctx.obj, ImageResult({"directory": str(built.directory), **built.meta()}))


@vmlab_app.command("up")
def up(
    ctx: typer.Context,
    vms: Annotated[int, typer.Option("--vms", help="How many VMs to boot.")] = 3,
    name: Annotated[str | None, typer.Option("--name", help="Lab name (default: random).")] = None,
    memory: Annotated[int, typer.Option("--memory", help="MiB of RAM per VM.")] = 1024,
    install: Annotated[
        bool, typer.Option("--install/--no-install", help="Install this ovsnet.")
    ] = True,
    inventory: Annotated[
        Path | None,
        typer.Option(
            "--inventory",
            help="Boot one VM per host of this inventory (its name and TEST-NET address), each "
            "with only its `ovsnet render cloud-init` user-data (NoCloud seed); --vms and "
            "--install are then ignored.",
        ),
    ] = None,
    psk_embed: Annotated[
        Path | None,
        typer.Option(
            "--ipsec-psk-embed",
            help="With --inventory: embed this PSK file (render's opt-in of the same name).",
        ),
    ] = None,
    pki_embed: Annotated[
        Path | None,
        typer.Option(
            "--ipsec-pki-embed",
            help="With --inventory: embed each host's certificate, "
            "key and CA from this `ovsnet pki` folder.",
        ),
    ] = None,
    image_archive: Annotated[
        Path | None,
        typer.Option(
            "--image-archive",
            help="With --inventory: the companion image archive (`make image`, docker save), "
            "preloaded into each VM's Docker (no registry is reachable).",
        ),
    ] = None,
    docker_load: Annotated[
        bool,
        typer.Option(
            "--docker-load",
            help="With --image-archive: attach the archive on a disk and render the user-data "
            "with --image-tarball, so each VM's companion unit runs `docker load` (minutes under "
            "emulation), instead of preloading the image into the VMs' Docker.",
        ),
    ] = False,
) -> None:
    """Boot VMs on a private underlay and install this checkout's ovsnet in them, or boot an
    inventory's hosts from their rendered user-data alone (--inventory)."""
    from ovsnet.vmlab.lab import Seeding, VmLab, require_root

    require_root()
    if inventory is None and (psk_embed or pki_embed or image_archive):
        raise InvalidInput("--ipsec-psk-embed, --ipsec-pki-embed and --image-archive need "
                           "--inventory", "add --inventory FILE")  # fmt: skip
    seeding = None
    if inventory is not None:
        seeding = Seeding(
            inventory=inventory,
            psk_file=psk_embed,
            pki_dir=pki_embed,
            image_archive=image_archive,
            preload=not docker_load,
        )  # fmt: skip
    lab = VmLab.up(vms=vms, name=name, memory_mib=memory, install_ovsnet=install,
                   seeding=seeding)  # fmt: skip
    emit(ctx.obj, LabsResult([lab.status()]))


@vmlab_app.command(
    "exec", context_settings={"allow_extra_args": True, "ignore_unknown_options": True}
)
def exec_(
    ctx: typer.Context,
    vm: Annotated[str, typer.Argument(help="VM name (vm1) or underlay address.")],
    command: Annotated[list[str], typer.Argument(help="Command to run in the VM (after --).")],
    name: LabName = None,
) -> int:
    """Run a command in a VM as root; prints its output and exits with its exit code."""
    lab = _lab(name)
    proc = lab.vm(vm).ssh(command if len(command) > 1 else command[0], timeout=3600)
    sys.stdout.write(proc.stdout)
    sys.stderr.write(proc.stderr)
    return proc.returncode


@vmlab_app.command("sync")
def sync(ctx: typer.Context, name: LabName = None) -> None:
    """Copy this checkout's ovsnet package into the running VMs (for developers)."""
    lab = _lab(name)
    lab.sync_ovsnet()
    emit(ctx.obj, LabsResult([lab.status()]))


@vmlab_app.command("status")
def status(ctx: typer.Context, name: Annotated[str | None, typer.Option("--name")] = None) -> None:
    """Show the running labs: VMs, PIDs, ssh reachability, memory."""
    from ovsnet.vmlab.lab import VmLab

    names = [name] if name else VmLab.names()
    emit(ctx.obj, LabsResult([VmLab.load(n).status() for n in names]))


@vmlab_app.command("down")
def down(
    ctx: typer.Context,
    name: Annotated[
        str | None, typer.Argument(help="Lab name (default: the only lab running).")
    ] = None,
    all_labs: Annotated[bool, typer.Option("--all", help="Remove every VM lab.")] = False,
) -> None:
    """Stop the VMs and remove the lab's namespace, taps and disks."""
    from ovsnet.vmlab.lab import VmLab

    names = VmLab.names() if all_labs else [_lab(name).name]
    for each in names:
        VmLab.load(each).down()
    emit(ctx.obj, RemovedResult(names))


def _lab(name: str | None):
    from ovsnet.vmlab.lab import VmLab

    if name:
        return VmLab.load(name)
    names = VmLab.names()
    if len(names) != 1:
        raise InvalidInput(
            "no VM lab running" if not names else f"{len(names)} VM labs running",
            "start one with `ovsnet vmlab up`" if not names else "pick one with --name",
        )
    return VmLab.load(names[0])


def register(app: typer.Typer) -> None:
    app.add_typer(vmlab_app, name="vmlab")
