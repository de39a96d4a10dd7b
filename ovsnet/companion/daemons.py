"""The daemons the companion container runs, started and stopped by PID, watched with pidfds.

ovsdb-server is started by Open vSwitch's own `ovs-ctl` (it creates or converts the database,
initialises the root row and records the OVS version and system-id, which `ovsnet` reads);
ovs-vswitchd runs as the supervisor's child (`ovs-ctl` would insist on the kernel module, which
the userspace datapath does not need); for IPsec, strongSwan's `ipsec start` and `ovs-ctl
start-ovs-ipsec --no-restart-ike-daemon`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ovsnet.errors import OperationFailed, OvsnetError

if TYPE_CHECKING:
    from ovsnet.plaintext_guard import Guard

log = logging.getLogger("ovsnet.companion")

OVS_SCRIPTS = Path("/usr/share/openvswitch/scripts")
STOP_TIMEOUT = 4.0  # docker stop allows 10 s for everything


@dataclass(frozen=True)
class OvsPaths:
    """Where the daemons keep their sockets, logs and database (Debian's defaults but the DB,
    which lives in the container's volume)."""

    rundir: Path = Path("/var/run/openvswitch")
    logdir: Path = Path("/var/log/openvswitch")
    db_file: Path = Path("/var/lib/openvswitch/conf.db")

    @property
    def db_socket(self) -> Path:
        return self.rundir / "db.sock"

    @property
    def db(self) -> str:
        return f"unix:{self.db_socket}"

    @property
    def system_id_file(self) -> Path:
        # Next to the database, so the host keeps its identity when the container is replaced.
        return self.db_file.parent / "system-id.conf"

    def pidfile(self, daemon: str) -> Path:
        return self.rundir / f"{daemon}.pid"


class Watched:
    """A running daemon; its pidfd becomes readable when it exits (works for non-children)."""

    def __init__(self, name: str, pid: int, child: subprocess.Popen | None = None):
        self.name = name
        self.pid = pid
        self.child = child
        self._pidfd = os.pidfd_open(pid)

    def fileno(self) -> int:
        return self._pidfd

    def alive(self) -> bool:
        if self.child is not None:
            return self.child.poll() is None
        return _alive(self.pid)

    def exit_reason(self) -> str:
        code = self.child.poll() if self.child is not None else None
        if code is None:
            return "exited"
        return f"was killed by signal {-code}" if code < 0 else f"exited with status {code}"

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self._pidfd)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _run(argv: list[str], what: str, timeout: float = 60) -> None:
    """Run one OVS/strongSwan start or stop command; a failure or a hang is OperationFailed.

    A hang must not escape as TimeoutExpired: the supervisor survives OperationFailed and
    retries (e.g. `ovs-ctl start-ovs-ipsec` past 60 s in a VM on a loaded machine), while an
    uncaught exception restarts the container, OVS and every IKE SA with it.
    """
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired:
        raise OperationFailed(f"could not {what}: no answer within {timeout:.0f} s") from None
    if done.returncode != 0:
        detail = " | ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
        raise OperationFailed(f"could not {what} (exit {done.returncode}): {detail}")


def system_id(paths: OvsPaths) -> str:
    """This host's OVS system-id: kept in the volume, made once."""
    try:
        existing = paths.system_id_file.read_text().strip()
    except FileNotFoundError:
        existing = ""
    if existing:
        return existing
    new = str(uuid.uuid4())
    paths.system_id_file.parent.mkdir(parents=True, exist_ok=True)
    paths.system_id_file.write_text(new + "\n")
    return new


def _ovs_ctl(paths: OvsPaths, *args: str) -> list[str]:
    return [
        str(OVS_SCRIPTS / "ovs-ctl"),
        f"--db-file={paths.db_file}",
        f"--db-sock={paths.db_socket}",
        *args,
    ]


def _prepare_dirs(paths: OvsPaths) -> None:
    for directory in (paths.rundir, paths.logdir, paths.db_file.parent):
        directory.mkdir(parents=True, exist_ok=True)


# -- ovsdb-server -----------------------------------------------------------------------------


def start_ovsdb(paths: OvsPaths) -> Watched:
    """Create or upgrade the database in the volume, start ovsdb-server, initialise the root
    row (all done by ovs-ctl); restarts are the supervisor's job, hence --no-monitor."""
    _prepare_dirs(paths)
    _run(
        _ovs_ctl(
            paths,
            "--no-ovs-vswitchd",
            "--no-monitor",
            "--no-record-hostname",
            f"--system-id={system_id(paths)}",
            "start",
        ),
        "start ovsdb-server",
    )
    pid = _read_pid(paths.pidfile("ovsdb-server"))
    if pid is None or not _alive(pid):
        raise OperationFailed(
            "ovsdb-server did not stay up", f"see {paths.logdir}/ovsdb-server.log"
        )
    return Watched("ovsdb-server", pid)


def stop_ovsdb(paths: OvsPaths) -> None:
    """`ovs-appctl exit`, escalating to signals: the database file is left consistent."""
    argv = _ovs_ctl(paths, "--no-ovs-vswitchd", "stop")
    _run(argv, "stop ovsdb-server", timeout=STOP_TIMEOUT * 3)


# -- ovs-vswitchd -----------------------------------------------------------------------------


