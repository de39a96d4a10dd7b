"""`ovsnet ipsec ...`: the host's IPsec authentication and plaintext policy."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ovsnet.cli.locking import changing_host
from ovsnet.cli.options import DryRun
from ovsnet.cli.output import emit

ipsec_app = typer.Typer(
    help="IPsec settings of this host (one authentication method for all its tunnels).",
    no_args_is_help=True,
)
psk_app = typer.Typer(help="The host's default pre-shared key file.", no_args_is_help=True)
plaintext_app = typer.Typer(
    help="Drop (default with IPsec peers) or allow unencrypted tunnel traffic.",
    no_args_is_help=True,
)
ipsec_app.add_typer(psk_app, name="psk")
ipsec_app.add_typer(plaintext_app, name="plaintext")


@psk_app.command("set")
def psk_set(
    ctx: typer.Context,
    file: Annotated[
        Path, typer.Option("--file", help="File holding the PSK on one line (mode 0600).")
    ],
    dry_run: DryRun = False,
) -> None:
    """Make FILE the PSK `peer add --ipsec` uses when no --psk-file is given (>= 32 characters).

    OVSDB keeps the file's path, not the key: keep the file there (e.g. /etc/ovsnet/psk)."""
    from ovsnet.ovsdb.client import OvsDb
    from ovsnet.services.ipsec import PskRequest, set_host_psk

    with changing_host(ctx.obj, "ipsec psk set", dry_run), OvsDb(ctx.obj.db) as db:
        emit(ctx.obj, set_host_psk(db, PskRequest(file=file, dry_run=dry_run)))


@psk_app.command("unset")
def psk_unset(ctx: typer.Context, dry_run: DryRun = False) -> None:
    """Forget the host's default PSK (tunnels keep theirs)."""
    from ovsnet.ovsdb.client import OvsDb
    from ovsnet.services.ipsec import PskRequest, set_host_psk

    with changing_host(ctx.obj, "ipsec psk unset", dry_run), OvsDb(ctx.obj.db) as db:
        emit(ctx.obj, set_host_psk(db, PskRequest(file=None, dry_run=dry_run)))


@ipsec_app.command("cert")
def cert(
    ctx: typer.Context,
    cert_file: Annotated[
        str | None, typer.Option("--cert", help="This host's certificate (PEM, RSA key).")
    ] = None,
    key_file: Annotated[
        str | None, typer.Option("--key", help="Its private key (PEM, mode 0600).")
    ] = None,
    ca_file: Annotated[str | None, typer.Option("--ca", help="The CA certificate.")] = None,
    unset: Annotated[
        bool, typer.Option("--unset", help="Remove the certificate settings.")
    ] = False,
    cacerts: Annotated[
        Path | None,
        typer.Option(
            "--strongswan-cacerts",
            help="Also copy the CA here if the directory exists (strongSwan loads CAs from it).",
        ),
    ] = Path("/etc/ipsec.d/cacerts"),
    no_cacerts: Annotated[
        bool, typer.Option("--no-strongswan-cacerts", help="Do not copy the CA.")
    ] = False,
    dry_run: DryRun = False,
) -> None:
    """Authenticate this host's tunnels with certificates (sets other_config:certificate...).

    Run it again after a renewal at the same paths: strongSwan then loads the new files
    (established SAs stay up)."""
    from ovsnet.ovsdb.client import OvsDb
    from ovsnet.services.ipsec import CertRequest, set_host_certificate

    request = CertRequest(
        cert=cert_file,
        key=key_file,
        ca=ca_file,
        unset=unset,
        strongswan_cacerts=None if no_cacerts else cacerts,
        dry_run=dry_run,
    )
    with changing_host(ctx.obj, "ipsec cert", dry_run), OvsDb(ctx.obj.db) as db:
        emit(ctx.obj, set_host_certificate(db, request))


