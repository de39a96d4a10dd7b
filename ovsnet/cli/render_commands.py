"""`ovsnet render KIND` and the hidden `ovsnet render-examples` (regenerates cloud-config/)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import click
import typer

from ovsnet.cli.options import DryRun, SupernetOrInventory

# Kept here rather than imported so `ovsnet --help` loads no rendering code; a unit test checks
# that it matches ovsnet.render.KINDS.
KIND_NAMES = (
    "cloud-config", "ignition", "cloud-init", "daemon-json", "docker-dropin", "host-unit",
    "vswitchd-dropin", "agent-unit", "heal-unit", "guard-watch",
)  # fmt: skip


def render_command(
    ctx: typer.Context,
    kind: Annotated[str, typer.Argument(click_type=click.Choice(KIND_NAMES), show_default=False)],
    prefix: Annotated[str | None, typer.Option("--prefix", help="The host's /24 as A.B.C.")] = None,
    subnet: Annotated[
        str | None, typer.Option("--subnet", help="The host's subnet as a CIDR.")
    ] = None,
    supernet: SupernetOrInventory = None,
    underlay_mtu: Annotated[
        int | None, typer.Option("--underlay-mtu", help="Underlay MTU [1500].")
    ] = None,
    peers: Annotated[
        list[str] | None, typer.Option("--peer", help="A peer's underlay IP (repeatable).")
    ] = None,
    ipsec: Annotated[bool, typer.Option("--ipsec", help="Encrypt the tunnels (IPsec).")] = False,
    image: Annotated[
        str | None,
        typer.Option(
            "--image", help="Companion container image (a registry or a local reference)."
        ),
    ] = None,
    image_tarball: Annotated[
        str | None,
        typer.Option(
            "--image-tarball",
            help="Path ON THE HOST of the image saved by `make image` (docker save | gzip): the "
            "unit loads it and runs with --pull=never (no registry needed).",
        ),
    ] = None,
    docker_tls: Annotated[
        bool,
        typer.Option(
            "--docker-tls",
            help="Docker API on tcp://0.0.0.0:2376 with --tlsverify (certificates: pki "
            "issue-docker; daemon-json alone also needs the socket unit: see "
            "cloud-config/README.md).",
        ),
    ] = False,
    docker_tls_dir: Annotated[
        str | None,
        typer.Option(
            "--docker-tls-dir",
            help="Host folder of ca.pem, cert.pem, key.pem (default /etc/docker/tls).",
        ),
    ] = None,
    docker_tls_embed: Annotated[
        Path | None,
        typer.Option(
            "--docker-tls-embed",
            help="Opt-in, ignition/cloud-init: embed the server cert and KEY from this folder "
            "(docker/HOST/server, or the PKI dir with --inventory); needs -o (written 0600).",
        ),
    ] = None,
    ipsec_psk_embed: Annotated[
        Path | None,
        typer.Option(
            "--ipsec-psk-embed",
            help="Opt-in, ignition/cloud-init/cloud-config: embed the PSK in this file (mode "
            "0600) for `ipsec psk set` at first boot; needs -o (written 0600). See README: who "
            "can read it.",
        ),
    ] = None,
    ipsec_pki_embed: Annotated[
        Path | None,
        typer.Option(
            "--ipsec-pki-embed",
            help="Opt-in, like --ipsec-psk-embed: embed the host's certificate, KEY and the CA "
            "from this `ovsnet pki` folder (needs --inventory: peer CNs are its host names).",
        ),
    ] = None,
    inventory: Annotated[
        Path | None, typer.Option("--inventory", help="Fleet inventory (hosts.yaml).")
    ] = None,
    host: Annotated[str | None, typer.Option("--host", help="Render this inventory host.")] = None,
    all_hosts: Annotated[
        bool, typer.Option("--all", help="Render every inventory host (-o DIR).")
    ] = False,
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Write here, not to stdout.")
    ] = None,
    dry_run: DryRun = False,
) -> None:
    """Render first-boot configuration for a host: user-data, Ignition, daemon.json, drop-in."""
    from ovsnet.cli.output import emit
    from ovsnet.render.service import RenderRequest, run_render

    result = run_render(
        RenderRequest(
            kind=kind,
            prefix=prefix,
            subnet=subnet,
            supernet=supernet,
            underlay_mtu=underlay_mtu,
            peers=tuple(peers or ()),
            ipsec=ipsec,
            image=image,
            image_tarball=image_tarball,
            docker_tls=docker_tls,
            docker_tls_dir=docker_tls_dir,
            docker_tls_embed=docker_tls_embed,
            ipsec_psk_embed=ipsec_psk_embed,
            ipsec_pki_embed=ipsec_pki_embed,
            inventory=inventory,
            host=host,
            all_hosts=all_hosts,
            output=output,
            dry_run=dry_run,
        )
    )
    if result.text is not None and not ctx.obj.json:
        sys.stdout.write(result.text)  # the document itself, byte for byte
        return
    emit(ctx.obj, result)


def render_examples_command(
    ctx: typer.Context,
    folder: Annotated[Path, typer.Argument(help="The examples folder.")] = Path("cloud-config"),
    check: Annotated[
        bool, typer.Option("--check", help="Only report stale files (exit 1).")
    ] = False,
) -> None:
    """Regenerate the example inventories and rendered files (`make render-examples`)."""
    from ovsnet.cli.output import emit
    from ovsnet.render.service import run_render_examples

    emit(ctx.obj, run_render_examples(folder, check=check))


def register(app: typer.Typer) -> None:
    app.command("render")(render_command)
    app.command("render-examples", hidden=True)(render_examples_command)
