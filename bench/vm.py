"""`python -m bench.vm`: data plane in the real-kernel lab, side by side, emulated.

Three Debian VMs under qemu's software emulation (ovsnet.vmlab, the same lab the VM tests use):
host-to-host TCP throughput (iperf3) and round-trip time (ping) over the bare underlay, over
ovsnet's kernel-datapath GRE, and over GRE with IPsec (ESP, PSK), all in one run. It runs the VM
tests that take these measurements, so the figures come with the tests' checks (tcpdump: only
ESP on the wire for IPsec). The CPU is emulated, so absolute figures mean little here: compare
the ratios to the underlay.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = Path(__file__).parent / "results" / "vm-latest.json"
TESTS = [
    "tests/vm/test_kernel_lab.py::test_overlay_and_underlay_throughput_between_hosts",
    "tests/vm/test_vm_ipsec.py::test_ipsec_throughput_and_latency_beside_plain_gre",
]
PATHS = (("underlay", "underlay"), ("overlay_gre", "GRE (kernel datapath)"),
         ("overlay_ipsec", "GRE + IPsec (ESP, PSK)"))  # fmt: skip


def table(figures: dict) -> str:
    mbit = figures.get("throughput_mbit_s_emulated", {})
    rtt = figures.get("rtt_ms_emulated", {})
    base_mbit, base_rtt = mbit.get("underlay"), rtt.get("underlay")
    lines = [
        "| path (emulated) | TCP Mbit/s | vs underlay | RTT ms | vs underlay |",
        "|---|---:|---:|---:|---:|",
    ]
    for key, label in PATHS:
        m, r = mbit.get(key), rtt.get(key)
        m_ratio = f"{m / base_mbit:.2f}x" if m and base_mbit else "-"
        r_ratio = f"{r / base_rtt:.2f}x" if r and base_rtt else "-"
        lines.append(f"| {label} | {m or '-'} | {m_ratio} | {r or '-'} | {r_ratio} |")
    return "\n".join(lines)


def main() -> int:
    with tempfile.TemporaryDirectory() as scratch:
        figures_file = Path(scratch) / "measurements.json"
        env = {**os.environ, "OVSNET_VM_MEASUREMENTS": str(figures_file)}
        argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *TESTS]
        done = subprocess.run(argv, cwd=ROOT, env=env)
        if not figures_file.exists():
            print("bench.vm: the VM lab produced no measurements", file=sys.stderr)
            return done.returncode or 1
        figures = json.loads(figures_file.read_text())
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(json.dumps(figures, indent=2, sort_keys=True) + "\n")
    print(table(figures))
    print(f"written: {OUTPUT.relative_to(ROOT)}")
    return done.returncode


if __name__ == "__main__":
    raise SystemExit(main())
