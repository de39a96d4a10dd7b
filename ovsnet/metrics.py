"""Prometheus metrics and a health endpoint for one host (`ovsnet metrics`, `--metrics-listen`).

A scrape reads the host's state when it happens (one OVSDB read, the same read `ovsnet status`
makes) through a custom collector, so there is no sampling loop and nothing goes stale: an idle
server thread sleeps in accept(). `/healthz` gives the judgement of `ovsnet status --check`.

Place: docs/architecture.md, "Layers": services layer (a scrape reads through the
facades; the metric families are derived purely).
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from ovsnet.errors import InvalidInput, OvsnetError

if TYPE_CHECKING:  # the services (OVSDB, netlink) load only when a scrape reads the host
    from ovsnet.services.status import StatusResult

log = logging.getLogger("ovsnet.metrics")

PEER_LABELS = ["remote_ip", "name"]
# A scrape nobody finishes sending must not hold the single server thread for long.
REQUEST_TIMEOUT = 10.0


def parse_listen(text: str) -> tuple[str, int]:
    """HOST:PORT (or [IPv6]:PORT) of a metrics server; port 0 picks a free one."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise InvalidInput(
            f"--metrics-listen {text!r} is not HOST:PORT", "e.g. 127.0.0.1:9475 or [::1]:9475"
        )
    return host.strip("[]"), int(port)


# -- what a scrape shows (pure: from a status read to metric families) -----------------------


@dataclass
class HostReading:
    """One read of the host: its status, or why it could not be read."""

    status: StatusResult | None = None
    error: str | None = None
    seconds: float = 0.0
    names: dict[str, str] = field(default_factory=dict)  # remote_ip -> host name, if known

    def health_problems(self) -> list[str]:
        if self.status is None:
            return [self.error or "host not read"]
        # The judgement of `ovsnet status --check`, not a copy of it.
        return self.status.health_problems()


def host_families(reading: HostReading) -> Iterator:
    """Metric families of one host reading."""
    status = reading.status
    readable = GaugeMetricFamily(
        "ovsnet_host_read_ok", "1 if the last scrape could read OVSDB and the host's links"
    )
    readable.add_metric([], 1 if status is not None else 0)
    yield readable
    duration = GaugeMetricFamily(
        "ovsnet_host_read_seconds", "How long this scrape took to read the host's state"
    )
    duration.add_metric([], reading.seconds)
    yield duration
    healthy = GaugeMetricFamily(
        "ovsnet_healthy", "1 if `ovsnet status --check` would pass (the /healthz judgement)"
    )
    healthy.add_metric([], 0 if reading.health_problems() else 1)
    yield healthy
    if status is None:
        return
    yield from _bridge_families(status)
    yield from _peer_families(status.peers, reading.names)
    yield from _guard_families(status.plaintext_guard)


def _gauge(name: str, doc: str, labels: list[str], rows: Iterable[tuple[list[str], float]]):
    family = GaugeMetricFamily(name, doc, labels=labels)
    for values, value in rows:
        family.add_metric(values, value)
    return family


def _counter(name: str, doc: str, labels: list[str], rows: Iterable[tuple[list[str], float]]):
    family = CounterMetricFamily(name, doc, labels=labels)
    for values, value in rows:
        family.add_metric(values, value)
    return family


def _bridge_families(status) -> Iterator:
    bridge = [status.bridge]
    yield _gauge("ovsnet_bridge_exists", "1 if the OVS bridge exists", ["bridge"],
                 [(bridge, int(status.exists))])  # fmt: skip
    yield _gauge("ovsnet_bridge_up", "1 if the OVS bridge's link is up", ["bridge"],
                 [(bridge, int(status.bridge_up))])  # fmt: skip
    yield _gauge(
        "ovsnet_docker_bridge_attached",
        "1 if the docker bridge is a port of the OVS bridge",
        ["bridge", "docker_bridge"],
        [([status.bridge, status.docker_bridge or ""], int(status.docker_attached))],
    )
    yield _gauge("ovsnet_peers", "Tunnel ports (peers) on the bridge", ["bridge"],
                 [(bridge, len(status.peers))])  # fmt: skip


def _peer_families(peers: list[dict], names: dict[str, str]) -> Iterator:
    # NOTE(perf): two labels per sample. prometheus_client escapes every label of every sample
    # in Python, so port and type, constant per peer, go on one info series instead.
    labels = [[p["remote_ip"], names.get(p["remote_ip"], "")] for p in peers]
    rows = list(zip(labels, peers, strict=True))
    yield _gauge(
        "ovsnet_peer_info",
        "One series per tunnel: its port, type, and whether BFD and IPsec run on it",
        [*PEER_LABELS, "port", "type", "bfd", "ipsec"],
        (
            (
                [
                    *label,
                    p["port"],
                    p["type"],
                    _flag(p["bfd_state"] is not None),
                    _flag(p["ipsec"]),
                ],
                1,
            )
            for label, p in rows
        ),
    )
    yield _gauge(
        "ovsnet_peer_up",
        "1 if the tunnel is up (BFD up, or the link up where BFD does not run)",
        PEER_LABELS,
        ((label, int(p["state"] == "up")) for label, p in rows),
    )
    yield _gauge(
        "ovsnet_peer_ike_established",
        "1 if the IPsec peer is established: IKE SA up, keyed ESP SAs both ways in the kernel, "
        "BFD up where it runs (IPsec peers only)",
        PEER_LABELS,
        ((label, int(p.get("ipsec_state") == "established")) for label, p in rows if p["ipsec"]),
    )
    for key, doc in (
        ("rx_bytes", "Bytes received on the tunnel"),
        ("tx_bytes", "Bytes sent on the tunnel"),
        ("rx_packets", "Packets received on the tunnel"),
        ("tx_packets", "Packets sent on the tunnel"),
    ):
        yield _counter(f"ovsnet_peer_{key}", doc, PEER_LABELS, ((lab, p[key]) for lab, p in rows))


