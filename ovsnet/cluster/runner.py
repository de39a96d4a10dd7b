"""Wiring for `ovsnet agent`: validate options, build the agent, run it until a signal."""

from __future__ import annotations

import json
import signal
import socket
import sys
import threading
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network

from ovsnet.addressing import parse_network, parse_prefix, parse_supernet
from ovsnet.cluster import DEFAULT_RESYNC_INTERVAL
from ovsnet.cluster.agent_config import ON_ETCD_LOSS
from ovsnet.cluster.keys import ClusterKeys, check_name
from ovsnet.cluster.subnets import check_supernet, usable
from ovsnet.errors import InvalidInput
from ovsnet.etcd.config import EtcdConfig
from ovsnet.model import DEFAULT_BRIDGE, DEFAULT_DOCKER_BRIDGE
from ovsnet.tunnels import TUNNEL_TYPES
from ovsnet.validate import check_underlay_address

MIN_TTL, MAX_TTL = 2, 3600
MIN_RESYNC, MAX_RESYNC = 1.0, 86400.0


@dataclass(frozen=True)
class AgentOptions:
    etcd: EtcdConfig
    key_prefix: str = "/ovsnet/"
    name: str | None = None
    underlay_ip: str | None = None
    supernet: str = "10.0.0.0/8"
    prefix: str | None = None
    tunnel_type: str = "gre"
    ttl: int = 30
    bridge: str = DEFAULT_BRIDGE
    docker_bridge: str = DEFAULT_DOCKER_BRIDGE
    datapath: str = "system"
    underlay_mtu: int | None = None
    ipsec: bool = False
    psk_file: str | None = None
    ipsec_cert: str | None = None
    allow_downgrade: bool = False
    init: bool = True
    dataplane: bool = True
    resync_interval: float = DEFAULT_RESYNC_INTERVAL
    on_etcd_loss: str = "keep"
    db: str = "unix:/var/run/openvswitch/db.sock"
    json: bool = False
    metrics_listen: str | None = None
    log_format: str = "text"


def agent_config(options: AgentOptions):
    """Check every option before anything connects (bad input: exit 2, nothing changed)."""
    from ovsnet.cluster.agent_config import AgentConfig

    supernet = check_supernet(parse_supernet(options.supernet))
    explicit = None
    if options.prefix is not None:
        explicit = parse_prefix(options.prefix)
        if not usable(explicit, supernet):
            raise InvalidInput(
                f"--prefix {options.prefix} is not a usable /24 of {supernet}",
                "pick a /24 inside the supernet",
            )
    if options.tunnel_type not in TUNNEL_TYPES:
        raise InvalidInput(
            f"unknown tunnel type {options.tunnel_type!r}", f"use one of {', '.join(TUNNEL_TYPES)}"
        )
    if not MIN_TTL <= options.ttl <= MAX_TTL:
        raise InvalidInput(
            f"--ttl {options.ttl} is out of range", f"use {MIN_TTL} to {MAX_TTL} seconds"
        )
    if options.metrics_listen:
        from ovsnet.metrics import parse_listen

        parse_listen(options.metrics_listen)
    from ovsnet.logs import check_log_format

    check_log_format(options.log_format)
    if not MIN_RESYNC <= options.resync_interval <= MAX_RESYNC:
        raise InvalidInput(
            f"--resync-interval {options.resync_interval:g} is out of range",
            f"use {MIN_RESYNC:g} to {MAX_RESYNC:g} seconds",
        )
    if options.on_etcd_loss not in ON_ETCD_LOSS:
        raise InvalidInput(
            f"--on-etcd-loss {options.on_etcd_loss!r} is not known",
            f"use one of {', '.join(ON_ETCD_LOSS)}",
        )
    if options.psk_file and not options.ipsec:
        raise InvalidInput("--ipsec-psk-file needs --ipsec")
    if options.ipsec_cert and not options.ipsec:
        raise InvalidInput("--ipsec-cert needs --ipsec")
    if options.ipsec_cert and options.psk_file:
        raise InvalidInput(
            "give --ipsec-cert (certificates) or --ipsec-psk-file (a pre-shared key), not both"
        )
    cn, fingerprint = _ipsec_identity(options.ipsec_cert)
    if options.psk_file:
        from ovsnet.services.ipsec import read_psk_file

        read_psk_file(options.psk_file)  # refuse a missing or world-readable file up front
    return AgentConfig(
        name=check_name(options.name or socket.gethostname().split(".")[0]),
        underlay_ip=_check_underlay(_underlay_ip(options.underlay_ip, options.etcd), supernet),
        supernet=supernet,
        keys=ClusterKeys(options.key_prefix),
        explicit_subnet=explicit,
        tunnel_type=options.tunnel_type,
        ttl=options.ttl,
        ipsec_method=("cert" if options.ipsec_cert else "psk") if options.ipsec else None,
        ipsec_cn=cn,
        ipsec_fingerprint=fingerprint,
        resync_interval=options.resync_interval,
        on_etcd_loss=options.on_etcd_loss,
    )


