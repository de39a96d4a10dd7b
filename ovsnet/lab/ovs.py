"""One private Open vSwitch per lab host: ovsdb-server + ovs-vswitchd in the host's namespace."""

from __future__ import annotations

import functools
import re
import subprocess
import uuid
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
    run(
        vsctl_argv(
            host,
            "--no-wait",
            "init",
            "--",
            "set",
            "Open_vSwitch",
            ".",
            *system_ids(host, ovs_version(), schema_version(), os_release()),
        )
    )
    _start(host, "ovs-vswitchd", [host.db])


def system_ids(
    host: HostLayout, version: str, db_version: str, release: dict[str, str]
) -> list[str]:
    """What ovs-ctl records at start on a real host; ovsnet reads ovs_version, for one."""
    return [
        f"ovs_version={version}",
        f"db_version={db_version}",
        f'system_type="{release.get("ID", "linux")}"',
        f'system_version="{release.get("VERSION_ID", "")}"',
        f'external_ids:system-id="{uuid.uuid4()}"',
        f'external_ids:hostname="{host.name}"',
        f'external_ids:rundir="{host.rundir}"',
    ]


@functools.lru_cache(maxsize=1)
def ovs_version() -> str:
    out = run(["ovs-vswitchd", "--version"]).stdout
    found = re.search(r"Open vSwitch\)\s+(\S+)", out)
    if not found:
        raise LabError(f"cannot read the OVS version from {out.strip()!r}")
    return found.group(1)


@functools.lru_cache(maxsize=1)
def schema_version() -> str:
    return run(["ovsdb-tool", "schema-version", SCHEMA]).stdout.strip()


def os_release(path: Path = Path("/etc/os-release")) -> dict[str, str]:
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return {}
    pairs = (line.split("=", 1) for line in lines if "=" in line)
    return {key: value.strip().strip('"') for key, value in pairs}


def add_phy_bridge(host: HostLayout) -> None:
    """br-phy holds the NIC and the underlay address: userspace tunnelling routes through it."""
    run(
        vsctl_argv(
            host,
            "--",
            "add-br",
            PHY_BRIDGE,
            "--",
            "set",
            "Bridge",
            PHY_BRIDGE,
            "datapath_type=netdev",
            "external_ids:ovsnet-lab=underlay",
            "--",
            "add-port",
            PHY_BRIDGE,
            HOST_NIC,
        )
    )
    netns.add_address(host.netns, PHY_BRIDGE, str(host.underlay))


def pids(host: HostLayout) -> dict[str, int | None]:
    return {daemon: read_pidfile(pidfile(host, daemon)) for daemon in DAEMONS}


def start_vswitchd(host: HostLayout) -> None:
    """Start ovs-vswitchd again (after a test stopped it): a new process, flows gone."""
    _start(host, "ovs-vswitchd", [host.db])