@ipsec_app.command("rotate-psk")
def rotate_psk(
    ctx: typer.Context,
    stage: Annotated[
        str,
        typer.Option(
            "--stage",
            help="accept (every host first), switch (every host next), finish (every host last).",
        ),
    ],
    psk_file: Annotated[
        Path, typer.Option("--psk-file", help="File holding the new PSK on one line (mode 0600).")
    ],
    vici_socket: Annotated[
        str, typer.Option("--vici-socket", help="strongSwan's vici socket.")
    ] = "/var/run/charon.vici",
    dry_run: DryRun = False,
) -> None:
    """Change the PSK of this host's tunnels in use, in three fleet-wide stages.

    Run each stage on every host before the next stage starts anywhere; each pair then drops
    for one IKE exchange at each end's switch, and never sends plaintext."""
    from ovsnet.ovsdb.client import OvsDb
    from ovsnet.services.psk_rotation import RotationRequest
    from ovsnet.services.psk_rotation import rotate_psk as run

    request = RotationRequest(stage, psk_file, dry_run=dry_run, vici_socket=vici_socket)
    with changing_host(ctx.obj, "ipsec rotate-psk", dry_run), OvsDb(ctx.obj.db) as db:
        emit(ctx.obj, run(db, request))


def _plaintext(ctx: typer.Context, allow: bool, dry_run: bool) -> None:
    from ovsnet.ovsdb.client import OvsDb
    from ovsnet.services.ipsec import PlaintextRequest, set_plaintext_policy

    holder = "ipsec plaintext " + ("allow" if allow else "drop")
    with changing_host(ctx.obj, holder, dry_run), OvsDb(ctx.obj.db) as db:
        emit(ctx.obj, set_plaintext_policy(db, PlaintextRequest(allow=allow, dry_run=dry_run)))


@plaintext_app.command("drop")
def plaintext_drop(ctx: typer.Context, dry_run: DryRun = False) -> None:
    """Drop tunnel traffic that leaves unencrypted (other_config:ipsec_skb_mark=0/1)."""
    _plaintext(ctx, False, dry_run)


@plaintext_app.command("allow")
def plaintext_allow(ctx: typer.Context, dry_run: DryRun = False) -> None:
    """Let tunnel traffic leave unencrypted if IPsec is not up (removes ipsec_skb_mark)."""
    _plaintext(ctx, True, dry_run)


@plaintext_app.command("restore")
def plaintext_restore(ctx: typer.Context, dry_run: DryRun = False) -> None:
    """Put the plaintext guard back as OVSDB's IPsec tunnels need it (at boot, before
    ovs-vswitchd starts: `ovsnet render vswitchd-dropin`). Reads OVSDB only."""
    from ovsnet.ovsdb.client import OvsDb
    from ovsnet.services.ipsec import RestoreRequest, restore_plaintext_guard

    with changing_host(ctx.obj, "ipsec plaintext restore", dry_run), OvsDb(ctx.obj.db) as db:
        emit(ctx.obj, restore_plaintext_guard(db, RestoreRequest(dry_run=dry_run)))


RunDir = Annotated[
    str | None,
    typer.Option("--rundir", help="OVS run directory (env OVS_RUNDIR; /var/run/openvswitch)."),
]
StateFile = Annotated[
    str | None,
    typer.Option(
        "--state-file",
        help="The repair history status reads (env OVSNET_IPSEC_REPAIRS; "
        "/run/ovsnet/ipsec-repairs.json).",
    ),
]


@plaintext_app.command("watch")
def plaintext_watch(ctx: typer.Context) -> None:
    """Keep the plaintext guard in place until stopped: re-install it within a second when a
    firewall reload removes it (`nft flush ruleset`). Run by `ovsnet render guard-watch`'s unit.
    Logs each repair to stderr; exits 0 on SIGTERM."""
    import contextlib
    import logging
    import signal
    import sys

    from ovsnet.ovsdb.client import OvsDb
    from ovsnet.services.guard_watch import watch

    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="ovsnet plaintext watch: %(message)s"
    )
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with OvsDb(ctx.obj.db) as db, contextlib.suppress(KeyboardInterrupt):
        watch(db)


