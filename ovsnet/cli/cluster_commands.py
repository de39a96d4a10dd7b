"""`ovsnet agent` and `ovsnet cluster status|release|grant|enable-auth`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import typer

from ovsnet.cli.options import (
    Bridge,
    Datapath,
    DockerBridge,
    DryRun,
    Etcd,
    EtcdCa,
    EtcdCert,
    EtcdInsecure,
    EtcdKey,
    KeyPrefix,
    LogFormat,
    MetricsListen,
    Supernet,
)
from ovsnet.cli.output import Settings, emit
from ovsnet.cluster import DEFAULT_RESYNC_INTERVAL
from ovsnet.errors import InvalidInput

cluster_app = typer.Typer(
    help="The etcd-coordinated cluster: hosts, subnets, access.", no_args_is_help=True
)


def etcd_config(url, cert, key, ca, insecure: bool = False):
    from ovsnet.etcd.config import EtcdConfig

    # Several --etcd options, each possibly a comma-separated list: one comma-separated list.
    url = ",".join(url) if url and not isinstance(url, str) else url
    if not url:
        raise InvalidInput("no etcd URL", "pass --etcd https://HOST:PORT or set OVSNET_ETCD")
    return EtcdConfig(
        url=url,
        cert=cert,
        key=key,
        ca=ca,
        insecure=insecure,
    ).check()


# -- agent -----------------------------------------------------------------------------------


def agent(
    ctx: typer.Context,
    etcd: Etcd = None,
    etcd_cert: EtcdCert = None,
    etcd_key: EtcdKey = None,
    etcd_ca: EtcdCa = None,
    key_prefix: KeyPrefix = "/ovsnet/",
    insecure: EtcdInsecure = False,
    name: str = typer.Option(None, "--name", help="This host's name (default: hostname)."),
    underlay_ip: str = typer.Option(
        None, "--underlay-ip", help="Address peers tunnel to (default: the one facing etcd)."
    ),
    supernet: Supernet = "10.0.0.0/8",
    prefix: str = typer.Option(None, "--prefix", help="Reserve this /24 (A.B.C) or fail."),
    tunnel_type: str = typer.Option("gre", "--type", help="Tunnel type: gre, vxlan, geneve."),
    ttl: int = typer.Option(
        30, "--ttl", help="Lease TTL in seconds: how long a dead host keeps its tunnels elsewhere."
    ),
    bridge: Bridge = "br0",
    docker_bridge: DockerBridge = "docker0",
    datapath: Datapath = "system",
    underlay_mtu: int = typer.Option(None, "--underlay-mtu", help="Default: detected."),
    ipsec: bool = typer.Option(
        False,
        "--ipsec",
        help="Encrypt every tunnel with IPsec: a pre-shared key, or certificates with "
        "--ipsec-cert (peers without the same IPsec method are left out: they could not "
        "talk to this host).",
    ),
    psk_file: str = typer.Option(
        None,
        "--ipsec-psk-file",
        help="The PSK file (0600; default: `ovsnet ipsec psk set`'s). It never leaves this host.",
    ),
    ipsec_cert: str = typer.Option(
        None,
        "--ipsec-cert",
        help="With --ipsec: authenticate with certificates. This host's IKE certificate, the "
        "one set with `ovsnet ipsec cert`: its CN and fingerprint are published, and each "
        "peer's tunnel names the CN the peer published (never a key).",
    ),
    allow_downgrade: bool = typer.Option(
        False,
        "--allow-downgrade",
        help="Allow rewriting IPsec tunnels as plaintext (e.g. started without --ipsec).",
    ),
    no_init: bool = typer.Option(False, "--no-init", help="Do not run init; tunnels only."),
    no_dataplane: bool = typer.Option(
        False, "--no-dataplane", help="Claim, publish and watch only; change nothing locally."
    ),
    metrics_listen: MetricsListen = None,
    log_format: LogFormat = "text",
    resync_interval: float = typer.Option(
        DEFAULT_RESYNC_INTERVAL,
        "--resync-interval",
        help="Seconds between full reads of etcd, the backstop for a watch that went quiet.",
    ),
    on_etcd_loss: str = typer.Option(
        "keep",
        "--on-etcd-loss",
        help="When etcd is unreachable for longer than the TTL: keep the tunnels as they are "
        "(default), or drop them all (peers have dropped this host by then).",
    ),
) -> None:
    """Lease a /24, publish this host in etcd and keep a tunnel to every live peer.

    Runs until SIGTERM/SIGINT. Logs to stderr; with --json, one JSON object per event on
    stdout (claimed, initialised, peers, disconnected, ...). Stopping the agent leaves its
    record until the lease expires, so a restart keeps the subnet and peers see no change.
    """
    from ovsnet.cluster.runner import AgentOptions, run_agent

    settings: Settings = ctx.obj
    options = AgentOptions(
        etcd=etcd_config(etcd, etcd_cert, etcd_key, etcd_ca, insecure),
        key_prefix=key_prefix,
        name=name,
        underlay_ip=underlay_ip,
        supernet=supernet,
        prefix=prefix,
        tunnel_type=tunnel_type,
        ttl=ttl,
        bridge=bridge,
        docker_bridge=docker_bridge,
        datapath=datapath,
        underlay_mtu=underlay_mtu,
        ipsec=ipsec,
        psk_file=psk_file,
        ipsec_cert=ipsec_cert,
        allow_downgrade=allow_downgrade,
        init=not no_init,
        dataplane=not no_dataplane,
        resync_interval=resync_interval,
        on_etcd_loss=on_etcd_loss,
        db=settings.db,
        json=settings.json,
        metrics_listen=metrics_listen or None,
        log_format=log_format,
    )
    run_agent(options)


# -- cluster ---------------------------------------------------------------------------------


@dataclass
class ClusterStatusResult:
    hosts: list[dict]
    problems: list[str] = field(default_factory=list)
    bad_records: list[dict] = field(default_factory=list)

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


@cluster_app.command("status")
def status(
    ctx: typer.Context,
    etcd: Etcd = None,
    etcd_cert: EtcdCert = None,
    etcd_key: EtcdKey = None,
    etcd_ca: EtcdCa = None,
    key_prefix: KeyPrefix = "/ovsnet/",
    insecure: EtcdInsecure = False,
) -> None:
    """Every host: subnet, underlay address, lease TTL left, last seen (live or gone)."""
    from ovsnet.cluster.admin import cluster_status
    from ovsnet.cluster.keys import ClusterKeys
    from ovsnet.etcd.client import Etcd

    with Etcd(etcd_config(etcd, etcd_cert, etcd_key, etcd_ca, insecure)) as client:
        found = cluster_status(client, ClusterKeys(key_prefix))
    emit(ctx.obj, ClusterStatusResult(found.hosts, found.problems, found.bad_records))


@cluster_app.command("release")
def release(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="The dead host whose subnet and record to free."),
    etcd: Etcd = None,
    etcd_cert: EtcdCert = None,
    etcd_key: EtcdKey = None,
    etcd_ca: EtcdCa = None,
    key_prefix: KeyPrefix = "/ovsnet/",
    insecure: EtcdInsecure = False,
    dry_run: DryRun = False,
) -> None:
    """Free a host's subnet, record and last-subnet memory now, instead of waiting for its
    lease (a live agent would simply claim again)."""
    from ovsnet.cluster.admin import release_host
    from ovsnet.cluster.keys import ClusterKeys
    from ovsnet.etcd.client import Etcd

    with Etcd(etcd_config(etcd, etcd_cert, etcd_key, etcd_ca, insecure)) as client:
        emit(ctx.obj, release_host(client, ClusterKeys(key_prefix), name, dry_run=dry_run))


@cluster_app.command("grant")
def grant(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Host name = the CN of its etcd client certificate."),
    etcd: Etcd = None,
    etcd_cert: EtcdCert = None,
    etcd_key: EtcdKey = None,
    etcd_ca: EtcdCa = None,
    key_prefix: KeyPrefix = "/ovsnet/",
    insecure: EtcdInsecure = False,
) -> None:
    """(root) Create the etcd user NAME and its role: write only its own keys and subnet
    claims, read the rest of ovsnet's prefix."""
    from ovsnet.cluster.admin import grant_host
    from ovsnet.cluster.keys import ClusterKeys
    from ovsnet.etcd.client import Etcd

    with Etcd(etcd_config(etcd, etcd_cert, etcd_key, etcd_ca, insecure)) as client:
        emit(ctx.obj, grant_host(client, ClusterKeys(key_prefix), name))


@cluster_app.command("enable-auth")
def enable_auth(
    ctx: typer.Context,
    etcd: Etcd = None,
    etcd_cert: EtcdCert = None,
    etcd_key: EtcdKey = None,
    etcd_ca: EtcdCa = None,
    insecure: EtcdInsecure = False,
) -> None:
    """(once, before auth is on) Create etcd's root user, whose certificate CN is `root`, and
    turn etcd's authentication on. Run it with the root certificate."""
    from ovsnet.etcd.client import Etcd
    from ovsnet.report import ChangeReport

    with Etcd(etcd_config(etcd, etcd_cert, etcd_key, etcd_ca, insecure)) as client:
        steps = client.enable_auth()
    emit(ctx.obj, ChangeReport("cluster enable-auth", steps))


def register(app: typer.Typer) -> None:
    app.command()(agent)
    app.add_typer(cluster_app, name="cluster")