def start_vswitchd(paths: OvsPaths) -> Watched:
    """ovs-vswitchd in the foreground as our child; its warnings go to `docker logs`."""
    _prepare_dirs(paths)
    argv = [
        "ovs-vswitchd", paths.db,
        "--no-chdir",
        f"--pidfile={paths.pidfile('ovs-vswitchd')}",
        f"--log-file={paths.logdir / 'ovs-vswitchd.log'}",
        "-vconsole:err", "-vsyslog:off", "-vfile:info",
    ]  # fmt: skip
    child = subprocess.Popen(argv, stdin=subprocess.DEVNULL)
    return Watched("ovs-vswitchd", child.pid, child)


def stop_child(watched: Watched, timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM (ovs-vswitchd exits cleanly and leaves a kernel datapath in place), then SIGKILL."""
    if watched.child is None:
        raise ValueError(f"{watched.name} is not our child")
    if watched.child.poll() is None:
        watched.child.send_signal(signal.SIGTERM)
        try:
            watched.child.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("%s did not stop within %.0f s: killing it", watched.name, timeout)
            watched.child.kill()
            watched.child.wait()
    watched.close()


# -- IPsec ------------------------------------------------------------------------------------

CHARON_PIDFILES = (Path("/var/run/starter.charon.pid"), Path("/var/run/charon.pid"))


def start_ipsec(paths: OvsPaths, peers: Guard | None = None) -> Watched:
    """strongSwan's charon, then ovs-monitor-ipsec, which configures it for every IPsec tunnel.

    A new charon starts from a kernel that holds nothing of the tunnels' `peers`: the charon of
    the last container was killed (see stop_ipsec), and the SAs and policies it left are owned
    by no one. Traffic that still matches them never asks the new charon to negotiate, so the
    pair stayed "configured but not established" until the healer's repair (87 s after a Docker
    restart in the real-kernel lab). The plaintext guard is in place meanwhile.
    --no-restart-ike-daemon: the monitor must not restart charon (that would drop every SA).
    """
    charon = _read_pid(CHARON_PIDFILES[1])
    if charon is None or not _alive(charon):
        if peers is not None and peers.peers:
            from ovsnet import strongswan

            try:
                strongswan.forget_peers(peers)
            except OvsnetError as exc:  # the healer repairs what is left
                log.warning("IPsec state of the last strongSwan kept: %s", exc.one_line())
        _run(["ipsec", "start"], "start strongSwan")
    _run(
        _ovs_ctl(paths, "--ike-daemon=strongswan", "--no-restart-ike-daemon", "start-ovs-ipsec"),
        "start ovs-monitor-ipsec",
    )
    pid = _read_pid(paths.pidfile("ovs-monitor-ipsec"))
    if pid is None or not _alive(pid):
        raise OperationFailed(
            "ovs-monitor-ipsec did not stay up", f"see {paths.logdir}/ovs-monitor-ipsec.log"
        )
    return Watched("ovs-monitor-ipsec", pid)


def stop_ipsec(paths: OvsPaths) -> None:
    """Stop the monitor without its cleanup, then kill (not stop) strongSwan.

    Neither tells the peers anything or touches the kernel: IPsec traffic keeps flowing while
    the container restarts, the peers keep their SAs instead of negotiating with a host that
    is not there, and the next container's charon starts from a clean kernel (start_ipsec)
    and negotiates anew; the peers take its IKE SA in place of the old one (uniqueids=yes).
    The monitor's own clean exit (`ovs-ctl stop-ovs-ipsec`) took every connection down, told
    every peer, and in an emulated VM outlasted docker stop's 10 s, so the container was
    SIGKILLed halfway (seen in the real-kernel lab).
    """
    monitor = _read_pid(paths.pidfile("ovs-monitor-ipsec"))
    if monitor is not None and _alive(monitor):
        control = paths.rundir / f"ovs-monitor-ipsec.{monitor}.ctl"
        with contextlib.suppress(OperationFailed):
            _run(["ovs-appctl", "-t", str(control), "exit", "--no-cleanup"],
                 "stop ovs-monitor-ipsec", timeout=STOP_TIMEOUT)  # fmt: skip
        _wait_gone(monitor, STOP_TIMEOUT)
        if _alive(monitor):
            with contextlib.suppress(ProcessLookupError):
                os.kill(monitor, signal.SIGKILL)
    for pidfile in CHARON_PIDFILES:  # starter first, or it restarts charon
        pid = _read_pid(pidfile)
        if pid is not None and _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            _wait_gone(pid, 2.0)
        with contextlib.suppress(FileNotFoundError):
            pidfile.unlink()


def _wait_gone(pid: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)


# -- hooks ------------------------------------------------------------------------------------


def run_hooks(hook_dir: Path, event: str, env: dict[str, str] | None = None) -> None:
    """Run every executable in hook_dir (sorted) after OVS (re)started.

    The userspace datapath, for one, needs the underlay address on an OVS bridge, which
    vanishes with ovs-vswitchd: a hook puts it back. A failing hook is logged, not fatal.
    """
    try:
        hooks = sorted(p for p in hook_dir.iterdir() if p.is_file() and os.access(p, os.X_OK))
    except FileNotFoundError:
        return
    for hook in hooks:
        done = subprocess.run(
            [str(hook)],
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "OVSNET_EVENT": event, **(env or {})},
        )
        if done.returncode != 0:
            detail = " | ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
            log.warning("hook %s failed (exit %d): %s", hook.name, done.returncode, detail)
        else:
            log.info("hook %s done", hook.name)
