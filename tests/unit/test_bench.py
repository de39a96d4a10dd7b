"""The benchmark's pure parts: statistics, targets, tables, peer addresses, argument parsing."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

import pytest

from bench import report, runner
from bench.control import PEER_NET, _applied, _within, peer_ips, port_names
from bench.dataplane import _RTT_RE
from bench.stats import (
    Measurement,
    Target,
    format_value,
    markdown_table,
    ratio,
    summarize,
)


def test_summary_of_odd_and_even_sample_counts():
    odd = summarize([3.0, 1.0, 2.0])
    assert (odd.n, odd.median, odd.low, odd.high) == (3, 2.0, 1.0, 3.0)
    assert summarize([1.0, 2.0, 4.0, 10.0]).median == 3.0
    assert summarize([]) is None


def test_spread_is_half_the_range_over_the_median():
    assert summarize([1.0, 2.0, 3.0]).spread_pct == pytest.approx(50.0)
    assert summarize([5.0]).spread_pct == 0.0


def test_ratio_of_medians_and_its_missing_cases():
    loop, ovsnet = summarize([60.0, 80.0, 70.0]), summarize([2.0, 1.0, 3.0])
    assert ratio(loop, ovsnet) == pytest.approx(35.0)
    assert ratio(loop, None) is None
    assert ratio(loop, summarize([0.0])) is None


def test_targets_at_most_and_at_least():
    assert Target(1.5).met(1.5) is True
    assert Target(1.5).met(1.6) is False
    assert Target(30, at_most=False).met(29.9) is False
    assert Target(30, at_most=False).met(31) is True
    assert Target(1.5).met(None) is None
    assert Target(0.3).describe(" s") == "<= 0.300 s"
    assert Target(30, at_most=False).describe("x") == ">= 30.0x"


def test_format_value_shows_median_range_count_and_failures():
    assert format_value(summarize([1.0, 2.0, 3.0]), "s") == "2.00 s (1.00-3.00, n=3)"
    assert format_value(summarize([0.25]), "s") == "0.250 s (n=1)"
    assert format_value(None, "s", failures=2) == "FAILED x2"
    assert format_value(summarize([120.0, 130.0]), "s", failures=1).endswith("+1 failed")


def test_markdown_table_lines_up():
    table = markdown_table(["a", "longer"], [["1", "2"], ["333", "4"]])
    lines = table.splitlines()
    assert len({len(line) for line in lines}) == 1
    assert lines[1].startswith("|--")
    assert "| 333 |" in lines[3]


def _measured(key: str, samples: list[float], cpu: float = 0.1) -> Measurement:
    m = Measurement(key=key, samples=samples)
    m.cpu_client = [cpu] * len(samples)
    m.cpu_daemons = [cpu] * len(samples)
    return m


def test_control_rows_compare_against_the_loop_and_check_targets_at_1000():
    results = {
        m.key: m
        for m in (
            _measured("add/1000/ovsnet", [1.2, 1.4, 1.3]),
            _measured("sync/1000/ovsnet", [1.6, 1.7, 1.8]),
            _measured("add/1000/vsctl-loop", [78.0], cpu=0.7),
            _measured("noop-sync/1000/ovsnet", [0.5, 0.6, 0.7]),
            _measured("help", [0.2, 0.25]),
        )
    }
    rows = {r.operation: r for r in report.control_rows(results, (1000,))}
    add = rows["peer add (one call)"]
    assert add.ratio == pytest.approx(60.0)
    assert add.met() is True
    assert rows["peer sync FILE (from none)"].met() is False  # 1.7 s > 1.5 s
    assert rows["peer sync, nothing to do"].met() is False
    assert rows["ovsnet --help"].met() is True
    assert "peer sync, 10% replaced" not in rows  # not measured: no row
    text = report.render(results, (1000,), None)
    assert "60.0x (CPU 7.00x)" in text and "NO" in text


def test_a_target_without_its_baseline_is_not_met():
    results = {"add/1000/ovsnet": _measured("add/1000/ovsnet", [1.0])}
    (row, *_) = report.control_rows(results, (1000,))
    assert row.ratio is None
    assert row.met() is False


def test_data_rows_ratio_to_the_underlay():
    results = {
        "data/underlay/tcp": Measurement("data/underlay/tcp", [200.0], unit="Mbit/s"),
        "data/overlay/tcp": Measurement("data/overlay/tcp", [150.0], unit="Mbit/s"),
        "data/wrong-mtu/tcp": Measurement("data/wrong-mtu/tcp", [0.0], unit="Mbit/s"),
        "data/underlay/rtt": Measurement("data/underlay/rtt", [0.5], unit="ms"),
        "data/overlay/rtt": Measurement("data/overlay/rtt", [1.0], unit="ms"),
    }
    rows = {r.path: r for r in report.data_rows(results, 1462)}
    assert rows["overlay, ovsnet's MTU"].throughput_ratio() == pytest.approx(0.75)
    assert rows["overlay, ovsnet's MTU"].rtt_ratio() == pytest.approx(2.0)
    assert rows["overlay, containers at MTU 1500"].throughput_ratio() == 0.0
    assert rows["overlay, ovsnet's MTU"].mtu == "1462"


def test_document_keeps_raw_samples_and_the_table():
    results = {"help": _measured("help", [0.2, 0.3])}
    doc = report.document({"note": "x"}, results, (100,), None)
    assert doc["measurements"]["help"]["samples"] == [0.2, 0.3]
    assert doc["measurements"]["help"]["median"] == 0.25
    assert "ovsnet --help" in doc["table"]


def test_peer_addresses_are_distinct_unicast_and_in_the_benchmarking_range():
    ips = peer_ips(1000)
    assert len(set(ips)) == 1000
    assert all(IPv4Address(ip) in PEER_NET for ip in ips)
    assert not any(ip.endswith((".0", ".255")) for ip in ips)
    assert IPv4Network("198.18.0.0/15") == PEER_NET  # RFC 2544
    assert not set(peer_ips(100, offset=2000)) & set(ips)
    assert len(port_names(ips)) == 1000


def test_applied_needs_exactly_the_expected_ports_each_with_an_ofport_and_no_error():
    assert _applied({"gre-a": (5, None)}, {"gre-a"})
    assert not _applied({"gre-a": (None, None)}, {"gre-a"})
    assert not _applied({"gre-a": (-1, None)}, {"gre-a"})
    assert not _applied({"gre-a": (5, "could not add")}, {"gre-a"})
    assert not _applied({"gre-a": (5, None), "gre-b": (6, None)}, {"gre-a"})
    assert _applied({}, set())


def test_loop_repetitions_stop_when_the_projection_exceeds_the_budget():
    assert _within(0.0, 0, 120)  # the first always runs
    assert _within(50.0, 1, 120)  # a second of 50 s fits in 120
    assert not _within(80.0, 1, 120)  # a second of 80 s does not


def test_runner_arguments():
    args = runner.parse_args(["--sizes", "1000,100,300,100"])
    assert args.sizes == (100, 300, 1000)
    quick = runner.parse_args(["--quick"])
    assert quick.sizes == (3, 5) and quick.no_data_plane and quick.reps == 2
    agents = runner.parse_args(["--agents", "10,50,1000", "--agent-fleet", "10,50"])
    assert (agents.agents, agents.agent_fleet) == ("10,50,1000", "10,50")
    bad_args = (["--sizes", "a,b"], ["--sizes", "0"], ["--agents", "x"], ["--agents", "1,10"],
                ["--agent-fleet", "0"])  # fmt: skip
    for bad in bad_args:
        with pytest.raises(SystemExit) as exc:
            runner.parse_args(bad)
        assert exc.value.code == 2


def test_rtt_parser_reads_each_echo_of_iputils_ping():
    out = (
        "64 bytes from 10.0.2.2: icmp_seq=1 ttl=64 time=0.067 ms\n"
        "64 bytes from 10.0.2.2: icmp_seq=2 ttl=64 time=1.25 ms\n"
        "rtt min/avg/max/mdev = 0.067/0.658/1.250/0.591 ms\n"
    )
    assert _RTT_RE.findall(out) == ["0.067", "1.25"]


def test_read_rows_put_each_install_beside_vsctl_with_a_ratio_and_a_verdict():
    results = {
        "reads/1000/vsctl-list": _measured("reads/1000/vsctl-list", [0.2, 0.2, 0.2], cpu=0.1),
        "reads/1000/dev/status": _measured("reads/1000/dev/status", [0.3, 0.3, 0.3], cpu=0.15),
        "reads/1000/plain/noop-sync": _measured("reads/1000/plain/noop-sync", [0.5, 0.5]),
    }
    rows = {(r.install, r.operation): r for r in report.read_rows(results)}
    assert set(rows) == {("make setup venv", "status --json"),
                         ("plain pip install .", "peer sync, nothing to do")}  # fmt: skip
    status = rows[("make setup venv", "status --json")]
    assert status.ratio == pytest.approx(1.5) and status.cpu_ratio == pytest.approx(1.5)
    assert status.as_json()["met"] is True
    assert rows[("plain pip install .", "peer sync, nothing to do")].as_json()["met"] is False
    table = report.render(results, (1000,), None)
    assert "ovs-vsctl list Interface" in table and "| 1.50x" in table and "NO" in table


def test_reads_options_parse():
    args = runner.parse_args(["--reads-only", "--sizes", "1000", "--venv", "/tmp/v"])
    assert args.reads_only and args.no_data_plane and str(args.venv) == "/tmp/v"
    with pytest.raises(SystemExit):
        runner.parse_args(["--plain-install", "--venv", "/tmp/v"])
