"""Cluster-mode benchmark: `python -m bench.agent_bench`.

For each size N (default 10 and 50): N real `ovsnet agent` processes, each with its own
ovsdb-server + ovs-vswitchd (userspace datapath, own bridge, `--no-init`), against one etcd with
TLS, client-certificate auth and per-host RBAC. Everything runs in one throwaway network
namespace (etcd on its loopback; N vswitchd instances side by side, each with its own bridge
name), so no lab switch is needed and nothing touches the host's own network.

Measured:
- propagation: a new host record is written (the same claim transaction an agent makes);
  for every one of the N agents, the time until its `peers` event reports the new tunnel
  applied (the event is emitted after OVSDB committed and ovs-vswitchd applied the port).
  p50/p99 over all agents and probes, and the time until the last agent had it.
- idle CPU: utime+stime of each agent process over a quiet window, as % of one core.

Hook for `python -m bench` (H5's runner): `run(sizes=(10, 50), probes=5, idle_s=20, log=print)`
returns a JSON-able dict; `main()` prints a markdown table and writes bench/results/agent.json.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

DEFAULT_OUTPUT = Path(__file__).parent / "results" / "agent.json"
TTL = 10
PROBE_NET = "203.0.113."  # probe hosts' underlay addresses: never reachable, only data
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def percentile(samples: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100)."""
    if not samples:
        return None
    ordered = sorted(samples)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


# -- inside the namespace ----------------------------------------------------------------------


class Fleet:
    """N agents with their own OVS, one etcd; all stopped by PID on exit."""

    def __init__(self, size: int, workdir: Path, log):
        from tests.lab.etcd_harness import EtcdServer

        self.size = size
        self.workdir = workdir
        self.log = log
        self.etcd = EtcdServer(workdir / "etcd")
        self.hosts = []
        self.agents = []

    def __enter__(self) -> Fleet:
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _start(self) -> None:
        from ovsnet.addressing import host_addressing
        from ovsnet.lab.layout import HostLayout

        self.etcd.start()
        names = [f"b{i}" for i in range(1, self.size + 1)]
        self.etcd.grant_direct(*names)
        netns = Path("/proc/self/ns/net").resolve().name  # unused by ovs.start: we are inside
        self.hosts = [
            HostLayout(
                index=i,
                netns=netns,
                rundir=self.workdir / f"b{i}",
                addressing=host_addressing(subnet=f"10.0.{i}.0/24"),
            )
            for i in range(1, self.size + 1)
        ]
        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(start_ovs, self.hosts))
        self.log(f"  {self.size} OVS instances up; starting agents")
        from tests.lab.etcd_harness import AgentProcess

        for host, name in zip(self.hosts, names, strict=True):
            argv = [
                "--json",
                "--db",
                host.db,
                "agent",
                *self.etcd.cli_args(name),
                "--name",
                name,
                "--ttl",
                str(TTL),
                "--no-init",
                "--bridge",
                f"br-{name}",
                "--datapath",
                "netdev",
                "--underlay-ip",
                f"198.51.100.{10 + host.index}",
            ]
            self.agents.append(AgentProcess(name, argv, self.workdir).start())

    def close(self) -> None:
        from ovsnet.lab import ovs
        from ovsnet.lab.proc import stop_pids

        for agent in self.agents:
            agent.stop()
        targets = {
            pid: str(h.rundir) + "/" for h in self.hosts for pid in ovs.pids(h).values() if pid
        }
        stop_pids(targets, timeout=10)
        self.etcd.close()

    def wait_for_mesh(self, timeout: float) -> float:

        started = time.monotonic()
        for agent in self.agents:
            agent.wait_event("peers", timeout=timeout, where=lambda e: e["count"] == self.size - 1)
        return time.monotonic() - started


