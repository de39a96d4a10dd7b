"""The one place that talks to ovs-monitor-ipsec (its unixctl socket, like `ovs-appctl -t`).

Place: docs/architecture.md, "Layers": facade layer.
"""

from __future__ import annotations

import os
from pathlib import Path

from ovsnet.errors import NotReady
from ovsnet.ipsec.tunnels_show import MonitorTunnel, parse_tunnels_show

PROGRAM = "ovs-monitor-ipsec"
DEFAULT_RUNDIR = "/var/run/openvswitch"


def rundir(value: str | os.PathLike | None = None) -> Path:
    """Where OVS daemons keep pidfiles and control sockets (OVS_RUNDIR, as ovs-appctl)."""
    return Path(value or os.environ.get("OVS_RUNDIR") or DEFAULT_RUNDIR)


def control_socket(run_dir: Path) -> Path:
    """<rundir>/ovs-monitor-ipsec.<pid>.ctl, found through its pidfile as ovs-appctl does."""
    pidfile = run_dir / f"{PROGRAM}.pid"
    try:
        pid = int(pidfile.read_text().strip())
    except (FileNotFoundError, ValueError):
        raise NotReady(
            f"{PROGRAM} is not running (no pidfile {pidfile})",
            "install openvswitch-ipsec and start it (systemctl start openvswitch-ipsec)",
        ) from None
    return run_dir / f"{PROGRAM}.{pid}.ctl"


def tunnels_show(run_dir: str | os.PathLike | None = None) -> str:
    """The raw reply of tunnels/show. It contains PSKs: parse it, never print it."""
    import ovs.unixctl.client

    path = control_socket(rundir(run_dir))
    error, client = ovs.unixctl.client.UnixctlClient.create(str(path))
    if error:
        raise NotReady(
            f"cannot reach {PROGRAM} at {path}: {os.strerror(error)}", f"is {PROGRAM} running?"
        )
    try:
        error, failure, reply = client.transact("tunnels/show", [])
    finally:
        client.close()
    if error or failure:
        detail = os.strerror(error) if error else failure.strip()
        raise NotReady(f"{PROGRAM} did not answer tunnels/show: {detail}")
    return reply


def monitor_tunnels(run_dir: str | os.PathLike | None = None) -> list[MonitorTunnel]:
    """ovs-monitor-ipsec's view of every IPsec tunnel, parsed and with the PSKs removed, with
    the kernel's ESP SAs of each (what says whether its SAs are installed)."""
    from ovsnet import strongswan

    shown = tunnels_show(run_dir)
    return parse_tunnels_show(shown, strongswan.esp_states())
