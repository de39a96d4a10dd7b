"""One private Open vSwitch per lab host: ovsdb-server + ovs-vswitchd in the host's namespace."""

from __future__ import annotations

import subprocess
from pathlib import Path

from ovsnet.lab import netns
from ovsnet.lab.layout import HOST_NIC, PHY_BRIDGE, HostLayout
from ovsnet.lab.proc import LabError, plumbing_env, read_pidfile, run

SCHEMA = Path("/usr/share/openvswitch/vswitch.ovsschema")
DAEMONS = ("ovs-vswitchd", "ovsdb-server")  # stop order


def pidfile(host: HostLayout, daemon: str) -> Path:
    return host.rundir / f"{daemon}.pid"


def control_socket(host: HostLayout, daemon: str) -> Path:
    return host.rundir / f"{daemon}.ctl"


def vsctl_argv(host: HostLayout, *args: str) -> list[str]:
    return ["ovs-vsctl", f"--db={host.db}", "--timeout=30", *args]


def appctl_argv(host: HostLayout, *args: str) -> list[str]:
    return ["ovs-appctl", "-t", str(control_socket(host, "ovs-vswitchd")), "--timeout=30", *args]


def _daemon_argv(host: HostLayout, daemon: str) -> list[str]:
    return [
        f"--pidfile={pidfile(host, daemon)}",
        f"--unixctl={control_socket(host, daemon)}",
        f"--log-file={host.rundir / (daemon + '.log')}",
        "-vconsole:off",
        "--detach",
    ]


def _start(host: HostLayout, daemon: str, argv: list[str]) -> None:
    # --detach returns once the daemon is ready; its stdio must not be our pipes (it keeps
    # them open), so send it to a file that explains a failure.
    errors = host.rundir / f"{daemon}.stderr"
    with open(errors, "w") as sink:
        done = _run_detached(host, [daemon, *argv, *_daemon_argv(host, daemon)], sink)
    if done != 0:
        raise LabError(
            f"{daemon} of {host.name} did not start (exit {done}): {_tail(errors)}",
            f"see {host.rundir}/{daemon}.log",
        )


def _run_detached(host: HostLayout, argv: list[str], sink) -> int:
    return subprocess.run(
        netns.exec_argv(host.netns, argv),
        stdin=subprocess.DEVNULL,
        stdout=sink,
        stderr=sink,
        env=plumbing_env({"OVS_RUNDIR": str(host.rundir), "OVS_LOGDIR": str(host.rundir)}),
        timeout=60,
    ).returncode


def _tail(path: Path) -> str:
    try:
        return " | ".join(path.read_text().strip().splitlines()[-3:])
    except OSError:
        return ""


def start(host: HostLayout) -> None:
    """Create the database and start both daemons, then the underlay bridge br-phy."""
    host.rundir.mkdir(parents=True, exist_ok=True)
    db_file = host.rundir / "conf.db"
    run(["ovsdb-tool", "create", db_file, SCHEMA])
    _start(host, "ovsdb-server", [str(db_file), f"--remote=punix:{host.db_socket}"])
    run(vsctl_argv(host, "--no-wait", "init"))
    _start(host, "ovs-vswitchd", [host.db])


def add_phy_bridge(host: HostLayout) -> None:
    """br-phy holds the NIC and the underlay address: userspace tunnelling routes through it."""
    run(vsctl_argv(
        host,
        "--", "add-br", PHY_BRIDGE,
        "--", "set", "Bridge", PHY_BRIDGE, "datapath_type=netdev",
        "external_ids:ovsnet-lab=underlay",
        "--", "add-port", PHY_BRIDGE, HOST_NIC,
    ))
    netns.add_address(host.netns, PHY_BRIDGE, str(host.underlay))


def pids(host: HostLayout) -> dict[str, int | None]:
    return {daemon: read_pidfile(pidfile(host, daemon)) for daemon in DAEMONS}