def start_ovs(host, bridge: str | None = None) -> None:
    """ovsdb-server + ovs-vswitchd of one HostLayout, started in the current namespace, and
    its bridge (netdev datapath); stopped by the caller through ovs.pids(host)."""
    from ovsnet.lab import ovs
    from ovsnet.lab.proc import run

    host.rundir.mkdir(parents=True, exist_ok=True)
    db_file = host.rundir / "conf.db"
    run(["ovsdb-tool", "create", db_file, ovs.SCHEMA])
    # Started directly (we are already inside the namespace).
    for daemon, extra in (
        ("ovsdb-server", [str(db_file), f"--remote=punix:{host.db_socket}"]),
        ("ovs-vswitchd", [host.db]),
    ):
        run(
            [
                daemon,
                *extra,
                f"--pidfile={ovs.pidfile(host, daemon)}",
                f"--unixctl={ovs.control_socket(host, daemon)}",
                f"--log-file={host.rundir / (daemon + '.log')}",
                "-vconsole:off",
                "--detach",
            ],
            env={"OVS_RUNDIR": str(host.rundir), "OVS_LOGDIR": str(host.rundir)},
        )
        if daemon == "ovsdb-server":
            run(ovs.vsctl_argv(host, "--no-wait", "init"))
    bridge = bridge or f"br-b{host.index}"
    run(
        ovs.vsctl_argv(
            host, "add-br", bridge, "--", "set", "Bridge", bridge, "datapath_type=netdev"
        )
    )


def measure_idle_cpu(fleet: Fleet, seconds: float) -> list[float]:
    pids = [a.process.pid for a in fleet.agents]
    before = {pid: cpu_seconds(pid) for pid in pids}
    time.sleep(seconds)
    return [100.0 * (cpu_seconds(pid) - before[pid]) / seconds for pid in pids]


def probe(fleet: Fleet, etcd, number: int, timeout: float = 60):
    """Publish one new host. Returns, per agent, the seconds until it applied a tunnel to it
    and the milliseconds it spent in the OVSDB transaction itself."""
    from ovsnet.cluster.keys import ClusterKeys
    from ovsnet.cluster.records import HostRecord, claim_value, memory_value
    from ovsnet.etcd.client import SubnetClaim
    from tests.lab.etcd_harness import wait_until

    keys = ClusterKeys()
    name, ip = f"probe{number}", f"{PROBE_NET}{number}"
    subnet = IPv4Network(f"10.200.{number}.0/24")
    lease = etcd.grant_lease(TTL)
    record = HostRecord(name, IPv4Address(ip), subnet)
    written = time.time()
    outcome = etcd.claim_subnet(
        SubnetClaim(
            keys.subnet(subnet),
            claim_value(name),
            lease,
            puts=(
                (keys.host(name), record.to_json(), True),
                (keys.last_subnet(name), memory_value(subnet), False),
            ),
        )
    )
    assert outcome.won, f"probe {name} could not claim {subnet}"

    def applied(kind: str) -> dict | None:
        found = {}
        for agent in fleet.agents:
            event = next(
                (e for e in agent.events("peers") if e["ts"] >= written and ip in e[kind]), None
            )
            if event is None:
                return None
            found[agent.name] = (event["ts"] - written, event.get("apply_ms", 0.0))
        return found

    latencies = wait_until(lambda: applied("added"), timeout, f"every agent to add {ip}")
    etcd.revoke_lease(lease)  # the probe host "dies": every agent removes its tunnel
    etcd.delete(keys.last_subnet(name))
    wait_until(lambda: applied("removed"), timeout, f"every agent to remove {ip}")
    return [t for t, _ in latencies.values()], [ms for _, ms in latencies.values()]


