"""A private etcd for tests and benchmarks: TLS, client-certificate auth and per-host RBAC.

`EtcdServer` starts Debian's `etcd` on free ports with its data in a temporary directory,
optionally inside a network namespace (the lab's switch namespace, so that lab hosts reach it
over the underlay: a namespace has its own loopback). Certificates come from `ovsnet.pki`;
auth is turned on and host users are created through ovsnet's own `cluster enable-auth` and
`cluster grant` code. Stopped by PID.

Pytest fixtures (import them into the test module):
    etcd_server   function scope; a running etcd on 127.0.0.1 with auth on.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ovsnet.etcd.config import EtcdConfig

ETCD = "etcd"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


@dataclass(frozen=True)
class Credentials:
    cert: str
    key: str
    ca: str


class EtcdServer:
    """One etcd member. `start()`, `stop()`, `start()` again keeps data and ports."""

    def __init__(
        self,
        workdir: Path | None = None,
        listen_ip: str = "127.0.0.1",
        netns: str | None = None,
        auth: bool = True,
        pki: Path | None = None,
        member: str = "ovsnet-test",
        metrics: bool = False,
    ):
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="ovsnet-etcd-"))
        self._own_workdir = workdir is None
        self.listen_ip = listen_ip
        self.netns = netns
        self.auth = auth
        self.pki = pki or self.workdir / "pki"  # members of one cluster share their CAs
        self.member = member
        self.initial_cluster: str | None = None  # name=peer-url,...: set by EtcdCluster
        self.data = self.workdir / "data"
        self.client_port = free_port() if netns is None else 2379
        self.peer_port = free_port() if netns is None else 2380
        # Plain-HTTP /metrics on loopback (the benchmark reads etcd's own traffic counters).
        self.metrics_port = free_port() if metrics and netns is None else None
        self.process: subprocess.Popen | None = None
        self._log = None
        self._auth_done = False

    @property
    def url(self) -> str:
        return f"https://{self.listen_ip}:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://127.0.0.1:{self.peer_port}"

    # -- certificates -------------------------------------------------------------------------

    def credentials(self, name: str) -> Credentials:
        """An etcd-client certificate with CN=name from the test PKI (made on first use), and
        the etcd-server CA the client trusts."""
        from ovsnet.pki import cas as pki_cas
        from ovsnet.pki import issue as pki_issue

        pki_cas.ensure_cas(self.pki)
        issued = pki_issue.ensure_leaf(
            self.pki, pki_issue.leaf_request(self.pki, "etcd-client", name)
        )
        trust = issued.cert_path.with_name("ca.pem")
        return Credentials(str(issued.cert_path), str(issued.key_path), str(trust))

    def config(self, name: str = "root", timeout: float = 5.0) -> EtcdConfig:
        creds = self.credentials(name)
        return EtcdConfig(self.url, creds.cert, creds.key, creds.ca, timeout)

    def cli_args(self, name: str = "root") -> list[str]:
        creds = self.credentials(name)
        return [
            "--etcd",
            self.url,
            "--etcd-cert",
            creds.cert,
            "--etcd-key",
            creds.key,
            "--etcd-ca",
            creds.ca,
        ]

    # -- life cycle ---------------------------------------------------------------------------

    def start(self, timeout: float = 20.0) -> EtcdServer:
        self.launch()
        try:
            self._wait_ready(timeout)
            if self.auth and not self._auth_done:
                self._enable_auth()
        except BaseException:
            self.stop()  # `with` never reaches __exit__ when __enter__ fails
            raise
        return self

    def launch(self) -> None:
        """Start the etcd process; not waiting for it (a cluster's members wait for each
        other: each one serves clients only once a quorum is up)."""
        from ovsnet.pki import cas as pki_cas
        from ovsnet.pki import issue as pki_issue
        from ovsnet.pki import store as pki_store

        pki_cas.ensure_cas(self.pki)
        ips = [self.listen_ip, "127.0.0.1"]
        request = pki_issue.leaf_request(
            self.pki, "etcd-server", "etcd-server", list(dict.fromkeys(ips))
        )
        server = pki_issue.ensure_leaf(self.pki, request)
        self.data.mkdir(parents=True, exist_ok=True)
        os.chmod(self.data, 0o700)
        peer = self.peer_url
        argv = [
            ETCD,
            "--name",
            self.member,
            "--data-dir",
            str(self.data),
            "--listen-client-urls",
            f"https://{self.listen_ip}:{self.client_port}"
            + ("" if self.listen_ip == "127.0.0.1" else f",https://127.0.0.1:{self.client_port}"),
            "--advertise-client-urls",
            self.url,
            "--listen-peer-urls",
            peer,
            "--initial-advertise-peer-urls",
            peer,
            "--initial-cluster",
            self.initial_cluster or f"{self.member}={peer}",
            "--cert-file",
            str(server.cert_path),
            "--key-file",
            str(server.key_path),
            # Only the etcd-client CA, and its CRL: etcd 3.4 reads the file for every new
            # connection, so `ovsnet pki revoke NAME --purpose etcd-client` shuts NAME out
            # without a restart (seen here: "certificate serial ... revoked").
            "--trusted-ca-file",
            str(server.cert_path.with_name("ca.pem")),
            "--client-crl-file",
            str(pki_store.crl_path(self.pki, "etcd-client")),
            "--client-cert-auth",
            "--enable-grpc-gateway=false",  # ovsnet speaks gRPC; the gateway ignores CN auth
            "--logger",
            "zap",
            "--log-outputs",
            "stderr",
            "--auto-compaction-retention",
            "1h",
        ]
        if self.metrics_port:
            argv += ["--listen-metrics-urls", f"http://127.0.0.1:{self.metrics_port}"]
        if self.netns:
            argv = ["ip", "netns", "exec", self.netns, *argv]
        self._log = open(self.workdir / "etcd.log", "ab")  # noqa: SIM115 - lives with etcd
        self.process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=self._log,
            start_new_session=True,
        )

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        # etcd 3.4's zap log says this once its TLS client listener accepts connections.
        while "serving client traffic securely" not in self.log_tail(400):
            if self.process.poll() is not None:
                raise RuntimeError(f"etcd exited {self.process.returncode}: {self.log_tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"etcd did not come up: {self.log_tail()}")
            time.sleep(0.1)

    def ovsnet(
        self, *args: str, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess:
        """`python -m ovsnet ARGS` where etcd is reachable (inside its namespace, if any)."""
        argv = [sys.executable, "-m", "ovsnet", *args]
        if self.netns:
            argv = ["ip", "netns", "exec", self.netns, *argv]
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
        )
        if check and done.returncode != 0:
            raise RuntimeError(
                f"ovsnet {' '.join(args)} exited {done.returncode}: {done.stderr.strip()}"
            )
        return done

    def _enable_auth(self) -> None:
        self.ovsnet("cluster", "enable-auth", *self.cli_args("root"))
        self._auth_done = True

    def grant(self, *names: str, prefix: str = "/ovsnet/") -> None:
        """Create each host's etcd user and role, the way an operator would (`cluster grant`)."""
        for name in names:
            self.credentials(name)
            self.ovsnet("cluster", "grant", name, "--key-prefix", prefix, *self.cli_args("root"))

    def grant_direct(self, *names: str, prefix: str = "/ovsnet/") -> None:
        """The same as grant() through the facade in this process (many hosts: no process
        start per host). Only when etcd is not in a namespace."""
        from ovsnet.cluster.keys import ClusterKeys, role_name

        keys = ClusterKeys(prefix)
        with self.client("root") as client:
            for name in names:
                self.credentials(name)
                client.ensure_host_role(name, role_name(name), keys.host_permissions(name))

    def client(self, name: str = "root"):
        """An ovsnet Etcd facade as `name` (only usable when etcd is not in a namespace)."""
        from ovsnet.etcd.client import Etcd

        if self.netns:
            raise RuntimeError("etcd runs in a namespace: use ovsnet() to run commands there")
        return Etcd(self.config(name))

    def metrics(self) -> str:
        """etcd's Prometheus text (needs metrics=True)."""
        import urllib.request

        if not self.metrics_port:
            raise RuntimeError("etcd was started without metrics=True")
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.read().decode()

    def stop(self, timeout: float = 10.0) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process = None
        if self._log:
            self._log.close()
            self._log = None

    def close(self) -> None:
        self.stop()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> EtcdServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    def log_tail(self, lines: int = 5) -> str:
        try:
            text = (self.workdir / "etcd.log").read_text(errors="replace")
        except OSError:
            return ""
        return " | ".join(text.strip().splitlines()[-lines:])


