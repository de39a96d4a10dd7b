"""Reads side by side with OVS's own tool: `status --json`, a no-op `peer sync` and a metrics
scrape against `ovs-vsctl --format=json list Interface`, at one size, for each install.

An install is an `ovsnet` command: this environment's (the `make setup` venv, with Debian's
compiled JSON parser lent by scripts/setup.sh) and, with `--plain-install`, a fresh venv made by
a plain `pip install .` (no parser lent: what a user gets from the wheel). Operations are
interleaved repetition by repetition so load drift on a shared machine hits all of them alike.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from bench.control import ControlBench, peer_ips, port_names
from bench.host import BenchError, ovsnet_argv, process_cpu, run

REPO = Path(__file__).resolve().parents[1]
FIRST_PORT = 9480  # metrics servers inside the bench host's namespace (its own loopback)


@contextlib.contextmanager
def plain_install(log) -> Iterator[list[str]]:
    """A temp venv with ovsnet installed the plain way (`pip install .`, not editable)."""
    with tempfile.TemporaryDirectory(prefix="ovsnet-plain-") as tmp:
        venv = Path(tmp) / "plain-venv"
        log(f"building a plain install in {venv} (pip install .)")
        # The interpreter this venv was made from: same Python, no packages lent to it.
        python = Path(sys.base_prefix) / "bin" / "python3"
        subprocess.run([str(python), "-m", "venv", str(venv)], check=True)
        done = subprocess.run(
            [str(venv / "bin" / "pip"), "install", "-q", str(REPO)],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            raise BenchError(f"pip install . failed: {done.stderr.strip()[-300:]}")
        yield [str(venv / "bin" / "ovsnet")]


def venv_argv(path: Path) -> list[str]:
    script = path / "bin" / "ovsnet"
    if not script.exists():
        raise BenchError(f"{script} does not exist: --venv takes a venv with ovsnet installed")
    return [str(script)]


class ReadsBench:
    def __init__(self, control: ControlBench, installs: dict[str, list[str]], reps: int):
        """installs: key ("dev", "plain") -> the argv of its `ovsnet` command."""
        self.control = control
        self.host = control.host
        self.installs = installs
        self.reps = reps

    def run(self, n: int) -> None:
        log = self.control.log
        log(f"reads side by side with ovs-vsctl, {n} peers, {len(self.installs)} install(s)")
        base = peer_ips(n)
        peers = self.control.peers_file(base, "peers-reads.txt")
        run(self._ovsnet(ovsnet_argv(), "peer", "sync", str(peers)), timeout=300)
        self.control._until_applied(port_names(base), time.perf_counter(),
                                    self.control.measurement("reads/setup"))  # fmt: skip
        with contextlib.ExitStack() as stack:
            servers = [stack.enter_context(self._metrics_server(argv, FIRST_PORT + i))
                       for i, argv in enumerate(self.installs.values())]  # fmt: skip
            vsctl = self.host.in_netns(
                ["ovs-vsctl", f"--db={self.host.db}", "--format=json", "list", "Interface"]
            )
            for rep in range(self.reps + 1):  # the first round warms caches and is not kept
                keep = rep > 0
                self._time(f"reads/{n}/vsctl-list", vsctl, keep)
                for (label, argv), (port, pid) in zip(self.installs.items(), servers,
                                                      strict=True):  # fmt: skip
                    self._time(f"reads/{n}/{label}/status", self._ovsnet(argv, "--json",
                               "status"), keep)  # fmt: skip
                    self._time(f"reads/{n}/{label}/noop-sync", self._ovsnet(argv, "--json",
                               "peer", "sync", str(peers)), keep)  # fmt: skip
                    self._time(f"reads/{n}/{label}/scrape", self.host.in_netns(
                        ["curl", "-sf", "-o", "/dev/null", f"http://127.0.0.1:{port}/metrics"]),
                        keep, server=pid)  # fmt: skip

    def _ovsnet(self, argv: list[str], *args: str) -> list:
        return self.host.in_netns([*argv, "--db", self.host.db, *args])

    def _time(self, key: str, argv: list, keep: bool, server: int | None = None) -> None:
        """Time one command; a scrape's CPU is the metrics server's, not curl's alone."""
        if not keep:
            run(argv, timeout=60)
            return
        before = process_cpu(server) if server else 0.0
        m = self.control.measurement(key)
        count = len(m.cpu_client)
        self.control._timed(key, argv, None, 60)
        if server and len(m.cpu_client) > count:
            m.cpu_client[-1] += process_cpu(server) - before

    @contextlib.contextmanager
    def _metrics_server(self, argv: list[str], port: int) -> Iterator[int]:
        proc = subprocess.Popen(
            self._ovsnet(argv, "metrics", "--listen", f"127.0.0.1:{port}"),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        try:
            _wait_serving(self.host, port, proc)
            yield port, proc.pid  # `ip netns exec` execs the command: same PID
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def _wait_serving(host, port: int, proc: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    probe = host.in_netns(["curl", "-sf", "-o", "/dev/null", f"http://127.0.0.1:{port}/healthz"])
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"ovsnet metrics exited: {proc.stderr.read().decode()[-300:]}")
        # /healthz answers 503 here (BFD peers that do not exist are down): any answer will do.
        if run(probe, check=False, timeout=10).returncode in (0, 22):
            return
        time.sleep(0.2)
    raise BenchError(f"ovsnet metrics did not answer on port {port} within {timeout:.0f} s")
