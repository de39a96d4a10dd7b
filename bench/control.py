"""Control-plane benchmark: ovsnet vs one `ovs-vsctl add-port` per peer, on real OVS daemons.

Every timed operation ends when ovs-vswitchd has applied every port (an ofport assigned, no
`Interface.error`): both ovsnet and ovs-vsctl wait for vswitchd before they return, and the
benchmark checks it, polling on (and charging the poll to the operation) when they did not.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

from bench.host import BenchError, BenchHost, ovsnet_argv, run
from bench.stats import Measurement
from ovsnet.tunnels import port_name

# RFC 2544's benchmarking range: 1,000 peers do not fit in the three documentation /24s, and
# nothing here is routed anyway (the namespace has no route out).
PEER_NET = IPv4Network("198.18.0.0/15")
APPLY_TIMEOUT = 60.0
POLL_INTERVAL = 0.01

# The way the original coreos-ovs setup added peers: one ovs-vsctl call, one transaction and
# one vswitchd reconfiguration per peer. Names are precomputed so the shell adds no cost.
LOOP_SCRIPT = """\
db=$1
while read name ip; do
  ovs-vsctl --db="$db" add-port br0 "$name" -- set interface "$name" type=gre \\
    options:remote_ip="$ip" || exit 1
done < "$2"
"""


def peer_ips(count: int, offset: int = 0) -> list[str]:
    """`count` distinct peer addresses; skips .0 and .255 so none looks like a broadcast."""
    found: list[str] = []
    index = 1 + offset
    while len(found) < count:
        address = IPv4Address(int(PEER_NET.network_address) + index)
        index += 1
        if address.packed[-1] not in (0, 255):
            found.append(str(address))
    return found


def port_names(ips: list[str]) -> set[str]:
    return {port_name(IPv4Address(ip)) for ip in ips}


class OperationFailed(Exception):
    pass


@dataclass
class ControlConfig:
    sizes: tuple[int, ...] = (100, 300, 1000)
    reps: int = 5
    loop_reps: int = 3
    loop_budget: float = 120.0  # seconds of ovs-vsctl loop per size, at most (after rep 1)
    help_reps: int = 10
    remove_all: bool = True


@dataclass
class ControlBench:
    host: BenchHost
    workdir: Path
    config: ControlConfig
    results: dict[str, Measurement] = field(default_factory=dict)
    log: Callable[[str], None] = print

    def measurement(self, key: str, unit: str = "s") -> Measurement:
        return self.results.setdefault(key, Measurement(key=key, unit=unit))

    # -- timing ----------------------------------------------------------------------------

    def _timed(self, key: str, argv: list, expected: set[str] | None, timeout: float) -> None:
        """Run argv, then wait until exactly `expected` tunnel ports are applied."""
        m = self.measurement(key)
        client0, daemons0 = self.host.cpu_clock()
        start = time.perf_counter()
        done = run(argv, check=False, timeout=timeout)
        returned = time.perf_counter()
        client1, daemons1 = self.host.cpu_clock()
        if done.returncode != 0:
            tail = " | ".join((done.stderr or done.stdout).strip().splitlines()[-2:])
            m.failures.append(f"exit {done.returncode} after {returned - start:.2f} s: {tail}")
            self.log(f"  {key}: FAILED ({m.failures[-1]})")
            return
        end = returned if expected is None else self._until_applied(expected, returned, m)
        if end is None:
            return
        if end > returned:  # charge the daemons' work until the ports were applied
            daemons1 = self.host.cpu_clock()[1]
        m.samples.append(end - start)
        m.cpu_client.append(client1 - client0)
        m.cpu_daemons.append(daemons1 - daemons0)
        self.log(
            f"  {key}: {end - start:.3f} s (CPU {client1 - client0:.2f} s + OVS "
            f"{daemons1 - daemons0:.2f} s)"
        )

    def _until_applied(self, expected: set[str], returned: float, m: Measurement):
        state = self.host.interfaces()
        if _applied(state, expected):
            return returned
        m.notes.append("vswitchd had not applied every port when the command returned")
        deadline = time.monotonic() + APPLY_TIMEOUT
        while time.monotonic() < deadline:
            time.sleep(POLL_INTERVAL)
            state = self.host.interfaces()
            if _applied(state, expected):
                return time.perf_counter()
        errors = sorted({e for _, e in state.values() if e})[:3]
        m.failures.append(f"ports not applied within {APPLY_TIMEOUT:.0f} s {errors}")
        return None

    def _ovsnet(self, *args: str) -> list:
        return self.host.in_netns([*ovsnet_argv(), "--db", self.host.db, "--json", *args])

    # -- operations ------------------------------------------------------------------------

    def peers_file(self, ips: list[str], name: str) -> Path:
        path = self.workdir / name
        path.write_text("# peers for ovsnet peer sync\n" + "\n".join(ips) + "\n")
        return path

    def ovsnet_add(self, n: int) -> None:
        ips = peer_ips(n)
        self._timed(f"add/{n}/ovsnet", self._ovsnet("peer", "add", *ips), port_names(ips), 300)

    def ovsnet_sync(self, n: int, key: str, ips: list[str]) -> None:
        path = self.peers_file(ips, f"peers-{key.replace('/', '-')}.txt")
        self._timed(key, self._ovsnet("peer", "sync", str(path)), port_names(ips), 300)

    def vsctl_loop(self, n: int) -> None:
        ips = peer_ips(n)
        script = self.workdir / "coreos-ovs-loop.sh"
        script.write_text(LOOP_SCRIPT)
        pairs = self.workdir / f"pairs-{n}.txt"
        pairs.write_text("".join(f"{port_name(IPv4Address(ip))} {ip}\n" for ip in ips))
        argv = self.host.in_netns(["sh", str(script), self.host.db, str(pairs)])
        self._timed(f"add/{n}/vsctl-loop", argv, port_names(ips), 900)

    # -- scenarios -------------------------------------------------------------------------

    def run_all(self) -> dict[str, Measurement]:
        self.startup()
        self.scaling()
        self.at_scale(max(self.config.sizes))
        return self.results

    def startup(self) -> None:
        self.log("CLI start-up")
        for _ in range(self.config.help_reps):
            self._timed("help", [*ovsnet_argv(), "--help"], None, 30)
            self._timed("python-floor", [sys.executable, "-c", "pass"], None, 30)
            self._timed("netns-exec-floor", self.host.in_netns(["true"]), None, 30)

    def scaling(self) -> None:
        """add N / sync N / the ovs-vsctl loop, interleaved so load drift hits all alike."""
        cfg = self.config
        loop_spent = {n: 0.0 for n in cfg.sizes}
        for rep in range(max(cfg.reps, cfg.loop_reps)):
            for n in cfg.sizes:
                self.log(f"rep {rep + 1}, {n} peers")
                if rep < cfg.reps:
                    self.ovsnet_add(n)
                    self.host.clear_tunnels()
                    self.ovsnet_sync(n, f"sync/{n}/ovsnet", peer_ips(n))
                    self.host.clear_tunnels()
                if rep < cfg.loop_reps and _within(loop_spent[n], rep, cfg.loop_budget):
                    started = time.monotonic()
                    self.vsctl_loop(n)
                    loop_spent[n] += time.monotonic() - started
                    self.host.clear_tunnels()

    def at_scale(self, n: int) -> None:
        """Idempotency check, churn, status and removal with n peers in place."""
        self.log(f"with {n} peers in place")
        base = peer_ips(n)
        churned = base[: n - n // 10] + peer_ips(n // 10, offset=2 * n)  # 10 % replaced
        base_file = self.peers_file(base, "peers-base.txt")
        run(self._ovsnet("peer", "sync", str(base_file)), timeout=300)
        for _ in range(self.config.reps):
            self._timed(f"noop-sync/{n}/ovsnet", self._ovsnet("peer", "sync", str(base_file)),
                        port_names(base), 60)  # fmt: skip
            self._check_noop(base_file)
            self._timed(f"status/{n}/ovsnet", self._ovsnet("status"), None, 60)
            self._timed(f"list/{n}/ovsnet", self._ovsnet("peer", "list"), None, 60)
        for rep in range(self.config.reps):
            target = churned if rep % 2 == 0 else base
            self.ovsnet_sync(n, f"churn-sync/{n}/ovsnet", target)
        self._check_status(n)
        if self.config.remove_all:
            self.ensure(base)
            self.ovsnet_sync(n, f"remove-all-sync/{n}/ovsnet", [])
            self.host.clear_tunnels()

    def ensure(self, ips: list[str]) -> None:
        run(self._ovsnet("peer", "sync", str(self.peers_file(ips, "peers-ensure.txt"))),
            timeout=300)  # fmt: skip

    def _check_noop(self, path: Path) -> None:
        out = run(self._ovsnet("peer", "sync", str(path)), timeout=60).stdout
        if json.loads(out).get("changed") is not False:
            raise BenchError("a repeated `peer sync` of the same file reported a change")

    def _check_status(self, n: int) -> None:
        status = json.loads(run(self._ovsnet("status"), timeout=60).stdout)
        if len(status.get("peers", [])) != n:
            raise BenchError(f"status lists {len(status.get('peers', []))} peers, not {n}")


def _applied(state: dict[str, tuple[int | None, str | None]], expected: set[str]) -> bool:
    """Exactly the expected tunnel ports exist, each with an ofport and no error."""
    if set(state) != expected:
        return False
    return all(ofport is not None and ofport > 0 and not error for ofport, error in
               state.values())  # fmt: skip


def _within(spent: float, done_reps: int, budget: float) -> bool:
    """Always run the first repetition; later ones only if the projection fits the budget."""
    if done_reps == 0:
        return True
    return spent + spent / done_reps <= budget