@ipsec_app.command("crl")
def crl(
    ctx: typer.Context,
    crl_file: Annotated[Path, typer.Argument(help="The IKE CA's CRL (`ovsnet pki revoke`).")],
    ca_file: Annotated[
        Path | None,
        typer.Option("--ca", help="The IKE CA (default: the copy in strongSwan's cacerts)."),
    ] = None,
    dry_run: DryRun = False,
) -> None:
    """Make strongSwan refuse revoked host certificates: install the IKE CA's CRL."""
    from ovsnet.services.ipsec_crl import CrlRequest, install_ike_crl

    emit(ctx.obj, install_ike_crl(CrlRequest(crl=crl_file, ca=ca_file, dry_run=dry_run)))


@ipsec_app.command("repair")
def repair(
    ctx: typer.Context,
    peers: Annotated[
        list[str] | None,
        typer.Argument(help="Peer addresses (default: every IPsec peer not established)."),
    ] = None,
    restart_daemon: Annotated[
        bool,
        typer.Option(
            "--restart-daemon",
            help="Restart strongSwan instead: every IPsec peer of this host re-negotiates.",
        ),
    ] = False,
    rundir: RunDir = None,
    state_file: StateFile = None,
    dry_run: DryRun = False,
) -> None:
    """Re-negotiate IPsec with these peers from a clean kernel state (their SAs and tunnel
    policies deleted, their strongSwan connections initiated again). Touches only ovsnet's
    tunnels, and runs only behind the plaintext guard."""
    from ovsnet.ovsdb.client import OvsDb
    from ovsnet.services.ipsec_repair import RepairRequest, repair_peers

    request = RepairRequest(
        peers=tuple(peers or ()),
        restart_daemon=restart_daemon,
        run_dir=rundir,
        state_file=state_file,
        dry_run=dry_run,
    )
    with changing_host(ctx.obj, "ipsec repair", dry_run), OvsDb(ctx.obj.db) as db:
        emit(ctx.obj, repair_peers(db, request))


@ipsec_app.command("heal")
def heal(
    ctx: typer.Context,
    watch: Annotated[
        bool, typer.Option("--watch", help="Keep watching (for a systemd unit) instead of once.")
    ] = False,
    grace: Annotated[
        float | None,
        typer.Option(
            "--grace",
            min=0,
            help="Seconds a peer may stay not established before it is repaired "
            "(env OVSNET_IPSEC_GRACE; 60).",
        ),
    ] = None,
    max_backoff: Annotated[
        float,
        typer.Option("--max-backoff", min=1, help="Longest wait between repairs of one peer."),
    ] = 600.0,
    ike_only: Annotated[
        bool,
        typer.Option(
            "--ike-only",
            help="Count a peer as established once its IKE SA is up (a kernel without ESP).",
        ),
    ] = False,
    rundir: RunDir = None,
    state_file: StateFile = None,
) -> None:
    """Repair IPsec peers that stay not established: each one alone, after a grace period,
    with a doubling delay between repairs of the same peer, never without the plaintext guard."""
    from ovsnet.services.ipsec_heal import HealOptions, heal_once, policy_from_env, watch_forever

    overrides = {"max_backoff": max_backoff, "require_child_sa": not ike_only}
    if grace is not None:
        overrides["grace"] = grace
    options = HealOptions(policy_from_env(**overrides), rundir, state_file)
    if watch:
        raise typer.Exit(watch_forever(ctx.obj.db, options))
    from ovsnet.ovsdb.client import OvsDb

    with changing_host(ctx.obj, "ipsec heal"), OvsDb(ctx.obj.db) as db:
        emit(ctx.obj, heal_once(db, options))


@ipsec_app.command("show")
def show(ctx: typer.Context, rundir: RunDir = None) -> None:
    """ovs-monitor-ipsec's view of each tunnel: configured, invalid, established."""
    from ovsnet.services.ipsec import show_monitor

    emit(ctx.obj, show_monitor(rundir))


def register(app: typer.Typer) -> None:
    app.add_typer(ipsec_app, name="ipsec")
