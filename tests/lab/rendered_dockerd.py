"""Restart a lab host's dockerd configured only by what `ovsnet render` wrote.

The lab starts dockerd with its own --bip/--fixed-cidr/--mtu and an empty daemon.json; here the
same data root, socket and pidfile are kept (so the lab still finds and stops it by PID), but
Docker's options come from the rendered daemon.json or drop-in flags alone.

`activate` hands dockerd extra listening sockets the way systemd does for a socket unit with
`Service=docker.service`: systemd's own `systemd-socket-activate` binds them (inside the host's
namespace) and execs dockerd with LISTEN_FDS, and dockerd takes them through `--host=fd://`.
systemd-socket-activate, like systemd, execs dockerd on the first connection to one of them:
the lab connects once. The host's unix socket stays `--host=unix://...` on the command line:
the lab recognises its dockerd by that path before it signals a PID.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Sequence

from ovsnet.lab import dockerd
from ovsnet.lab.proc import SYSTEM_PATH, plumbing_env, stop_pids


def rendered_argv(host, flags: Sequence[str] = (), activate: Sequence[str] = ()) -> list[str]:
    layout = host.layout
    lab_flags = set(layout.docker_flags())
    argv = [arg for arg in dockerd.dockerd_argv(layout) if arg not in lab_flags]
    assert "--config-file" in argv and not any(a.startswith(("--bip", "--mtu")) for a in argv)
    if activate:
        at = argv.index("dockerd")
        listen = [arg for address in activate for arg in ("--listen", address)]
        argv = [*argv[:at], "systemd-socket-activate", *listen, *argv[at:], "--host=fd://"]
    return [*argv, *flags]


def restart_dockerd_as_rendered(
    host,
    *,
    daemon_json: str | None = None,
    flags: Sequence[str] = (),
    activate: Sequence[str] = (),
) -> None:
    """Stop the host's dockerd and start it with the rendered configuration; wait for its API."""
    host.stop_docker()
    layout = host.layout
    (layout.docker_dir / "daemon.json").write_text(daemon_json or "{}\n")
    with open(dockerd.log_file(layout), "ab") as log:
        child = subprocess.Popen(
            rendered_argv(host, flags, activate),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=plumbing_env({"PATH": SYSTEM_PATH}),
            start_new_session=True,
        )
    try:
        if activate:
            _first_connection(host, activate[0])
        dockerd.wait_ready(layout, child.pid)
    except BaseException:
        stop_pids({child.pid: str(layout.docker_socket)}, timeout=20)
        raise
    child.returncode = 0  # reaped by the lab's PID handling, like dockerd.start()


def _first_connection(host, address: str, timeout: float = 20.0) -> None:
    """Connect once (inside the host's namespace) as soon as the activated socket listens."""
    ip, _, port = address.rpartition(":")
    deadline = time.monotonic() + timeout
    while host.run(["bash", "-c", f"exec 3<>/dev/tcp/{ip}/{port}"], check=False).returncode:
        if time.monotonic() > deadline:
            raise TimeoutError(f"nothing listens on {address} in {host.name} after {timeout} s")
        time.sleep(0.1)