class EtcdCluster:
    """Several etcd members on loopback (free ports), one CA, TLS + client-cert auth for
    clients (peers talk plain HTTP on loopback). Members stop and start by index."""

    def __init__(self, workdir: Path, size: int = 3):
        self.workdir = Path(workdir)
        self.members = [
            EtcdServer(self.workdir / f"m{i}", auth=False, pki=self.workdir / "pki", member=f"m{i}")
            for i in range(size)
        ]
        initial = ",".join(f"{m.member}={m.peer_url}" for m in self.members)
        for member in self.members:
            member.initial_cluster = initial

    @property
    def url(self) -> str:
        """Every member's URL, comma-separated, as --etcd takes them."""
        return ",".join(m.url for m in self.members)

    def start(self, timeout: float = 30.0) -> EtcdCluster:
        try:
            for member in self.members:
                member.launch()
            for member in self.members:
                member._wait_ready(timeout)
            self.members[0].ovsnet("cluster", "enable-auth", *self.cli_args("root"))
        except BaseException:
            self.close()
            raise
        return self

    def credentials(self, name: str) -> Credentials:
        return self.members[0].credentials(name)

    def config(self, name: str = "root", timeout: float = 5.0) -> EtcdConfig:
        creds = self.credentials(name)
        return EtcdConfig(self.url, creds.cert, creds.key, creds.ca, timeout)

    def cli_args(self, name: str = "root") -> list[str]:
        creds = self.credentials(name)
        return ["--etcd", self.url, "--etcd-cert", creds.cert, "--etcd-key", creds.key,
                "--etcd-ca", creds.ca]  # fmt: skip

    def grant(self, *names: str, prefix: str = "/ovsnet/") -> None:
        for name in names:
            self.credentials(name)
            self.members[0].ovsnet(
                "cluster", "grant", name, "--key-prefix", prefix, *self.cli_args("root")
            )

    def client(self, name: str = "root"):
        from ovsnet.etcd.client import Etcd

        return Etcd(self.config(name))

    def status(self) -> list[dict]:
        """`etcdctl endpoint status` of each running member: its id, the leader's, raft term."""
        urls = ",".join(m.url for m in self.members if m.process is not None)
        return json.loads(self._etcdctl(urls, "endpoint", "status", "-w", "json"))

    def _etcdctl(self, urls: str, *args: str) -> str:
        creds = self.credentials("root")
        done = subprocess.run(
            ["etcdctl", "--endpoints", urls, "--cacert", creds.ca, "--cert", creds.cert,
             "--key", creds.key, "--dial-timeout", "2s", "--command-timeout", "5s", *args],
            capture_output=True,
            text=True,
            timeout=20,
            env={**os.environ, "ETCDCTL_API": "3"},
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"etcdctl {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout

    def move_leader(self, index: int) -> None:
        """Make member `index` the raft leader (etcdctl move-leader, sent to the leader)."""
        statuses = {s["Endpoint"]: s for s in self.status()}
        target = statuses[self.members[index].url]["Status"]["header"]["member_id"]
        leader = self.members[self.leader()].url
        if self.members[index].url != leader:
            self._etcdctl(leader, "move-leader", format(target, "x"))

    def member_of(self, pid: int) -> set[int]:
        """The members process `pid` has a TCP connection to (read with ss)."""
        done = subprocess.run(
            ["ss", "-tnpH", "state", "established"], capture_output=True, text=True, check=True
        )
        ports = {m.client_port: i for i, m in enumerate(self.members)}
        found = set()
        for line in done.stdout.splitlines():
            if f"pid={pid}," not in line:
                continue
            peer = line.split()[3]  # Recv-Q Send-Q Local Peer Process (the state filtered out)
            port = int(peer.rsplit(":", 1)[1])
            if port in ports:
                found.add(ports[port])
        return found

    def leader(self) -> int:
        """The index of the member that is the raft leader (as the running members agree)."""
        statuses = self.status()
        leaders = {s["Status"]["leader"] for s in statuses}
        if len(leaders) != 1:
            raise RuntimeError(f"members disagree on the leader: {statuses}")
        leader = leaders.pop()
        by_url = {s["Endpoint"]: s["Status"]["header"]["member_id"] for s in statuses}
        return next(i for i, m in enumerate(self.members) if by_url.get(m.url) == leader)

    def close(self) -> None:
        for member in self.members:
            member.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)


