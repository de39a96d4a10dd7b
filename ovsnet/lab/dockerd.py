"""One real Docker engine per lab host, started in the host's namespace and stopped by PID."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from ovsnet.lab import image, netns
from ovsnet.lab.layout import HostLayout
from ovsnet.lab.proc import (
    SYSTEM_PATH,
    LabError,
    is_alive,
    plumbing_env,
    read_pidfile,
    run,
    stop_pids,
)

READY_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0


def docker_cli() -> str:
    """The client shipped with the engine (/usr/bin), ahead of any newer one earlier in PATH."""
    return shutil.which("docker", path=f"/usr/bin:/bin:{os.environ.get('PATH', '')}") or "docker"


def docker_argv(host: HostLayout, *args: str) -> list[str]:
    return [docker_cli(), "-H", host.docker_host, *args]


def pidfile(host: HostLayout) -> Path:
    return host.docker_dir / "docker.pid"


def log_file(host: HostLayout) -> Path:
    return host.docker_dir / "dockerd.log"


def dockerd_argv(host: HostLayout, extra: Sequence[str] = ()) -> list[str]:
    d = host.docker_dir
    # `ip netns exec` would remount /sys and break dockerd's cgroup mounts: enter only the
    # network namespace.
    return [
        "nsenter",
        f"--net={netns.netns_path(host.netns)}",
        "dockerd",
        "--config-file",
        str(d / "daemon.json"),  # never the machine's /etc/docker/daemon.json
        "--data-root",
        str(d / "data"),
        "--exec-root",
        str(d / "exec"),
        "--host",
        host.docker_host,
        "--pidfile",
        str(pidfile(host)),
        *host.docker_flags(),
        *extra,
    ]


def start(host: HostLayout, extra: Sequence[str] = ()) -> int:
    """Launch dockerd in the background (it outlives this process); return its PID."""
    d = host.docker_dir
    d.mkdir(parents=True, exist_ok=True)
    (d / "daemon.json").write_text("{}\n")
    with open(log_file(host), "ab") as log:
        child = subprocess.Popen(
            dockerd_argv(host, extra),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=plumbing_env({"PATH": SYSTEM_PATH}),
            start_new_session=True,  # not killed by a Ctrl-C meant for the CLI that started it
        )
    # proc.is_alive() reaps it by PID; stop Popen from warning about a child still running.
    child.returncode = 0
    return child.pid  # nsenter execs dockerd in place: same PID


def ping(host: HostLayout, timeout: float = 1.0) -> bool:
    """The Engine API's /_ping over the socket: cheaper than a docker client per poll."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(str(host.docker_socket))
            sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            reply = sock.recv(4096)
    except OSError:
        return False
    return reply.startswith(b"HTTP/1.") and b" 200 " in reply.split(b"\r\n", 1)[0]


def wait_ready(host: HostLayout, pid: int, timeout: float = READY_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not ping(host):
        if not is_alive(pid):
            raise LabError(
                f"dockerd of {host.name} exited: {log_tail(host)}", f"see {log_file(host)}"
            )
        if time.monotonic() > deadline:
            raise LabError(
                f"dockerd of {host.name} not ready after {timeout:.0f} s", f"see {log_file(host)}"
            )
        time.sleep(0.05)


def log_tail(host: HostLayout, lines: int = 3) -> str:
    try:
        text = log_file(host).read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(text[-lines:])


def import_image(host: HostLayout) -> None:
    run(docker_argv(host, "import", "-", image.IMAGE), input=image.rootfs_tar(), text=False)


def current_pid(host: HostLayout, known: int | None = None) -> int | None:
    pid = read_pidfile(pidfile(host)) or known
    return pid if pid and is_alive(pid) else None


def remove_containers(host: HostLayout) -> None:
    """Kill and remove every container first, so dockerd stops fast and leaves no shim behind."""
    listed = run(docker_argv(host, "ps", "-aq"), check=False, timeout=20)
    ids = listed.stdout.split() if listed.returncode == 0 else []
    if ids:
        run(docker_argv(host, "rm", "-f", *ids), check=False, timeout=60)


def container_ids_on_disk(host: HostLayout) -> list[str]:
    """Container IDs from the data root: works even when dockerd is already gone."""
    try:
        return [p.name for p in (host.docker_dir / "data" / "containers").iterdir()]
    except OSError:
        return []


def stop(host: HostLayout, known_pid: int | None = None, timeout: float = STOP_TIMEOUT) -> None:
    """Stop dockerd by PID (like `systemctl stop docker`: containers stop with it)."""
    pid = current_pid(host, known_pid)
    if pid is not None:
        stop_pids({pid: str(host.docker_socket)}, timeout=timeout)


def containers_json(host: HostLayout, *names: str) -> list[dict]:
    done = run(docker_argv(host, "inspect", *names))
    return json.loads(done.stdout)
