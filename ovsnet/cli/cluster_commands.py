"""`ovsnet agent` and `ovsnet cluster status|release|grant|enable-auth`."""

from __future__ import annotations

from typing import Annotated

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
from ovsnet.model import DEFAULT_BRIDGE, DEFAULT_DOCKER_BRIDGE

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
    name: Annotated[
        str | None, typer.Option("--name", help="This host's name (default: hostname).")
    ] = None,
    underlay_ip: Annotated[
        str | None,
        typer.Option(
            "--underlay-ip", help="Address peers tunnel to (default: the one facing etcd)."
        ),
    ] = None,
    supernet: Supernet = "10.0.0.0/8",
    prefix: Annotated[
        str | None, typer.Option("--prefix", help="Reserve this /24 (A.B.C) or fail.")
    ] = None,
    tunnel_type: Annotated[
        str, typer.Option("--type", help="Tunnel type: gre, vxlan, geneve.")
    ] = "gre",
    ttl: Annotated[
        int,
        typer.Option(
            "--ttl",
            help="Lease TTL in seconds: how long a dead host keeps its tunnels elsewhere.",
        ),
    ] = 30,
    bridge: Bridge = DEFAULT_BRIDGE,
    docker_bridge: DockerBridge = DEFAULT_DOCKER_BRIDGE,
    datapath: Datapath = "system",
    underlay_mtu: Annotated[
        int | None, typer.Option("--underlay-mtu", help="Default: detected.")
    ] = None,
    ipsec: Annotated[
        bool,
        typer.Option(
            "--ipsec",
            help="Encrypt every tunnel with IPsec: a pre-shared key, or certificates with "
            "--ipsec-cert (peers without the same IPsec method are left out: they could not "
            "talk to this host).",
        ),
    ] = False,
    psk_file: Annotated[
        str | None,
        typer.Option(
            "--ipsec-psk-file",
            help="The PSK file (0600; default: `ovsnet ipsec psk set`'s). It never leaves this "
            "host.",
        ),
    ] = None,
    ipsec_cert: Annotated[
        str | None,
        typer.Option(
            "--ipsec-cert",
            help="With --ipsec: authenticate with certificates. This host's IKE certificate, "
            "the one set with `ovsnet ipsec cert`: its CN and fingerprint are published, and "
            "each peer's tunnel names the CN the peer published (never a key).",
        ),
    ] = None,
    allow_downgrade: Annotated[
        bool,
        typer.Option(
            "--allow-downgrade",
            help="Allow rewriting IPsec tunnels as plaintext (e.g. started without --ipsec).",
        ),
    ] = False,
    no_init: Annotated[
        bool, typer.Option("--no-init", help="Do not run init; tunnels only.")
    ] = False,
    no_dataplane: Annotated[
        bool,
        typer.Option(
            "--no-dataplane", help="Claim, publish and watch only; change nothing locally."
        ),
    ] = False,
    metrics_listen: MetricsListen = None,
    log_format: LogFormat = "text",
    resync_interval: Annotated[
        float,
        typer.Option(
            "--resync-interval",
            help="Seconds between full reads of etcd, the backstop for a watch that went quiet.",
        ),
    ] = DEFAULT_RESYNC_INTERVAL,
    on_etcd_loss: Annotated[
        str,
        typer.Option(
            "--on-etcd-loss",
            help="When etcd is unreachable for longer than the TTL: keep the tunnels as they "
            "are (default), or drop them all (peers have dropped this host by then).",
        ),
    ] = "keep",
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
        emit(ctx.obj, cluster_status(client, ClusterKeys(key_prefix)))


@cluster_app.command("release")
def release(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The dead host whose subnet and record to free.")],
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
    name: Annotated[str, typer.Argument(help="Host name = the CN of its etcd client certificate.")],
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
