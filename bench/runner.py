"""`python -m bench`: build throwaway hosts, measure, print the tables, write the JSON."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bench import report
from bench.control import ControlBench, ControlConfig
from bench.host import control_host, ovsnet_argv
from bench.stats import Measurement

DEFAULT_OUTPUT = Path(__file__).parent / "results" / "latest.json"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--sizes",
        default="100,300,1000",
        help="peer counts for add/sync/loop (default 100,300,1000)",
    )
    parser.add_argument("--reps", type=int, default=5, help="repetitions of ovsnet operations")
    parser.add_argument(
        "--loop-reps", type=int, default=3, help="repetitions of the ovs-vsctl loop, at most"
    )
    parser.add_argument(
        "--loop-budget",
        type=float,
        default=120.0,
        help="seconds of ovs-vsctl loop per size before repetitions stop",
    )
    parser.add_argument("--help-reps", type=int, default=10)
    parser.add_argument(
        "--no-remove-all",
        action="store_true",
        help="skip `peer sync` of an empty file with every peer in place",
    )
    parser.add_argument(
        "--no-data-plane",
        action="store_true",
        help="skip iperf3/ping between containers (needs Docker in the lab)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="tiny sizes and repetitions, no data plane: checks the runner works",
    )
    parser.add_argument("--data-seconds", type=int, default=5, help="iperf3 run length")
    parser.add_argument("--data-reps", type=int, default=3)
    parser.add_argument(
        "--agents",
        default="",
        help="also run the cluster-agent scale bench (bench/agent_scale.py: N host records, "
        "one real agent with a data plane) for these fleet sizes, e.g. 10,50,1000 "
        "(about 3 minutes per size: off by default)",
    )
    parser.add_argument(
        "--agent-fleet",
        default="",
        help="also run the bench of N real agents each with its own OVS (bench/agent_bench.py) "
        "for these sizes, e.g. 10,50",
    )
    parser.add_argument(
        "--reads-only",
        action="store_true",
        help="only the reads beside ovs-vsctl (status, no-op sync, metrics scrape) at the "
        "largest size, no data plane",
    )
    other = parser.add_mutually_exclusive_group()
    other.add_argument(
        "--plain-install",
        action="store_true",
        help="also measure the reads with ovsnet from a temp venv made by a plain "
        "`pip install .` (no Debian JSON parser lent; needs PyPI)",
    )
    other.add_argument(
        "--venv",
        type=Path,
        help="also measure the reads with the ovsnet of this venv (e.g. a plain install)",
    )
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--quiet", action="store_true", help="print only the tables")
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.reps, args.loop_reps, args.help_reps = "3,5", 2, 1, 2
        args.no_data_plane = True
    if args.reads_only:
        args.no_data_plane = True
    try:
        args.sizes = _sizes(args.sizes)
        _sizes(args.agents or "1")
        _sizes(args.agent_fleet or "1")
        if args.agents and min(_sizes(args.agents)) < 2:
            raise ValueError(args.agents)
    except ValueError:
        parser.error(
            "--sizes, --agents and --agent-fleet take positive integers separated by commas, "
            "e.g. 100,300 (--agents: at least 2)"
        )
    return args


def _sizes(text: str) -> tuple[int, ...]:
    sizes = tuple(sorted({int(s) for s in text.split(",") if s.strip()}))
    if not sizes or min(sizes) < 1:
        raise ValueError(text)
    return sizes


def machine() -> dict:
    def first_line(argv: list[str]) -> str | None:
        try:
            out = subprocess.run(argv, capture_output=True, text=True, timeout=10).stdout
        except OSError:
            return None
        return out.strip().splitlines()[0] if out.strip() else None

    cpu = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import ovsnet

    return {
        "cpu": cpu,
        # PYTHONPATH=/some/tree python -m bench measures that tree's ovsnet (e.g. a patch).
        "ovsnet_source": str(Path(ovsnet.__file__).parent),
        "cpus": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "ovs": first_line(["ovs-vswitchd", "--version"]),
        "iperf3": first_line(["iperf3", "--version"]),
        "git_commit": first_line(
            ["git", "-C", str(Path(__file__).parent), "rev-parse", "--short", "HEAD"]
        ),  # fmt: skip
    }


def _load() -> list[float]:
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


def _raise_on_sigterm() -> None:
    def handler(signum, frame):
        raise SystemExit(128 + signum)  # runs every cleanup on the way out

    signal.signal(signal.SIGTERM, handler)


def run_control(args, log, labs: list[str]) -> dict[str, Measurement]:
    config = ControlConfig(
        sizes=args.sizes,
        reps=args.reps,
        loop_reps=args.loop_reps,
        loop_budget=args.loop_budget,
        help_reps=args.help_reps,
        remove_all=not args.no_remove_all,
    )
    from bench.reads import ReadsBench, plain_install, venv_argv

    with contextlib.ExitStack() as stack:
        installs = {"dev": ovsnet_argv()}
        if args.plain_install:
            installs["plain"] = stack.enter_context(plain_install(log))
        elif args.venv:
            installs["plain"] = venv_argv(args.venv)
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="ovsnet-bench-"))
        host = stack.enter_context(control_host())
        labs.append(host.lab_host.lab.name)
        log(f"control plane: lab {labs[-1]}, netns {host.netns}")
        bench = ControlBench(host=host, workdir=Path(tmp), config=config, log=log)
        results = {} if args.reads_only else bench.run_all()
        ReadsBench(bench, installs, reps=args.reps).run(max(args.sizes))
        return bench.results | results


def run_data(args, log, labs: list[str]) -> tuple[dict[str, Measurement], int | None]:
    """Data plane in a 2-host netns lab with Docker; returns (results, overlay MTU)."""
    from bench import dataplane

    return dataplane.run(seconds=args.data_seconds, reps=args.data_reps, log=log, labs=labs)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    _raise_on_sigterm()
    # Interpreters write their bytecode caches, as in a normal install: with this set, every
    # run of the dev tree recompiles ovsnet's modules (~0.04 s of CPU per command).
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    log = (lambda msg: None) if args.quiet else (lambda msg: print(msg, file=sys.stderr))
    started = time.monotonic()
    meta = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "load_before": _load(),
        "config": {
            k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items() if k != "output"
        },  # fmt: skip
        "note": "shared 2-core machine, other agents running: figures are noisy",
    }
    labs: list[str] = []
    results = run_control(args, log, labs)
    overlay_mtu = None
    if not args.no_data_plane:
        data, overlay_mtu = run_data(args, log, labs)
        results.update(data)
    agents = fleet = None
    if args.agents:
        from bench import agent_scale

        agents = agent_scale.run(sizes=_sizes(args.agents), log=log)
    if args.agent_fleet:
        from bench import agent_bench

        fleet = agent_bench.run(sizes=_sizes(args.agent_fleet), log=log)
    meta["load_after"] = _load()
    meta["elapsed_s"] = round(time.monotonic() - started, 1)
    meta["labs"] = labs
    meta["overlay_mtu"] = overlay_mtu
    doc = report.document(meta, results, args.sizes, overlay_mtu)
    if agents is not None:
        doc["agents"] = agents
        doc["table"] += (
            "\n\nCluster agent by fleet size (bench/agent_scale.py)\n"
            + agent_scale.comparison(agents)
        )
    if fleet is not None:
        doc["agent_fleet"] = fleet
        doc["table"] += "\n\nFleets of real agents (bench/agent_bench.py)\n" + agent_bench.table(
            fleet
        )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    print(doc["table"])
    print(f"\n{meta['elapsed_s']} s; load average {meta['load_before']} -> {meta['load_after']}; "
          f"JSON: {args.output}")  # fmt: skip
    return 0
