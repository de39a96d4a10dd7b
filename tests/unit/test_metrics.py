"""Metrics: from a host's status to Prometheus series, the HTTP server, JSON logs, agent hooks."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import urllib.error
import urllib.request

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import generate_latest

from ovsnet.cli import main
from ovsnet.cluster import telemetry
from ovsnet.errors import InvalidInput
from ovsnet.logs import JsonLines
from ovsnet.metrics import BuildInfo, HostReading, MetricsServer, host_families, parse_listen
from ovsnet.services.status import StatusResult


def peer(ip: str, state: str = "up", ipsec: bool = False, **extra) -> dict:
    return {
        "remote_ip": ip,
        "port": "gre-" + "".join(f"{int(o):02x}" for o in ip.split(".")),
        "type": "gre",
        "ipsec": ipsec,
        "state": state,
        "link_state": "up",
        "bfd_state": state,
        "rx_packets": 10,
        "tx_packets": 20,
        "rx_bytes": 1000,
        "tx_bytes": 2000,
        "error": None,
        **extra,
    }


def healthy_status(**changes) -> StatusResult:
    status = StatusResult(
        bridge="br0",
        exists=True,
        datapath="system",
        bridge_up=True,
        docker_bridge="docker0",
        docker_attached=True,
        peers=[peer("198.51.100.2"), peer("198.51.100.3", state="down")],
    )
    for key, value in changes.items():
        setattr(status, key, value)
    return status


def exposition(reading: HostReading) -> str:
    class Families:
        def collect(self):
            return host_families(reading)

    registry = CollectorRegistry(auto_describe=False)
    registry.register(Families())
    registry.register(BuildInfo())
    return generate_latest(registry).decode()


def value(body: str, series: str) -> float:
    for line in body.splitlines():
        if line.startswith(series + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{series} not in the exposition")


@pytest.mark.parametrize(
    "text,expected",
    [("127.0.0.1:9475", ("127.0.0.1", 9475)), ("[::1]:80", ("::1", 80)), ("h:0", ("h", 0))],
)
def test_listen_addresses(text, expected):
    assert parse_listen(text) == expected


@pytest.mark.parametrize("text", ["9475", ":9475", "host:", "host:http", "host:65536", ""])
def test_bad_listen_addresses_are_bad_input(text):
    with pytest.raises(InvalidInput):
        parse_listen(text)


def test_peer_series_carry_remote_ip_and_the_name_where_known():
    reading = HostReading(status=healthy_status(), names={"198.51.100.2": "h2"})
    body = exposition(reading)
    assert value(body, 'ovsnet_peer_up{name="h2",remote_ip="198.51.100.2"}') == 1
    assert value(body, 'ovsnet_peer_up{name="",remote_ip="198.51.100.3"}') == 0
    assert value(body, 'ovsnet_peer_rx_bytes_total{name="h2",remote_ip="198.51.100.2"}') == 1000
    assert value(body, 'ovsnet_peer_tx_packets_total{name="",remote_ip="198.51.100.3"}') == 20
    attached = 'ovsnet_docker_bridge_attached{bridge="br0",docker_bridge="docker0"}'
    assert value(body, attached) == 1
    assert value(body, "ovsnet_healthy") == 1, "a peer down is not this host's health problem"
    assert "ovsnet_plaintext_guard_present" not in body, "no IPsec, no guard series"
    assert "ovsnet_peer_ike_established{" not in body


def test_ipsec_peers_and_the_guard():
    status = healthy_status(
        peers=[
            peer("198.51.100.2", ipsec=True, ipsec_state="established"),
            peer("198.51.100.3", ipsec=True, ipsec_state="connecting"),
        ],
        plaintext_guard={"peers": 2, "in_place": True, "dropped_packets": 7},
    )
    body = exposition(HostReading(status=status))
    assert value(body, 'ovsnet_peer_ike_established{name="",remote_ip="198.51.100.2"}') == 1
    assert value(body, 'ovsnet_peer_ike_established{name="",remote_ip="198.51.100.3"}') == 0
    assert value(body, "ovsnet_plaintext_guard_present") == 1
    assert value(body, "ovsnet_plaintext_guard_dropped_packets_total") == 7
    assert value(body, "ovsnet_healthy") == 1


def test_an_unreadable_host_is_unhealthy_with_no_peer_series():
    body = exposition(HostReading(error="cannot reach OVSDB at unix:/x (No such file)"))
    assert value(body, "ovsnet_host_read_ok") == 0
    assert value(body, "ovsnet_healthy") == 0
    assert "ovsnet_peer_up{" not in body


def test_promtool_accepts_the_exposition():
    assert shutil.which("promtool"), "promtool is not installed: run `bash scripts/setup.sh`"
    status = healthy_status(plaintext_guard={"peers": 1, "in_place": False, "dropped_packets": 0})
    body = exposition(HostReading(status=status, names={"198.51.100.3": "h3"}))
    done = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True,
                          text=True)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as reply:
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_server_answers_metrics_and_health_on_loopback():
    problems: list[str] = []
    registry = CollectorRegistry(auto_describe=False)
    registry.register(BuildInfo())
    with MetricsServer("127.0.0.1:0", registry, lambda: list(problems)) as server:
        status, body = get(server.port, "/metrics")
        assert status == 200 and 'ovsnet_build_info{version="' in body
        assert get(server.port, "/healthz") == (200, "ok\n")
        problems.append("peer 198.51.100.3 is down")
        assert get(server.port, "/healthz") == (503, "peer 198.51.100.3 is down\n")
        assert get(server.port, "/")[0] == 404
        port = server.port
    with pytest.raises(urllib.error.URLError):
        get(port, "/healthz")


def test_a_taken_port_is_bad_input():
    registry = CollectorRegistry()
    with (
        MetricsServer("127.0.0.1:0", registry, list) as first,
        pytest.raises(InvalidInput, match="cannot serve metrics"),
    ):
        MetricsServer(f"127.0.0.1:{first.port}", registry, list).start()


@pytest.mark.parametrize(
    "args", [["--metrics-listen", "nowhere"], ["--log-format", "yaml"]], ids=["listen", "log"]
)
def test_supervise_refuses_bad_options_before_starting_anything(args, capsys, tmp_path):
    code = main(["--db", f"unix:{tmp_path}/db.sock", "supervise", *args])
    assert code == 2
    assert capsys.readouterr().err.startswith("ovsnet: error:")
    assert list(tmp_path.iterdir()) == [], "nothing started"


def test_json_log_lines_carry_event_and_fields():
    record = logging.LogRecord("ovsnet.agent", logging.WARNING, __file__, 1, "bad-record %s",
                               ("key=/x",), None)  # fmt: skip
    record.event = "bad-record"
    record.fields = {"key": "/x", "problem": "not JSON"}
    line = json.loads(JsonLines().format(record))
    assert line["level"] == "warning" and line["event"] == "bad-record"
    assert line["fields"] == {"key": "/x", "problem": "not JSON"}
    assert line["message"] == "bad-record key=/x" and line["time"].endswith("+00:00")


def test_agent_events_feed_the_agent_series():
    bad = telemetry.BAD_RECORDS._value.get()
    telemetry.observe({"event": "bad-record", "key": "/ovsnet/hosts/x"})
    assert telemetry.BAD_RECORDS._value.get() == bad + 1
    before = _count(telemetry.RECORD_TO_TUNNEL_SECONDS)
    telemetry.record_seen("198.51.100.7")
    telemetry.observe({"event": "peers", "added": ["198.51.100.7", "198.51.100.8"]})
    assert _count(telemetry.RECORD_TO_TUNNEL_SECONDS) == before + 1, "only peers seen count"
    telemetry.observe({"event": "peers", "added": ["198.51.100.7"]})
    assert _count(telemetry.RECORD_TO_TUNNEL_SECONDS) == before + 1, "each record once"


def _count(histogram) -> float:
    for metric in histogram.collect():
        for s in metric.samples:
            if s.name.endswith("_count"):
                return s.value
    raise AssertionError("no _count sample")


def _names(app) -> set[str]:
    commands = {c.name or c.callback.__name__ for c in app.registered_commands}
    return commands | {g.name for g in app.registered_groups}


@pytest.mark.parametrize(
    "argv,expected",
    [
        (["--db", "unix:/x", "--json", "status"], {"init", "status", "reset"}),
        (["--db=unix:/x", "peer", "sync", "f"], {"peer"}),
        (["metrics", "--listen", "127.0.0.1:1"], {"metrics"}),
    ],
)
def test_a_plain_command_line_builds_only_its_command(argv, expected):
    from ovsnet.cli.app import app_for

    assert _names(app_for(argv)) == expected


@pytest.mark.parametrize("argv", [[], ["--help"], ["--db"], ["nosuch"], ["--json", "--version"]])
def test_anything_else_gets_every_command(argv):
    from ovsnet.cli.app import COMMAND_MODULES, app_for

    assert _names(app_for(argv)) >= set(COMMAND_MODULES) - {"render-examples"}
