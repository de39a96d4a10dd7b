"""`ovsnet pki ...`: one CA per purpose, certificates that work only for their purpose, CRLs."""

from __future__ import annotations

from typing import Annotated

import typer

from ovsnet.cli.options import DryRun
from ovsnet.cli.output import emit

pki_app = typer.Typer(
    help="ovsnet's private CAs: certificates for IPsec (IKE), the Docker API and etcd, one CA "
    "per purpose.",
    no_args_is_help=True,
)

_DIR_HELP = "PKI directory (default /var/lib/ovsnet/pki)."
_PURPOSES = "ike, docker-server, docker-client, etcd-server or etcd-client"


DirOption = Annotated[str | None, typer.Option("--dir", envvar="OVSNET_PKI_DIR", help=_DIR_HELP)]
Renew = Annotated[bool, typer.Option("--renew", help="Issue new keys and certificates.")]
PurposeOption = Annotated[str, typer.Option("--purpose", help=f"One of {_PURPOSES}.")]
Ips = Annotated[list[str] | None, typer.Option("--ip", help="SAN IP address (repeatable).")]
Dns = Annotated[list[str] | None, typer.Option("--dns", help="Extra SAN DNS name (repeatable).")]
RsaOption = Annotated[bool, typer.Option("--rsa", help="RSA 3072 instead of ECDSA P-256.")]


def _leaf_days(value: int | None) -> int:
    from ovsnet.pki import profile as pki_profile

    return pki_profile.LEAF_DAYS if value is None else value


LeafDays = Annotated[
    int | None, typer.Option("--days", help="Validity in days (default 90).", show_default=False)
]
CaDays = Annotated[int, typer.Option("--days", help="CA validity in days.")]


@pki_app.command("init")
def init_cmd(
    ctx: typer.Context,
    directory: DirOption = None,
    rsa: RsaOption = False,
    days: CaDays = 1825,
    dry_run: DryRun = False,
) -> None:
    """Create one CA per purpose, each with an empty CRL (existing CAs are kept as they are)."""
    from ovsnet.pki import cas as pki_cas
    from ovsnet.pki import results as pki_results
    from ovsnet.pki import store as pki_store

    options = pki_cas.CaOptions(rsa=rsa, dry_run=dry_run, days=days)
    emit(
        ctx.obj,
        pki_results.IssuedResult(
            "init", pki_cas.ensure_cas(pki_store.pki_dir(directory), options), dry_run
        ),
    )


@pki_app.command("migrate")
def migrate_cmd(
    ctx: typer.Context,
    directory: DirOption = None,
    rsa: RsaOption = False,
    days: CaDays = 1825,
    dry_run: DryRun = False,
) -> None:
    """Retire the all-purpose CA of an older ovsnet (to legacy-ca/) and create per-purpose
    CAs; then reissue every certificate with `pki issue` / `pki issue-docker`."""
    from ovsnet.pki import cas as pki_cas
    from ovsnet.pki import lifecycle as pki_lifecycle
    from ovsnet.pki import results as pki_results
    from ovsnet.pki import store as pki_store

    options = pki_cas.CaOptions(rsa=rsa, dry_run=dry_run, days=days)
    emit(
        ctx.obj,
        pki_results.IssuedResult(
            "migrate", pki_lifecycle.migrate(pki_store.pki_dir(directory), options), dry_run
        ),
    )


@pki_app.command("rotate-ca")
def rotate_ca_cmd(
    ctx: typer.Context,
    purpose: Annotated[str, typer.Argument(help=f"The CA to replace: {_PURPOSES}.")],
    directory: DirOption = None,
    rsa: RsaOption = False,
    days: CaDays = 1825,
    dry_run: DryRun = False,
) -> None:
    """Replace one purpose's CA (the old one is kept as ca/PURPOSE.retired-STAMP); every
    certificate of that purpose must then be reissued and the new CA file deployed."""
    from ovsnet.pki import cas as pki_cas
    from ovsnet.pki import lifecycle as pki_lifecycle
    from ovsnet.pki import results as pki_results
    from ovsnet.pki import store as pki_store

    options = pki_cas.CaOptions(rsa=rsa, dry_run=dry_run, days=days)
    issued = pki_lifecycle.rotate_ca(pki_store.pki_dir(directory), purpose, options)
    emit(ctx.obj, pki_results.IssuedResult("rotate-ca", issued, dry_run))


@pki_app.command("issue")
def issue_cmd(
    ctx: typer.Context,
    name: Annotated[
        str, typer.Argument(help="Host or client name: the certificate's CN (and SAN DNS name).")
    ],
    purpose: PurposeOption = "ike",
    ips: Ips = None,
    dns: Dns = None,
    directory: DirOption = None,
    renew: Renew = False,
    days: LeafDays = None,
    key_type: Annotated[
        str | None,
        typer.Option(
            "--key-type",
            help="rsa or ecdsa. Default: rsa for ike (what strongSwan loads through "
            "ovs-monitor-ipsec), else the CA's.",
            show_default=False,
        ),
    ] = None,
    dry_run: DryRun = False,
) -> None:
    """Issue NAME's certificate for one purpose (default ike: the host's IPsec identity)."""
    from ovsnet.pki import issue as pki_issue
    from ovsnet.pki import results as pki_results
    from ovsnet.pki import store as pki_store

    base = pki_store.pki_dir(directory)
    request = pki_issue.leaf_request(base, purpose, name, ips or [], dns or [], key_type)
    options = pki_issue.IssueOptions(renew=renew, dry_run=dry_run, days=_leaf_days(days))
    emit(
        ctx.obj,
        pki_results.IssuedResult("issue", [pki_issue.ensure_leaf(base, request, options)], dry_run),
    )