def _flag(value: bool) -> str:
    return "true" if value else "false"


def _guard_families(guard: dict | None) -> Iterator:
    # Only when the host has IPsec tunnels (or a leftover guard): a plaintext mesh has none.
    if guard is None:
        return
    yield _gauge(
        "ovsnet_plaintext_guard_present",
        "1 if the nftables guard that drops unencrypted tunnel traffic is in place as needed",
        [],
        [([], int(guard["in_place"]))],
    )
    yield _gauge("ovsnet_plaintext_guard_peers", "Peers the plaintext guard covers", [],
                 [([], guard["peers"])])  # fmt: skip
    yield _counter(
        "ovsnet_plaintext_guard_dropped_packets",
        "Unencrypted tunnel packets the plaintext guard dropped (an IKE daemon down?)",
        [],
        [([], guard["dropped_packets"])],
    )


# -- collectors ------------------------------------------------------------------------------


class HostCollector:
    """Reads the host at scrape time: one OVSDB read, the bridge's and docker bridge's links."""

    def __init__(self, db: str, bridge: str, names: Callable[[], dict[str, str]] | None = None):
        self.db = db
        self.bridge = bridge
        self.names = names or dict

    def read(self) -> HostReading:
        from ovsnet.netlink import Netlink
        from ovsnet.ovsdb.client import OvsDb
        from ovsnet.services.status import host_status

        started = time.perf_counter()
        try:
            with Netlink() as net:
                status = host_status(OvsDb(self.db), net, self.bridge)
            reading = HostReading(status=status)
        except OvsnetError as exc:
            reading = HostReading(error=exc.one_line())
        reading.seconds = time.perf_counter() - started
        reading.names = self.names()
        return reading

    def collect(self) -> Iterator:
        yield from host_families(self.read())


class IpsecRepairs:
    """IPsec repairs made by this process (a counter in-process repairs increment)."""

    def __init__(self):
        self.count = 0
        self._lock = threading.Lock()

    def inc(self) -> None:
        with self._lock:
            self.count += 1

    def collect(self) -> Iterator:
        yield _counter(
            "ovsnet_ipsec_repairs",
            "IKE repairs (strongSwan restarted on a clean kernel IPsec state) by this process",
            [],
            [([], self.count)],
        )


IPSEC_REPAIRS = IpsecRepairs()


class BuildInfo:
    def collect(self) -> Iterator:
        from ovsnet import __version__

        info = InfoMetricFamily("ovsnet_build", "ovsnet's version", labels=["version"])
        info.add_metric([__version__], {})
        yield info


# -- the server ------------------------------------------------------------------------------


class _QuietHandler(WSGIRequestHandler):
    timeout = REQUEST_TIMEOUT

    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        log.debug("%s %s", self.address_string(), format % args)


class _Server(WSGIServer):
    allow_reuse_address = True


class _Server6(_Server):
    address_family = socket.AF_INET6


class MetricsServer:
    """`/metrics` and `/healthz` on one address, served by one daemon thread.

    One thread, one request at a time: scrapes never run two host reads at once.
    """

    def __init__(self, listen: str, registry: CollectorRegistry, health: Callable[[], list[str]]):
        self.address = parse_listen(listen)
        self.registry = registry
        self.health = health
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        assert self._server is not None, "the port is known once start() has bound it"
        return self._server.server_port

    def start(self) -> MetricsServer:
        host, port = self.address
        server_class = _Server6 if ":" in host else _Server
        try:
            server = make_server(
                host, port, self._app, server_class=server_class, handler_class=_QuietHandler
            )
        except OSError as exc:
            raise InvalidInput(
                f"cannot serve metrics on {host}:{port}: {exc.strerror or exc}",
                "pick a free port on an address of this host",
            ) from None
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, name="ovsnet-metrics", daemon=True
        )
        self._thread.start()
        log.info("serving metrics on http://%s:%d/metrics", host, self.port)
        return self

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> MetricsServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    def _app(self, environ, start_response):
        path = environ.get("PATH_INFO", "/")
        if path == "/metrics":
            body = generate_latest(self.registry)
            start_response("200 OK", [("Content-Type", CONTENT_TYPE_LATEST)])
            return [body]
        if path == "/healthz":
            problems = self.health()
            text = "ok\n" if not problems else "".join(f"{p}\n" for p in problems)
            start_response(
                "503 Service Unavailable" if problems else "200 OK",
                [("Content-Type", "text/plain; charset=utf-8")],
            )
            return [text.encode()]
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"ovsnet: /metrics or /healthz\n"]


def serve(listen: str, collectors: Iterable, health: Callable[[], list[str]]) -> MetricsServer:
    """A started server exposing build info and these collectors."""
    registry = CollectorRegistry(auto_describe=False)
    for collector in (BuildInfo(), *collectors):
        registry.register(collector)
    return MetricsServer(listen, registry, health).start()


def serve_host(listen: str, db: str, bridge: str, *extra, names=None, health=None):
    """A started server for one host; `health` adds problems to the host's own."""
    host = HostCollector(db, bridge, names)

    def problems() -> list[str]:
        return host.read().health_problems() + (health() if health else [])

    return serve(listen, (host, IPSEC_REPAIRS, *extra), problems)
