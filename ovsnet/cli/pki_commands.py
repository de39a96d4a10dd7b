"""`ovsnet pki ...`: the private CA, host certificates, Docker TLS certificates."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any

import typer

from ovsnet.cli.output import emit

pki_app = typer.Typer(
    help="ovsnet's private CA: certificates for IPsec and the Docker API.", no_args_is_help=True
)

_DIR_HELP = "PKI directory (env OVSNET_PKI_DIR; default /etc/ovsnet/pki)."


@dataclass
class IssuedResult:
    """Certificates written or kept by one command. Paths and metadata only, never key bytes."""

    action: str
    issued: list = field(default_factory=list)
    dry_run: bool = False

    def as_json(self) -> Any:
        from ovsnet.pki import utcnow

        now = utcnow()
        return {
            "action": self.action,
            "dry_run": self.dry_run,
            "changed": any(i.changed for i in self.issued),
            "certificates": [i.as_json(now) for i in self.issued],
        }

    def render(self, console) -> None:
        for item in self.issued:
            verb = "would write" if self.dry_run else "wrote"
            verb = verb if item.changed else "unchanged"
            console.print(
                f"{verb}: {item.kind} {item.summary.subject}  cert {item.cert_path}  "
                f"key {item.key_path} (0600)  expires {item.summary.not_after:%Y-%m-%d}"
            )


@dataclass
class ListResult:
    directory: str
    issued: list

    def as_json(self) -> Any:
        from ovsnet.pki import utcnow

        now = utcnow()
        return {"directory": self.directory, "certificates": [i.as_json(now) for i in self.issued]}

    def render(self, console) -> None:
        from ovsnet.pki import utcnow

        now = utcnow()
        if not self.issued:
            console.print(f"no certificates in {self.directory}")
            return
        for item in self.issued:
            s = item.summary
            if s.expired(now):
                flag = "  [red]EXPIRED[/red]"
            elif s.expires_soon(now):
                flag = f"  [yellow]warning: expires in {s.days_left(now)} days[/yellow]"
            else:
                flag = ""
            console.print(f"{item.kind:<14} {item.name:<16} {s.subject}", markup=False)
            console.print(f"{'':<14} expires {s.not_after:%Y-%m-%d}{flag}")
            console.print(f"{'':<14} sha256 {s.fingerprint_sha256}", markup=False)


DirOption = Annotated[str | None, typer.Option("--dir", help=_DIR_HELP)]
DryRun = Annotated[bool, typer.Option("--dry-run", help="Show what would be written.")]
Days = Annotated[int, typer.Option("--days", help="Validity in days.")]
Renew = Annotated[bool, typer.Option("--renew", help="Issue new keys and certificates.")]


@pki_app.command("init")
def init_cmd(
    ctx: typer.Context,
    directory: DirOption = None,
    rsa: Annotated[bool, typer.Option("--rsa", help="RSA 3072 instead of ECDSA P-256.")] = False,
    days: Days = 3650,
    dry_run: DryRun = False,
) -> None:
    """Create the private CA (kept as is if it exists)."""
    from ovsnet import pki

    issued = pki.ensure_ca(pki.pki_dir(directory), rsa=rsa, dry_run=dry_run, days=days)
    emit(ctx.obj, IssuedResult("init", [issued], dry_run))


@pki_app.command("issue")
def issue_cmd(
    ctx: typer.Context,
    host: Annotated[str, typer.Argument(help="Host name: the certificate's CN and SAN DNS name.")],
    ips: Annotated[
        list[str] | None, typer.Option("--ip", help="Add an IP address to the SAN (repeatable).")
    ] = None,
    directory: DirOption = None,
    renew: Renew = False,
    days: Days = 825,
    key_type: Annotated[
        str,
        typer.Option(
            "--key-type",
            help="rsa (3072, default: what strongSwan loads through ovs-monitor-ipsec) or ecdsa.",
        ),
    ] = "rsa",
    dry_run: DryRun = False,
) -> None:
    """Issue HOST's certificate for IPsec (IKE) and TLS, signed by the ovsnet CA."""
    from ovsnet import pki

    options = pki.IssueOptions(renew=renew, dry_run=dry_run, days=days)
    issued = pki.ensure_host_cert(pki.pki_dir(directory), host, ips or [], options, key_type)
    emit(ctx.obj, IssuedResult("issue", [issued], dry_run))


@pki_app.command("issue-docker")
def issue_docker_cmd(
    ctx: typer.Context,
    host: Annotated[str, typer.Argument(help="The Docker host's name (server CN).")],
    ips: Annotated[
        list[str] | None, typer.Option("--ip", help="Server SAN IP address (repeatable).")
    ] = None,
    dns: Annotated[
        list[str] | None, typer.Option("--dns", help="Extra server SAN DNS name (repeatable).")
    ] = None,
    directory: DirOption = None,
    renew: Renew = False,
    days: Days = 825,
    dry_run: DryRun = False,
) -> None:
    """Issue dockerd's TLS server certificate and a client certificate for HOST."""
    from ovsnet import pki

    options = pki.IssueOptions(renew=renew, dry_run=dry_run, days=days)
    server, client = pki.ensure_docker_certs(
        pki.pki_dir(directory), host, ips or [], dns or [], options
    )
    emit(ctx.obj, IssuedResult("issue-docker", [server, client], dry_run))


@pki_app.command("list")
def list_cmd(ctx: typer.Context, directory: DirOption = None) -> None:
    """List certificates: subject, expiry, SHA-256 fingerprint; flags expiry within 30 days."""
    from ovsnet import pki

    path = pki.pki_dir(directory)
    emit(ctx.obj, ListResult(str(path), pki.list_certificates(path)))


def register(app: typer.Typer) -> None:
    app.add_typer(pki_app, name="pki")
