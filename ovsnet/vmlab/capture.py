"""Count underlay packets by protocol (GRE, ESP, IKE, ICMP, ...) while a test runs.

tcpdump runs in the lab's namespace on all interfaces, inbound only: a frame a VM sends enters
the namespace once, on its tap, so each underlay packet is counted once (the bridge forwarding
it out of another tap is outbound and ignored). ssh (the lab's own control traffic) is filtered
out. The pcap is read back with `tcpdump -r -nn` and each line classified by `classify()`, a
pure function.
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import signal
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from ovsnet.errors import OperationFailed

SNAPLEN = 256  # enough for the outer and inner headers, keeps a 20 MB transfer's pcap small
CATEGORIES = ("gre", "esp", "ike", "icmp", "vxlan", "geneve", "arp", "other")

_IKE_RE = re.compile(r"\.(500|4500) > \S+\.(500|4500): ")
_VXLAN_RE = re.compile(r"\.4789: VXLAN|\bVXLAN\b")
_GENEVE_RE = re.compile(r"\.6081: Geneve|\bGeneve\b")
_INNER_TCP_RE = re.compile(r"Flags \[")
# IPv4 ICMP only (": ICMP echo request"): a container's ping. ICMP6 (": ICMP6, router
# solicitation") is the neighbour and router chatter a new interface floods over the bridge.
_INNER_ICMP_RE = re.compile(r": ICMP ")
_INNER_ICMP6_RE = re.compile(r": ICMP6\b")
SAMPLE_LINES = 5  # readable tunnel packets kept per inner protocol, for assertion messages
_OUTER_IPS_RE = re.compile(r"\bIP (\d+\.\d+\.\d+\.\d+)\S* > (\d+\.\d+\.\d+\.\d+)\S*?:")


@dataclass
class PacketCounts:
    """Underlay packets per outer protocol, plus what plaintext tunnels carried inside."""

    outer: Counter = field(default_factory=Counter)
    # Packets whose inner payload was readable on the wire (unencrypted tunnels).
    inner_icmp: int = 0
    inner_icmp6: int = 0
    inner_tcp: int = 0
    # The first few of those lines per inner protocol, as tcpdump printed them: what leaked.
    readable: list[str] = field(default_factory=list)
    # (category, outer source, outer destination) -> packets, e.g. to check one tunnel only.
    flows: Counter = field(default_factory=Counter)

    def __getitem__(self, category: str) -> int:
        return self.outer[category]

    def between(self, a: str, b: str, category: str) -> int:
        """Packets of `category` from a to b or from b to a."""
        return self.flows[(category, a, b)] + self.flows[(category, b, a)]

    def as_dict(self) -> dict[str, int]:
        counts = {category: self.outer[category] for category in CATEGORIES}
        inner = {"inner_icmp": self.inner_icmp, "inner_icmp6": self.inner_icmp6}
        return {**counts, **inner, "inner_tcp": self.inner_tcp}

    def explain(self) -> str:
        """The counts and the first readable tunnel packets: an assertion message."""
        return "\n".join([str(self.as_dict()), *self.readable])


def classify(line: str) -> tuple[str, str | None]:
    """(outer category, inner protocol or None) of one `tcpdump -nn` line."""
    if "ESP(spi=" in line:
        return "esp", None
    if "isakmp" in line or "NONESP-encap" in line or _IKE_RE.search(line):
        return "ike", None
    if "GREv0" in line or "GREv1" in line:
        return "gre", _inner_protocol(line.split("GRE", 1)[1])
    if _VXLAN_RE.search(line):
        return "vxlan", _inner_protocol(line.split("VXLAN", 1)[1])
    if _GENEVE_RE.search(line):
        return "geneve", _inner_protocol(line.split("Geneve", 1)[1])
    if "ARP," in line:
        return "arp", None
    if ": ICMP " in line:
        return "icmp", None
    return "other", None


def _inner_protocol(rest: str) -> str | None:
    if _INNER_ICMP_RE.search(rest):
        return "icmp"
    if _INNER_ICMP6_RE.search(rest):
        return "icmp6"
    if _INNER_TCP_RE.search(rest):
        return "tcp"
    return None


def count_lines(lines: list[str]) -> PacketCounts:
    counts = PacketCounts()
    seen: Counter = Counter()  # readable lines kept per inner protocol
    for line in lines:
        if not line.strip():
            continue
        outer, inner = classify(line)
        counts.outer[outer] += 1
        addresses = _OUTER_IPS_RE.search(line)
        if addresses:
            counts.flows[(outer, addresses.group(1), addresses.group(2))] += 1
        if inner and seen[inner] < SAMPLE_LINES:
            counts.readable.append(line)
        seen[inner] += 1
        if inner == "icmp":
            counts.inner_icmp += 1
        elif inner == "icmp6":
            counts.inner_icmp6 += 1
        elif inner == "tcp":
            counts.inner_tcp += 1
    return counts


class CaptureSite(Protocol):
    """What a capture needs of its lab (a VmLab): its namespace, a run directory for the pcap,
    and the list of capture PIDs the lab's state file records so `down()` can stop them.
    Declared here so this module does not import the lab that imports it."""

    @property
    def netns(self) -> str: ...

    @property
    def run_dir(self) -> Path: ...

    @property
    def capture_pids(self) -> list[int]: ...

    def _save(self) -> None: ...


class UnderlayCapture:
    """`with lab.capture() as cap: ...` then `cap.counts` (a PacketCounts)."""

    def __init__(self, lab: CaptureSite, name: str = "capture"):
        self.lab = lab
        self.pcap = lab.run_dir / f"{name}-{os.getpid()}-{time.monotonic_ns()}.pcap"
        self.proc: subprocess.Popen | None = None
        self.counts: PacketCounts | None = None
        self.lines: list[str] = []

    def start(self) -> UnderlayCapture:
        argv = ["ip", "netns", "exec", self.lab.netns, "tcpdump", "-i", "any", "-Q", "in", "-nn",
                "-s", str(SNAPLEN), "-U", "-w", str(self.pcap), "not tcp port 22"]  # fmt: skip
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        self.lab.capture_pids.append(self.proc.pid)
        self.lab._save()
        self._wait_listening(deadline=time.monotonic() + 15)
        return self

    def stop(self) -> PacketCounts:
        if self.proc is None:
            raise OperationFailed("capture was not started")
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stderr:
            self.proc.stderr.close()
        with contextlib.suppress(ValueError):
            self.lab.capture_pids.remove(self.proc.pid)
        self.lab._save()
        # Read inside the namespace too: the pcap names interfaces by index.
        read = subprocess.run(
            ["ip", "netns", "exec", self.lab.netns, "tcpdump", "-r", str(self.pcap), "-nn"],
            capture_output=True,
            text=True,
        )
        if read.returncode != 0:
            raise OperationFailed(f"reading {self.pcap} failed: {read.stderr.strip()}")
        self.lines = read.stdout.splitlines()
        self.counts = count_lines(self.lines)
        Path(self.pcap).unlink(missing_ok=True)
        return self.counts

    def _wait_listening(self, deadline: float) -> None:
        """tcpdump says 'listening on' once its socket is open: only then is nothing missed."""
        assert self.proc is not None and self.proc.stderr is not None
        seen = b""
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stderr], [], [], 0.5)
            if ready:
                chunk = os.read(self.proc.stderr.fileno(), 4096)
                if not chunk:
                    break
                seen += chunk
                if b"listening on" in seen:
                    return
        self.proc.kill()
        self.proc.wait()
        raise OperationFailed(f"tcpdump did not start: {seen.decode(errors='replace').strip()}")

    def __enter__(self) -> UnderlayCapture:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()