@pki_app.command("issue-docker")
def issue_docker_cmd(
    ctx: typer.Context,
    host: Annotated[str, typer.Argument(help="The Docker host's name (server CN).")],
    ips: Ips = None,
    dns: Dns = None,
    directory: DirOption = None,
    renew: Renew = False,
    days: LeafDays = None,
    dry_run: DryRun = False,
) -> None:
    """Issue dockerd's TLS server certificate and a client certificate for HOST."""
    from ovsnet.pki import issue as pki_issue
    from ovsnet.pki import results as pki_results
    from ovsnet.pki import store as pki_store

    options = pki_issue.IssueOptions(renew=renew, dry_run=dry_run, days=_leaf_days(days))
    server, client = pki_issue.ensure_docker_certs(
        pki_store.pki_dir(directory), host, ips or [], dns or [], options
    )
    emit(ctx.obj, pki_results.IssuedResult("issue-docker", [server, client], dry_run))


@pki_app.command("renew")
def renew_cmd(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Whose certificate (as given to `pki issue`).")],
    purpose: PurposeOption = "ike",
    keep_key: Annotated[
        bool, typer.Option("--keep-key", help="Keep the private key (default: a new key).")
    ] = False,
    directory: DirOption = None,
    days: LeafDays = None,
    dry_run: DryRun = False,
) -> None:
    """A fresh certificate with the same subject and SANs (the old one stays valid until it
    expires: revoke it if its key may be compromised)."""
    from ovsnet.pki import issue as pki_issue
    from ovsnet.pki import lifecycle as pki_lifecycle
    from ovsnet.pki import results as pki_results
    from ovsnet.pki import store as pki_store

    options = pki_issue.IssueOptions(dry_run=dry_run, days=_leaf_days(days), keep_key=keep_key)
    issued = pki_lifecycle.renew(pki_store.pki_dir(directory), purpose, name, options)
    emit(ctx.obj, pki_results.IssuedResult("renew", [issued], dry_run))


@pki_app.command("revoke")
def revoke_cmd(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Whose certificate (as given to `pki issue`).")],
    purpose: PurposeOption = "ike",
    directory: DirOption = None,
    dry_run: DryRun = False,
) -> None:
    """Put NAME's certificate on its CA's CRL (ike: then `ovsnet ipsec crl` on every host)."""
    from ovsnet.pki import lifecycle as pki_lifecycle
    from ovsnet.pki import results as pki_results
    from ovsnet.pki import store as pki_store

    result = pki_lifecycle.revoke(pki_store.pki_dir(directory), purpose, name, dry_run=dry_run)
    emit(ctx.obj, pki_results.CrlResult("revoke", result, dry_run))


@pki_app.command("crl")
def crl_cmd(
    ctx: typer.Context,
    purpose: PurposeOption = "ike",
    directory: DirOption = None,
    dry_run: DryRun = False,
) -> None:
    """Sign the purpose's CRL anew (same entries, next update in a year)."""
    from ovsnet.pki import crl as pki_crl
    from ovsnet.pki import results as pki_results
    from ovsnet.pki import store as pki_store

    result = pki_crl.refresh_crl(pki_store.pki_dir(directory), purpose, dry_run=dry_run)
    emit(ctx.obj, pki_results.CrlResult("crl", result, dry_run))


@pki_app.command("export")
def export_cmd(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Whose certificate (as given to `pki issue`).")],
    to: Annotated[str, typer.Option("--to", help="Folder to write (made 0700).")],
    purpose: PurposeOption = "ike",
    directory: DirOption = None,
    dry_run: DryRun = False,
) -> None:
    """Copy what one host needs into a folder: cert.pem, key.pem (0600), ca.pem (the CA it
    trusts) and, for ike, crl.pem. Never a CA key. For ike, e.g. --to /etc/ovsnet/ipsec, then
    `ovsnet ipsec cert --cert .../cert.pem --key .../key.pem --ca .../ca.pem`."""
    from pathlib import Path

    from ovsnet.pki import contents as pki_contents
    from ovsnet.pki import results as pki_results
    from ovsnet.pki import store as pki_store

    files = pki_contents.export(pki_store.pki_dir(directory), purpose, name, Path(to), dry_run)
    emit(ctx.obj, pki_results.ExportResult(files, dry_run))


@pki_app.command("list")
def list_cmd(ctx: typer.Context, directory: DirOption = None) -> None:
    """List CAs and certificates: purpose, subject, expiry, SHA-256 fingerprint; flags revoked
    ones and expiry within 30 days."""
    from ovsnet.pki import contents as pki_contents
    from ovsnet.pki import results as pki_results
    from ovsnet.pki import store as pki_store

    path = pki_store.pki_dir(directory)
    emit(
        ctx.obj, pki_results.CertificateListResult(str(path), pki_contents.list_certificates(path))
    )


def register(app: typer.Typer) -> None:
    app.add_typer(pki_app, name="pki")
