"""The agent scale benchmark's pure parts: the simulated hosts it writes (the agent's own parser
and planner must take every one), the claim transaction it shares with the agent, its etcd
counters and its comparison table."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

import pytest

from bench.agent_scale import (
    REAL_NAME,
    SUPERNET,
    comparison,
    distribution,
    etcd_bytes,
    etcd_sent,
    figure,
    layout,
    probe_host,
    simulated_host,
)
from ovsnet.cluster.agent_config import AgentConfig, claim_transaction
from ovsnet.cluster.keys import ClusterKeys
from ovsnet.cluster.plan import desired_peers, subnet_conflicts, underlay_conflicts
from ovsnet.cluster.records import claim_value, memory_value, parse_host_entry
from ovsnet.cluster.subnets import usable
from ovsnet.lab.layout import lab_layout


def fleet(count: int) -> dict:
    keys = ClusterKeys()
    records = {}
    for record in [simulated_host(i) for i in range(count)] + [probe_host(n) for n in (1, 254)]:
        claim = claim_transaction(keys, record, lease=7)
        (host_key, value, leased), _ = claim.puts
        # what the agent's watch hands its parser: the key and the bytes the bench wrote
        parsed = parse_host_entry(keys, host_key, value.encode())
        assert parsed == record and leased
        records[parsed.name] = parsed
    return records


def test_a_thousand_simulated_hosts_parse_and_every_one_gets_a_tunnel():
    records = fleet(1000)
    assert len(records) == 1002
    assert not underlay_conflicts(records) and not subnet_conflicts(records)
    assert all(usable(r.subnet, SUPERNET) for r in records.values())
    # the real agent runs on a one-host lab's h1, with that host's /24 (--prefix)
    host = lab_layout("bench-agents-x", "x", 1).hosts[0]
    real = AgentConfig(name=REAL_NAME, underlay_ip=IPv4Address(host.underlay_ip), supernet=SUPERNET)
    plan = desired_peers(records, real.name, real.underlay_ip, "gre", None, SUPERNET)
    assert plan.skipped == ()
    assert len(plan.peers) == 1002
    assert IPv4Network(host.supernet) == SUPERNET
    assert host.addressing.subnet not in {r.subnet for r in records.values()}


def test_the_claim_transaction_is_the_agents_own_layout():
    keys = ClusterKeys()
    record = simulated_host(0)
    claim = claim_transaction(keys, record, lease=42)
    assert claim.subnet_key == keys.subnet(record.subnet)
    assert claim.claim_value == claim_value(record.name)
    assert (claim.lease, claim.expected_revision) == (42, None)
    assert claim.puts[1] == (keys.last_subnet(record.name), memory_value(record.subnet), False)


def test_host_numbers_outside_the_ranges_are_refused():
    with pytest.raises(ValueError):
        simulated_host(-1)
    with pytest.raises(ValueError):
        simulated_host(50_000)
    with pytest.raises(ValueError):
        probe_host(0)
    with pytest.raises(ValueError):
        probe_host(255)


def test_layout_keeps_the_real_agent_and_fills_with_simulated_records():
    assert layout(1000) == (3, 996)
    assert layout(10) == (3, 6)
    assert layout(3) == (2, 0)
    with pytest.raises(ValueError):
        layout(1)


METRICS = """# HELP etcd_network_client_grpc_sent_bytes_total The total number of bytes sent
# TYPE etcd_network_client_grpc_sent_bytes_total counter
etcd_network_client_grpc_sent_bytes_total 1.5e+06
etcd_network_client_grpc_received_bytes_total 2500
etcd_network_client_grpc_sent_bytes_total_other 99
grpc_server_msg_sent_total{grpc_method="Watch",grpc_type="bidi_stream"} 12
"""


def test_etcd_counters_are_read_from_its_prometheus_text():
    assert etcd_bytes(METRICS) == 1_502_500.0
    assert etcd_sent(METRICS) == 1_500_000.0
    assert etcd_bytes("") == 0.0


def test_distribution_is_nearest_rank():
    samples = [float(v) for v in range(1, 21)]  # 20 probes: p99 is the largest
    assert distribution(samples) == {"n": 20, "p50": 10.0, "p99": 20.0, "max": 20.0}
    assert distribution([]) == {"n": 0}


def result(p99: float, rss: float) -> dict:
    return {"propagation_ms": {"p50": p99 / 2, "p99": p99}, "real": {"rss_mb": rss}}


def test_comparison_puts_sizes_side_by_side_with_ratios_and_targets():
    table = comparison({"10": result(40, 60), "1000": result(800, 120), "50": result(100, 70)})
    lines = table.splitlines()
    assert lines[0].startswith("| figure | unit | 10 hosts | 50 hosts | 1000 hosts | 1000/10 |")
    p99 = next(line for line in lines if line.startswith("| new record -> tunnel, p99"))
    assert p99 == (
        "| new record -> tunnel, p99 | ms | 40 | 100 | 800 | 20.00x | 8.00x | <= 1000 | yes |"
    )
    rss = next(line for line in lines if line.startswith("| real agent RSS"))
    assert rss.endswith("| <= 100 | NO |")
    missing = next(line for line in lines if line.startswith("| etcd full read"))
    assert missing == "| etcd full read of the records | B | - | - | - | - | - | - | - |"
    assert figure({"a": {"b": 3}}, ("a", "b")) == 3.0
    assert figure({"a": 1}, ("a", "b")) is None
