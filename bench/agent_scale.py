"""The cluster agent as the fleet grows: `python -m bench.agent_scale --sizes 10,50,1000`.

1,000 agent processes do not fit on a 2-core machine, so for each fleet size N the etcd holds N
host records of three kinds (etcd with TLS,
client-certificate auth and per-host RBAC, all on the lab host's loopback, a fresh lab for
each size):

- one **real agent with a data plane**: a netns lab host (`ovsnet.lab`, one host, its own
  ovsdb-server and ovs-vswitchd, userspace datapath, no dockerd: `docker0` is the Linux bridge
  `dockerd --bip` would leave), `ovsnet init` done as for the control-plane bench, then
  `ovsnet agent --no-init --prefix` of that host's /24: the agent measured, with source pinning
  (its OpenFlow rules follow every tunnel) as on a real host;
- `WATCHERS` real **`--no-dataplane` agents**: they claim, publish, keep their lease and watch
  like any agent, so etcd's traffic per agent and a plain agent's memory and CPU are measured
  too;
- the rest, **simulated hosts**: records the benchmark writes with `claim_transaction`, the
  very transaction an agent makes (claim, record and last-subnet keys, each host its own lease),
  from `AgentConfig.record`, so their values are byte for byte what a `--no-dataplane` agent
  with that name and address writes. Written as root (no etcd user per simulated host), with a
  lease of `SIM_TTL` that outlives the run (nobody keeps it alive, so they cost etcd no
  keepalives: the traffic per host comes from the real agents).

Measured, per size:
- new record -> its tunnel on the real agent: `PROBES` new hosts are published one after the
  other (claim transaction); the clock runs from just before the write to the real agent's
  `peers` event naming the new address (emitted once OVSDB committed and ovs-vswitchd applied
  the port). Then the host "dies" (its lease is revoked) and the removal is timed the same way;
- reconcile time of one change: the agent's own `reconcile_ms` of that event (planning from all
  N records, then the OVSDB transaction and vswitchd's apply), for additions and removals;
- mesh: from the real agent's start to its first `peers` event with all N-1 tunnels, checked in
  OVSDB (`ovs-vsctl list-ports`);
- idle CPU (utime+stime from /proc over `--idle` seconds) and memory (VmRSS, peak VmHWM) of the
  real agent and the watchers;
- etcd traffic, from etcd's own counters (`etcd_network_client_grpc_{sent,received}_bytes_total`
  on its /metrics): bytes/s over the idle window divided by the agents connected
  (1 + WATCHERS; the window holds each agent's keepalives and its one resync, a full read of
  the records), the size of one full read (what every agent reads at session start and each
  resync interval), and the bytes etcd sends per new host divided by the agents watching.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

from bench.agent_bench import cpu_seconds, percentile
from ovsnet.cluster import DEFAULT_RESYNC_INTERVAL
from ovsnet.cluster.agent_config import AgentConfig
from ovsnet.cluster.records import HostRecord

DEFAULT_OUTPUT = Path(__file__).parent / "results" / "agent_scale.json"
SUPERNET = IPv4Network("10.0.0.0/8")
TTL = 10  # the real agents' lease, as in bench/agent_bench.py (keepalive every TTL/3)
SIM_TTL = 3600  # simulated hosts' leases: longer than any run, so nobody refreshes them
WATCHERS = 3
PROBES = 20
# The idle window holds one resync (every DEFAULT_RESYNC_INTERVAL, a full read of the records
# and a reconcile): the figure is then the true average of an idle agent.
IDLE_S = DEFAULT_RESYNC_INTERVAL + 5
REAL_NAME = "real"
STARTED_AT = "2026-11-29T00:00:00+00:00"
ETCD_BYTES = (
    "etcd_network_client_grpc_sent_bytes_total",
    "etcd_network_client_grpc_received_bytes_total",
)

# -- pure ------------------------------------------------------------------------------------


def simulated_host(index: int) -> HostRecord:
    """Simulated host `index` (0-based): a record as `ovsnet agent --no-dataplane --name
    simI --underlay-ip ADDR` with subnet 10.(1 + I // 256).(I % 256).0/24 writes it.
    Underlay addresses from 198.18.0.0/15 (RFC 2544's benchmarking range)."""
    if not 0 <= index < 250 * 200:
        raise ValueError(f"simulated host index {index} out of range")
    config = AgentConfig(
        name=f"sim{index}",
        underlay_ip=IPv4Address(f"198.18.{index // 200}.{1 + index % 200}"),
        supernet=SUPERNET,
    )
    subnet = IPv4Network(f"10.{1 + index // 256}.{index % 256}.0/24")
    return config.record(subnet, STARTED_AT)


def probe_host(number: int) -> HostRecord:
    """New host `number` (1-based) published during the measurement."""
    if not 1 <= number <= 254:
        raise ValueError(f"probe number {number} out of range")
    config = AgentConfig(
        name=f"probe{number}", underlay_ip=IPv4Address(f"203.0.113.{number}"), supernet=SUPERNET
    )
    return config.record(IPv4Network(f"10.200.{number}.0/24"), STARTED_AT)


def layout(size: int, watchers: int = WATCHERS) -> tuple[int, int]:
    """(watchers, simulated records) for a fleet of `size` hosts, the real agent included."""
    if size < 2:
        raise ValueError("a fleet needs at least 2 hosts")
    kept = min(watchers, size - 1)
    return kept, size - 1 - kept


def etcd_bytes(metrics_text: str) -> float:
    """Bytes etcd sent plus received on its client gRPC connections, from its /metrics."""
    total = 0.0
    for line in metrics_text.splitlines():
        name, _, value = line.partition(" ")
        if name.split("{", 1)[0] in ETCD_BYTES:
            total += float(value)
    return total


def etcd_sent(metrics_text: str) -> float:
    for line in metrics_text.splitlines():
        name, _, value = line.partition(" ")
        if name.split("{", 1)[0] == ETCD_BYTES[0]:
            return float(value)
    return 0.0


def distribution(samples: Iterable[float]) -> dict:
    values = list(samples)
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "p50": round(percentile(values, 50), 1),
        "p99": round(percentile(values, 99), 1),
        "max": round(max(values), 1),
    }


# The figures compared across sizes: (label, path in a size's result, unit, upper limit).
FIGURES = (
    ("new record -> tunnel, p50", ("propagation_ms", "p50"), "ms", None),
    ("new record -> tunnel, p99", ("propagation_ms", "p99"), "ms", 1000.0),
    ("dead host -> tunnel removed, p99", ("removal_ms", "p99"), "ms", None),
    ("reconcile of one change, p50", ("reconcile_ms", "p50"), "ms", None),
    ("reconcile of one change, p99", ("reconcile_ms", "p99"), "ms", None),
    ("CPU per change (real agent)", ("cpu_ms_per_change",), "ms", None),
    ("mesh of N-1 tunnels from start", ("mesh_s",), "s", None),
    ("real agent RSS", ("real", "rss_mb"), "MB", 100.0),
    ("real agent peak RSS", ("real", "peak_rss_mb"), "MB", 100.0),
    ("real agent idle CPU", ("real", "idle_cpu_pct"), "% of a core", 1.0),
    ("--no-dataplane agent RSS (max)", ("watchers", "rss_mb"), "MB", 100.0),
    ("--no-dataplane agent idle CPU (max)", ("watchers", "idle_cpu_pct"), "% of a core", 1.0),
    ("etcd traffic per idle agent (1 resync)", ("etcd", "idle_bytes_per_s_per_agent"), "B/s", None),
    ("etcd full read of the records", ("etcd", "full_read_bytes"), "B", None),
    ("etcd sent per change per agent", ("etcd", "sent_bytes_per_change_per_agent"), "B", None),
)


def figure(result: dict, path: tuple[str, ...]) -> float | None:
    value: object = result
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return float(value) if isinstance(value, int | float) else None


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 100:
        return f"{value:.0f}"
    return f"{value:.3g}"


def comparison(results: dict) -> str:
    """Every figure side by side for each size, the largest size's ratio to each smaller one,
    and the issue's target where there is one."""
    sizes = sorted(results, key=int)
    largest = sizes[-1]
    ratios = [s for s in sizes[:-1]]
    header = (
        ["figure", "unit", *[f"{s} hosts" for s in sizes]]
        + [f"{largest}/{s}" for s in ratios]
        + ["target", f"met at {largest}"]
    )
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for label, path, unit, target in FIGURES:
        values = [figure(results[s], path) for s in sizes]
        top = values[-1]
        row = [label, unit, *[_number(v) for v in values]]
        for value in values[:-1]:
            row.append(f"{top / value:.2f}x" if top is not None and value else "-")
        if target is None:
            row += ["-", "-"]
        else:
            row += [f"<= {target:g}", "-" if top is None else ("yes" if top <= target else "NO")]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


# -- inside the namespace --------------------------------------------------------------------


def _proc_status(pid: int) -> dict[str, float]:
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(value.split()[0]) / 1024  # kB -> MB
    return found


@dataclass(frozen=True)
class RealHost:
    """The lab host the real agent runs on (`ovsnet init` done): where its OVSDB is, its /24
    and its underlay address."""

    db: str
    prefix: str
    underlay_ip: str
    bridge: str = "br0"


class ScaleRun:
    """One fleet size on the real host: etcd, the records, the agents; all stopped by PID when
    the `with` ends (the host's OVS belongs to the lab, which the outside tears down)."""

    def __init__(self, size: int, workdir: Path, real: RealHost, log, watchers: int = WATCHERS):
        from tests.lab.etcd_harness import EtcdServer

        self.size = size
        self.workdir = workdir
        self.host = real
        self.log = log
        self.watcher_count, self.sim_count = layout(size, watchers)
        self.etcd = EtcdServer(workdir / "etcd", metrics=True)
        self.real = None
        self.watchers: list = []

    def __enter__(self) -> ScaleRun:
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _agent(self, name: str, *options: str, db: str | None = None):
        from tests.lab.etcd_harness import AgentProcess

        argv = ["--json", *(["--db", db] if db else []), "agent", *self.etcd.cli_args(name),
                "--name", name, "--ttl", str(TTL), *options]  # fmt: skip
        return AgentProcess(name, argv, self.workdir).start()

    def _start(self) -> None:
        from ovsnet.cluster.agent_config import claim_transaction
        from ovsnet.cluster.keys import ClusterKeys

        self.etcd.start()
        names = [REAL_NAME, *[f"w{i}" for i in range(1, self.watcher_count + 1)]]
        self.etcd.grant_direct(*names)
        keys = ClusterKeys()
        started = time.monotonic()
        with self.etcd.client("root") as etcd:
            for index in range(self.sim_count):
                record = simulated_host(index)
                lease = etcd.grant_lease(SIM_TTL)
                if not etcd.claim_subnet(claim_transaction(keys, record, lease)).won:
                    raise RuntimeError(f"simulated host {record.name}: claim lost")
        self.log(f"  {self.sim_count} simulated records in {time.monotonic() - started:.1f} s")
        for i in range(1, self.watcher_count + 1):
            # --prefix: a random claim could take the real host's /24 (10.0.1.0/24)
            options = ["--underlay-ip", f"192.0.2.{10 + i}", "--prefix", f"10.250.{i}"]
            self.watchers.append(self._agent(f"w{i}", "--no-dataplane", *options))
        for watcher in self.watchers:
            watcher.wait_event("claimed", timeout=120)
        self.real_started = time.time()
        self.real = self._agent(
            REAL_NAME, "--no-init", "--bridge", self.host.bridge, "--datapath", "netdev",
            "--underlay-ip", self.host.underlay_ip, "--prefix", self.host.prefix, db=self.host.db,
        )  # fmt: skip

    def close(self) -> None:
        for agent in [self.real, *self.watchers]:
            if agent is not None:
                agent.stop()
        self.etcd.close()

    # -- measurements ----------------------------------------------------------------------

    def agents(self) -> list:
        return [self.real, *self.watchers]

    def wait_mesh(self) -> float:
        from ovsnet.lab.proc import run

        try:
            event = self.real.wait_event(
                "peers", timeout=120, where=lambda e: e["count"] == self.size - 1
            )
        except AssertionError:
            events = [e["event"] for e in self.real.events()]
            tail = self.real.log_tail()
            raise RuntimeError(f"real agent: events {events}; log: {tail}") from None
        out = run(["ovs-vsctl", f"--db={self.host.db}", "--format=json", "--columns=name",
                   "find", "Interface", "type=gre"]).stdout  # fmt: skip
        tunnels = len(json.loads(out)["data"])
        if tunnels != self.size - 1:
            raise RuntimeError(f"OVSDB holds {tunnels} GRE interfaces, not {self.size - 1}")
        for watcher in self.watchers:
            watcher.wait_event("peers", timeout=120, where=lambda e: e["count"] == self.size - 1)
        return event["ts"] - self.real_started

    def idle(self, seconds: float) -> dict:
        pids = [a.process.pid for a in self.agents()]
        cpu = {pid: cpu_seconds(pid) for pid in pids}
        traffic = etcd_bytes(self.etcd.metrics())
        time.sleep(seconds)
        traffic = etcd_bytes(self.etcd.metrics()) - traffic
        usage = [100.0 * (cpu_seconds(pid) - cpu[pid]) / seconds for pid in pids]
        memory = [_proc_status(pid) for pid in pids]
        return {
            "real": {
                "idle_cpu_pct": round(usage[0], 3),
                "rss_mb": round(memory[0]["VmRSS"], 1),
                "peak_rss_mb": round(memory[0]["VmHWM"], 1),
            },
            "watchers": {
                "n": len(pids) - 1,
                "idle_cpu_pct": round(max(usage[1:], default=0.0), 3),
                "idle_cpu_pct_median": round(statistics.median(usage[1:]), 3)
                if usage[1:]
                else None,
                "rss_mb": round(max((m["VmRSS"] for m in memory[1:]), default=0.0), 1),
            },
            "idle_window_s": seconds,
            "idle_bytes_per_s_per_agent": round(traffic / seconds / len(pids), 1),
        }

    def full_read_bytes(self) -> float:
        from ovsnet.cluster.keys import ClusterKeys

        with self.etcd.client("root") as etcd:
            etcd.read_prefix("/nothing/")  # connect first: the TLS handshake is not the read
            before = etcd_bytes(self.etcd.metrics())
            snapshot = etcd.read_prefix(ClusterKeys().hosts)
            after = etcd_bytes(self.etcd.metrics())
        if len(snapshot.items) != self.size:
            raise RuntimeError(f"read {len(snapshot.items)} host records, not {self.size}")
        return after - before

    def probes(self, count: int) -> dict:
        added, removed, reconcile, watchers_ms, sent = [], [], [], [], []
        cpu_before = cpu_seconds(self.real.process.pid)
        with self.etcd.client("root") as etcd:
            for number in range(1, count + 1):
                add, remove, bytes_sent = self._probe(etcd, probe_host(number))
                sent.append(bytes_sent)
                added.append(1000 * add[0])
                removed.append(1000 * remove)
                reconcile += add[1]
                watchers_ms += [1000 * t for t in add[2]]
        cpu = cpu_seconds(self.real.process.pid) - cpu_before
        return {
            "probes": count,
            "propagation_ms": distribution(added),
            "removal_ms": distribution(removed),
            "reconcile_ms": distribution(reconcile),
            "watchers_propagation_ms": distribution(watchers_ms),
            # both reconciles of each probe (add and remove), per change
            "cpu_ms_per_change": round(1000 * cpu / (2 * count), 1),
            "sent_bytes_per_change": statistics.median(sent),
        }

    def _probe(self, etcd, record: HostRecord):
        """Publish one new host, then let it die. ((seconds to the real agent's tunnel, its
        two reconcile times, the watchers' seconds), seconds to removal, bytes etcd sent)."""
        from ovsnet.cluster.agent_config import claim_transaction
        from ovsnet.cluster.keys import ClusterKeys

        keys = ClusterKeys()
        ip = str(record.underlay_ip)
        lease = etcd.grant_lease(TTL)
        before = etcd_sent(self.etcd.metrics())
        written = time.time()
        if not etcd.claim_subnet(claim_transaction(keys, record, lease)).won:
            raise RuntimeError(f"probe {record.name}: claim lost")
        events = [
            a.wait_event("peers", timeout=60, after=written, where=lambda e: ip in e["added"])
            for a in self.agents()
        ]
        sent = etcd_sent(self.etcd.metrics()) - before
        revoked = time.time()
        etcd.revoke_lease(lease)  # the host dies: its claim and record go with the lease
        gone = [
            a.wait_event("peers", timeout=60, after=revoked, where=lambda e: ip in e["removed"])
            for a in self.agents()
        ]
        etcd.delete(keys.last_subnet(record.name))
        add = (
            events[0]["ts"] - written,
            [events[0]["reconcile_ms"], gone[0]["reconcile_ms"]],
            [e["ts"] - written for e in events[1:]],
        )
        return add, gone[0]["ts"] - revoked, sent


def run_size(size: int, real: RealHost, probes: int, idle_s: float, log) -> dict:
    log(f"agent scale bench: {size} hosts")
    with (
        tempfile.TemporaryDirectory(prefix="ovsnet-agent-scale-") as tmp,
        ScaleRun(size, Path(tmp), real, log) as fleet,
    ):
        mesh_s = fleet.wait_mesh()
        log(f"  real agent: {size - 1} tunnels {mesh_s:.1f} s after its start")
        time.sleep(3)  # start-up work settles before the idle window
        idle = fleet.idle(idle_s)
        read = fleet.full_read_bytes()
        measured = fleet.probes(probes)
        agents = 1 + fleet.watcher_count
        # What each apply of the real agent was planned from: "cache" (its copy of what it
        # applied), else why it read OVSDB and dumped the flows (start-up, resync, ...).
        reads = Counter(
            e.get("read", "-") for e in fleet.real.events() if e["event"].startswith("peers")
        )
        result = {
            "hosts": size,
            "real_agents": agents,
            "simulated_records": fleet.sim_count,
            "mesh_s": round(mesh_s, 2),
            "dataplane_reads": dict(sorted(reads.items())),
            "real": idle.pop("real"),
            "watchers": idle.pop("watchers"),
            **{k: v for k, v in measured.items() if k != "sent_bytes_per_change"},
            "etcd": {
                "idle_window_s": idle["idle_window_s"],
                "idle_bytes_per_s_per_agent": idle["idle_bytes_per_s_per_agent"],
                "full_read_bytes": round(read),
                # the idle window holds each agent's resync (IDLE_S): keepalives + one full read
                "resync_interval_s": DEFAULT_RESYNC_INTERVAL,
                "sent_bytes_per_change_per_agent": round(
                    measured["sent_bytes_per_change"] / agents
                ),
            },
        }
        p = result["propagation_ms"]
        log(f"  record -> tunnel p50 {p['p50']} ms p99 {p['p99']} ms; real agent idle "
            f"{result['real']['idle_cpu_pct']} %, RSS {result['real']['rss_mb']} MB")  # fmt: skip
        return result


# -- outside: a throwaway namespace ----------------------------------------------------------


def run(sizes=(10, 50, 1000), probes: int = PROBES, idle_s: float = IDLE_S, log=print) -> dict:
    """For each size, a fresh one-host netns lab with `ovsnet init` done; the measurement runs
    inside that host's namespace. Needs root."""
    from bench.host import control_host

    results = {}
    for size in sizes:
        with control_host() as host:
            argv = host.in_netns([
                sys.executable, "-m", "bench.agent_scale", "--inside", "--sizes", str(size),
                "--probes", str(probes), "--idle", str(idle_s), "--db", host.db,
                "--prefix", host.lab_host.prefix, "--underlay-ip", host.lab_host.underlay_ip,
            ])  # fmt: skip
            done = subprocess.run(
                argv, stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[1]
            )
            if done.returncode != 0:
                raise RuntimeError(f"agent scale bench failed at {size} hosts "
                                   f"(exit {done.returncode})")  # fmt: skip
            results.update(json.loads(done.stdout))
    return results


def _load() -> list[float]:
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.agent_scale",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--sizes", default="10,50,1000")
    parser.add_argument("--probes", type=int, default=PROBES)
    parser.add_argument("--idle", type=float, default=IDLE_S, help="idle window, seconds")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    for option in ("--db", "--prefix", "--underlay-ip"):  # the real host, given to --inside
        parser.add_argument(option, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    sizes = tuple(sorted({int(s) for s in args.sizes.split(",") if s.strip()}))

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    if args.inside:
        real = RealHost(args.db, args.prefix, args.underlay_ip)
        print(json.dumps({str(s): run_size(s, real, args.probes, args.idle, log) for s in sizes}))
        return 0
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    started, load_before = time.monotonic(), _load()
    results = run(sizes, args.probes, args.idle, log)
    doc = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "results": results,
        "elapsed_s": round(time.monotonic() - started, 1),
        "load_before": load_before,
        "load_after": _load(),
        "note": "shared 2-core machine, other agents running: figures are noisy",
        "table": comparison(results),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    print(doc["table"])
    print(f"\n{doc['elapsed_s']} s; load average {doc['load_before']} -> {doc['load_after']}; "
          f"JSON: {args.output}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
