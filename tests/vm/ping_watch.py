"""Pings under traffic for the rotation scenarios: one ping per ordered pair of containers,
every INTERVAL s, detached in the containers; the longest run of lost echoes per pair is the
pair's interruption.
"""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from test_kernel_lab import CONTAINER

INTERVAL = 0.2  # seconds between echoes
MAX_ECHOES = 3000  # 10 minutes at INTERVAL: the pings are stopped long before


def pairs(vms):
    return list(itertools.combinations(vms, 2))


def _ping_file(dst) -> str:
    return f"/tmp/rotation-ping-{dst.name}"


def start_pings(vms, overlay) -> None:
    """In each container, one ping per other host, detached; its PID (the shell's, which
    execs ping) in a file beside its output."""
    for src, dst in itertools.permutations(vms, 2):
        out = _ping_file(dst)
        script = (f"echo $$ > {out}.pid; exec ping -i {INTERVAL} -c {MAX_ECHOES} -W 1 "
                  f"{overlay[dst.name]} > {out} 2>&1")  # fmt: skip
        src.ssh(f"docker exec -d {CONTAINER} sh -c '{script}'", check=True, timeout=60)


def stop_pings(vms) -> dict[tuple[str, str], str]:
    """Stop them by PID (ping prints its summary on SIGINT); their outputs."""
    outputs = {}
    for src, dst in itertools.permutations(vms, 2):
        out = _ping_file(dst)
        src.ssh(f"docker exec {CONTAINER} sh -c 'kill -INT $(cat {out}.pid)'", timeout=60)
    time.sleep(1)
    for src, dst in itertools.permutations(vms, 2):
        out = _ping_file(dst)
        outputs[(src.name, dst.name)] = src.ssh(
            f"docker exec {CONTAINER} sh -c 'cat {out}; rm -f {out} {out}.pid'", timeout=60
        ).stdout
    return outputs


def longest_gap(output: str) -> tuple[int, int, int]:
    """(echoes sent, answered, longest run of unanswered) from busybox ping's output."""
    answered = sorted({int(m) for m in re.findall(r"seq=(\d+)", output)})
    sent_match = re.search(r"(\d+) packets transmitted", output)
    sent = int(sent_match.group(1)) if sent_match else (answered[-1] + 1 if answered else 0)
    gap, previous = 0, -1
    for seq in [*answered, sent]:
        gap = max(gap, seq - previous - 1)
        previous = seq
    return sent, len(answered), gap


def interruptions(outputs, measurements, name: str) -> dict[str, float]:
    """Per unordered pair: the longer of its two directions' longest gaps, in seconds."""
    per_pair: dict[str, float] = {}
    lost: dict[str, int] = {}
    for (src, dst), output in outputs.items():
        sent, answered, gap = longest_gap(output)
        assert sent > 0 and answered > 0, f"{src} -> {dst}: no echo at all\n{output[-2000:]}"
        key = "<->".join(sorted((src, dst)))
        per_pair[key] = max(per_pair.get(key, 0.0), round(gap * INTERVAL, 1))
        lost[f"{src}->{dst}"] = sent - answered
    measurements[f"{name}_ping_interruption_s_per_pair"] = per_pair
    measurements[f"{name}_ping_lost_echoes"] = lost
    print(f"{name}: longest ping interruption per pair (s):", per_pair, "lost echoes:", lost)
    return per_pair


@dataclass
class TrafficRun:
    capture: object = None  # the underlay capture (its counts once the run is over)
    per_pair: dict[str, float] = field(default_factory=dict)  # longest interruption, s


@contextmanager
def under_traffic(vmlab, overlay, name: str, measurements) -> Iterator[TrafficRun]:
    """The body runs while every container pings every other, inside one underlay capture.
    Afterwards the run holds the capture and each pair's longest interruption, and
    `measurements` the total time (`<name>_total_s`), the packets and the interruptions."""
    vms = vmlab.vms
    run = TrafficRun()
    with vmlab.capture(name.replace("_", "-")) as capture:
        run.capture = capture
        start_pings(vms, overlay)
        started = time.monotonic()
        try:
            time.sleep(2)  # a few answered echoes before anything changes
            yield run
            time.sleep(3)  # answered echoes after the last change
        finally:
            outputs = stop_pings(vms)
        measurements[f"{name}_total_s"] = round(time.monotonic() - started, 1)
    measurements[f"{name}_packets"] = capture.counts.as_dict()
    run.per_pair = interruptions(outputs, measurements, name)