def wait_until(predicate: Callable[[], object], timeout: float, what: str):
    """Poll the predicate (test side only) until it returns something true; its value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.2)


class AgentProcess:
    """`python -m ovsnet --json agent ...` as a process (in a netns or not), stopped by PID.

    Its JSON-lines events go to a file the test reads; stderr (the log) to another.
    """

    def __init__(
        self,
        name: str,
        argv: list[str],
        workdir: Path,
        netns: str | None = None,
        env: dict[str, str] | None = None,
        wrap: list[str] | None = None,
    ):
        self.name = name
        self.argv = argv
        self.netns = netns
        self.wrap = wrap or []  # e.g. nsenter into a host's namespaces
        self.env = env
        self.events_path = workdir / f"agent-{name}.jsonl"
        self.log_path = workdir / f"agent-{name}.log"
        self.process: subprocess.Popen | None = None
        self._read = 0

    def start(self) -> AgentProcess:
        argv = [sys.executable, "-m", "ovsnet", *self.argv]
        if self.netns:
            argv = ["ip", "netns", "exec", self.netns, *argv]
        argv = [*self.wrap, *argv]
        with open(self.events_path, "ab") as out, open(self.log_path, "ab") as err:
            self.process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                env={**os.environ, **(self.env or {})},
                start_new_session=True,
            )
        return self

    def events(self, kind: str | None = None) -> list[dict]:
        try:
            lines = self.events_path.read_text().splitlines()
        except FileNotFoundError:
            return []
        found = []
        for line in lines:
            with contextlib.suppress(ValueError):
                event = json.loads(line)
                if kind is None or event.get("event") == kind:
                    found.append(event)
        return found

    def last(self, kind: str) -> dict | None:
        found = self.events(kind)
        return found[-1] if found else None

    def wait_event(
        self,
        kind: str,
        timeout: float = 30,
        after: float = 0.0,
        where: Callable[[dict], bool] = lambda e: True,
    ) -> dict:
        def find():
            self.check_alive()
            return next((e for e in self.events(kind) if e["ts"] >= after and where(e)), None)

        return wait_until(find, timeout, f"{self.name}: event {kind}")

    def check_alive(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            raise AssertionError(
                f"agent {self.name} exited {self.process.returncode}: {self.log_tail()}"
            )

    def subnet(self) -> str:
        return (
            self.wait_event("claimed")["subnet"]
            if not self.last("claimed")
            else self.last("claimed")["subnet"]
        )

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        code, self.process = self.process.returncode, None
        return code

    def log_tail(self, lines: int = 8) -> str:
        try:
            return " | ".join(self.log_path.read_text().strip().splitlines()[-lines:])
        except OSError:
            return ""


# -- pytest fixtures ---------------------------------------------------------------------------

try:
    import pytest
except ImportError:  # product installs do not need pytest
    pytest = None

if pytest is not None:

    @pytest.fixture
    def etcd_server(tmp_path):
        """A running etcd on 127.0.0.1 (free ports), TLS + client-cert auth on. Function scope."""
        if shutil.which(ETCD) is None:
            pytest.fail("etcd is not installed: run `bash scripts/setup.sh` (etcd-server)")
        server = EtcdServer(tmp_path / "etcd")
        try:
            server.start()
            yield server
        finally:
            server.close()