def run_inside(sizes: tuple[int, ...], probes: int, idle_s: float, log) -> dict:
    results = {}
    for size in sizes:
        log(f"agent bench: {size} hosts")
        with (
            tempfile.TemporaryDirectory(prefix="ovsnet-agent-bench-") as tmp,
            Fleet(size, Path(tmp), log) as fleet,
        ):
            mesh_s = fleet.wait_for_mesh(timeout=max(120, 6 * size))
            log(f"  mesh of {size} formed in {mesh_s:.1f} s after the last agent started")
            time.sleep(3)  # let start-up work settle before measuring idle CPU
            cpu = measure_idle_cpu(fleet, idle_s)
            samples, last, apply_ms = [], [], []
            with fleet.etcd.client("root") as etcd:
                for number in range(1, probes + 1):
                    latencies, applies = probe(fleet, etcd, number)
                    samples += latencies
                    apply_ms += applies
                    last.append(max(latencies))
            results[str(size)] = {
                "hosts": size,
                "probes": probes,
                "propagation_ms": {
                    "n": len(samples),
                    "p50": round(1000 * percentile(samples, 50), 1),
                    "p99": round(1000 * percentile(samples, 99), 1),
                    "max": round(1000 * max(samples), 1),
                    "all_hosts_p50": round(1000 * statistics.median(last), 1),
                    # of which the OVSDB transaction + vswitchd apply; the rest is etcd, watch
                    # delivery and waiting for a CPU (N agents + N vswitchd share this machine)
                    "apply_p50": round(statistics.median(apply_ms), 1),
                },
                "idle_cpu_pct_per_agent": {
                    "median": round(statistics.median(cpu), 3),
                    "max": round(max(cpu), 3),
                    "window_s": idle_s,
                },
                "mesh_formed_s": round(mesh_s, 1),
            }
            log(
                f"  propagation p50 {results[str(size)]['propagation_ms']['p50']} ms, "
                f"p99 {results[str(size)]['propagation_ms']['p99']} ms; idle CPU median "
                f"{results[str(size)]['idle_cpu_pct_per_agent']['median']} %"
            )
    return results


# -- outside: a throwaway namespace ------------------------------------------------------------


def run(sizes=(10, 50), probes: int = 5, idle_s: float = 20, log=print) -> dict:
    """Create a namespace, run the measurements inside it, remove it. Needs root."""
    netns = f"ovsnet-bench-{secrets.token_hex(3)}"
    subprocess.run(["ip", "netns", "add", netns], check=True)
    try:
        subprocess.run(["ip", "-n", netns, "link", "set", "lo", "up"], check=True)
        argv = [
            "ip",
            "netns",
            "exec",
            netns,
            sys.executable,
            "-m",
            "bench.agent_bench",
            "--inside",
            "--sizes",
            ",".join(map(str, sizes)),
            "--probes",
            str(probes),
            "--idle",
            str(idle_s),
        ]
        done = subprocess.run(
            argv, stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[1]
        )
        if done.returncode != 0:
            raise RuntimeError(f"agent bench failed inside {netns} (exit {done.returncode})")
        return json.loads(done.stdout)
    finally:
        subprocess.run(["ip", "netns", "delete", netns], check=False)


def table(results: dict) -> str:
    lines = [
        "| hosts | record -> tunnel p50 | p99 | last host (p50) | OVSDB apply p50 "
        "| idle CPU/agent (median, max) |",
        "|---|---|---|---|---|---|",
    ]
    for r in results.values():
        p, c = r["propagation_ms"], r["idle_cpu_pct_per_agent"]
        lines.append(
            f"| {r['hosts']} | {p['p50']} ms | {p['p99']} ms | {p['all_hosts_p50']} ms "
            f"| {p.get('apply_p50', '-')} ms | {c['median']} %, {c['max']} % |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.agent_bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--sizes", default="10,50")
    parser.add_argument("--probes", type=int, default=5)
    parser.add_argument("--idle", type=float, default=20.0, help="idle CPU window, seconds")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    sizes = tuple(int(s) for s in args.sizes.split(",") if s.strip())

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    if args.inside:
        print(json.dumps(run_inside(sizes, args.probes, args.idle, log)))
        return 0
    started = time.monotonic()
    results = run(sizes, args.probes, args.idle, log)
    doc = {
        "results": results,
        "elapsed_s": round(time.monotonic() - started, 1),
        "note": "shared 2-core machine, other agents running: figures are noisy",
        "table": table(results),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    print(doc["table"])
    print(f"\n{doc['elapsed_s']} s; JSON: {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