def _check_underlay(address: IPv4Address, supernet: IPv4Network) -> IPv4Address:
    """The address peers will tunnel to: the same rules as for a peer's address."""
    check_underlay_address(address, "--underlay-ip")
    if address in supernet:
        raise InvalidInput(
            f"--underlay-ip {address} is inside the overlay supernet {supernet}",
            "give the address this host has on the underlay network",
        )
    return address


def _underlay_ip(text: str | None, etcd: EtcdConfig) -> IPv4Address:
    if text is not None:
        try:
            return IPv4Address(text.strip())
        except ValueError:
            raise InvalidInput(f"--underlay-ip {text!r} is not an IPv4 address") from None
    host, port, _ = etcd.endpoint
    # The source address the kernel would use toward etcd (connect() on UDP sends nothing).
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect((socket.gethostbyname(host), port))
            address = IPv4Address(probe.getsockname()[0])
    except OSError as exc:
        raise InvalidInput(
            f"cannot tell this host's underlay address ({exc.strerror})", "pass --underlay-ip"
        ) from None
    if address.is_loopback:
        raise InvalidInput(
            f"etcd is reached over loopback ({address}), which peers cannot use",
            "pass --underlay-ip",
        )
    return address


def _ipsec_identity(path: str | None) -> tuple[str | None, str | None]:
    if path is None:
        return None, None
    from ovsnet.pki.reading import load_certificate, summarize

    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror}") from None
    summary = summarize(load_certificate(data, path))
    return summary.common_name, "sha256:" + summary.fingerprint_sha256


def run_agent(options: AgentOptions) -> None:
    from ovsnet import logs
    from ovsnet.cluster.agent import Agent
    from ovsnet.cluster.dataplane import DataplaneConfig, NoDataplane, OvsDataplane
    from ovsnet.etcd.client import Etcd

    config = agent_config(options)
    logs.configure(options.log_format, "ovsnet agent")
    dataplane: OvsDataplane | NoDataplane
    if options.dataplane:
        dataplane = OvsDataplane(
            DataplaneConfig(
                db=options.db,
                supernet=config.supernet,
                bridge=options.bridge,
                docker_bridge=options.docker_bridge,
                datapath=options.datapath,
                underlay_mtu=options.underlay_mtu,
                tunnel_type=options.tunnel_type,
                ipsec=options.ipsec,
                psk_file=options.psk_file,
                ipsec_cert_fingerprint=config.ipsec_fingerprint if options.ipsec_cert else None,
                allow_downgrade=options.allow_downgrade,
                init=options.init,
            )
        )
        try:
            dataplane.check_own_certificate()
        except BaseException:
            dataplane.close()
            raise
    else:
        dataplane = NoDataplane(config.supernet, options.tunnel_type)
    agent = Agent(
        config, lambda: Etcd(options.etcd), dataplane, emit=_json_lines if options.json else None
    )
    _stop_on_signals(agent)
    healer = None
    if options.dataplane and options.ipsec:
        from ovsnet.services.ipsec_heal import BackgroundHealer

        healer = BackgroundHealer(options.db)  # repairs IPsec peers left not established
    listen = options.metrics_listen
    server = _serve_metrics(listen, options, agent) if listen else None
    try:
        runner = threading.Thread(target=_run_catching, args=(agent,), name="ovsnet-agent")
        runner.start()
        # The main thread only waits, so signal handlers run promptly.
        while runner.is_alive():
            runner.join(0.5)
        if agent.failure is not None:
            raise agent.failure
    finally:
        if healer is not None:
            healer.stop()
        if server is not None:
            server.close()
        dataplane.close()


def _serve_metrics(listen: str, options: AgentOptions, agent):
    """The host's series (when the agent runs the data plane) plus the agent's own, on
    `listen` (host:port)."""
    from ovsnet import metrics
    from ovsnet.cluster.telemetry import AgentCollector

    def names() -> dict[str, str]:
        return {str(r.underlay_ip): r.name for r in list(agent.records.values())}

    def problems() -> list[str]:
        return [] if agent.lease is not None else ["the agent holds no etcd lease"]

    collector = AgentCollector(agent)
    if not options.dataplane:
        return metrics.serve(listen, [collector], problems)
    return metrics.serve_host(
        listen, options.db, options.bridge, collector, names=names, health=problems
    )


def _run_catching(agent) -> None:
    agent.failure = None
    try:
        agent.run()
    except BaseException as exc:  # re-raised in the main thread, which maps it to an exit code
        agent.failure = exc


def _stop_on_signals(agent) -> None:
    def handler(signum, frame):
        agent.stop()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def _json_lines(event: dict) -> None:
    sys.stdout.write(json.dumps(event, sort_keys=True, default=str) + "\n")
    sys.stdout.flush()


def parse_subnet(text: str) -> IPv4Network:
    return parse_network(text, "subnet")
