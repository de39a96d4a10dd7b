"""A throwaway dockerd for lab tests: own data/exec roots, pidfile and config, stopped by PID.

It listens on a unix socket inside its directory and, when asked, on tcp://127.0.0.1:PORT with
--tlsverify. `--bridge=none --iptables=false --ip-forward=false` keep a daemon in the root network
namespace from touching anything outside its directory; with `netns=` it runs inside that
namespace (and may then have its default bridge).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ovsnet import docker as ovsnet_docker
from ovsnet.errors import NotReady


def free_loopback_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Dockerd:
    directory: Path
    process: subprocess.Popen
    tcp_port: int | None

    @property
    def socket_url(self) -> str:
        return f"unix://{self.directory / 'docker.sock'}"

    @property
    def tcp_url(self) -> str:
        return f"tcp://127.0.0.1:{self.tcp_port}"

    def log(self) -> str:
        return (self.directory / "dockerd.log").read_text(errors="replace")


def _wait_ready(daemon: Dockerd, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if daemon.process.poll() is not None:
            raise RuntimeError(f"dockerd exited {daemon.process.returncode}:\n{daemon.log()}")
        try:
            with ovsnet_docker.connect(daemon.socket_url, timeout=5) as client:
                client.info()
            return
        except NotReady:
            if time.monotonic() > deadline:
                raise RuntimeError(f"dockerd not ready after {timeout}s:\n{daemon.log()}") from None
            time.sleep(0.3)


def _stop(daemon: Dockerd) -> None:
    proc = daemon.process
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    # dockerd stops the containerd it started; if it was killed, containerd is still there.
    pidfile = daemon.directory / "exec" / "containerd" / "containerd.pid"
    with contextlib.suppress(FileNotFoundError, ValueError, ProcessLookupError):
        os.kill(int(pidfile.read_text().strip()), signal.SIGKILL)


@contextlib.contextmanager
def running_dockerd(
    tls_server_dir: Path | None = None,
    netns: str | None = None,
    extra_args: tuple[str, ...] = (),
) -> Iterator[Dockerd]:
    """Start dockerd in a fresh directory, yield it once it answers, stop it by PID afterwards."""
    # Short path: containerd's sockets live below it and unix socket paths max out at 104.
    directory = Path(tempfile.mkdtemp(prefix="ovd-", dir="/tmp"))
    (directory / "daemon.json").write_text("{}\n")  # never read the host's /etc/docker/daemon.json
    args = [
        "dockerd",
        f"--data-root={directory / 'data'}",
        f"--exec-root={directory / 'exec'}",
        f"--pidfile={directory / 'dockerd.pid'}",
        f"--config-file={directory / 'daemon.json'}",
        f"--host=unix://{directory / 'docker.sock'}",
        "--storage-driver=vfs",
        "--iptables=false",
        "--ip6tables=false",
        "--ip-masq=false",
        "--ip-forward=false",
        *extra_args,
    ]
    if netns is None:
        args.append("--bridge=none")
    port = None
    if tls_server_dir is not None:
        port = free_loopback_port()
        args += [
            f"--host=tcp://127.0.0.1:{port}",
            "--tlsverify",
            f"--tlscacert={tls_server_dir / 'ca.pem'}",
            f"--tlscert={tls_server_dir / 'cert.pem'}",
            f"--tlskey={tls_server_dir / 'key.pem'}",
        ]
    if netns is not None:
        # nsenter, not `ip netns exec`: that remounts /sys and hides the cgroup mounts dockerd
        # needs ("Devices cgroup isn't mounted"). nsenter execs dockerd: same PID.
        args = ["nsenter", f"--net=/run/netns/{netns}", *args]
    with open(directory / "dockerd.log", "wb") as log:
        proc = subprocess.Popen(
            args,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    daemon = Dockerd(directory, proc, port)
    try:
        _wait_ready(daemon)
        yield daemon
    finally:
        _stop(daemon)
        shutil.rmtree(directory, ignore_errors=True)


@contextlib.contextmanager
def throwaway_netns(prefix: str = "ovt") -> Iterator[str]:
    name = f"{prefix}-{os.urandom(4).hex()}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)
