"""Ask the running OVS daemons themselves, over their control sockets (as `ovs-appctl -t`).

`Open_vSwitch:ovs_version` is written by ovs-ctl, the distributions' start script, not by
ovs-vswitchd: an OVS started another way (a container entrypoint, a test lab, systemd units of
one's own) leaves it empty. The daemons always know their version (`version` unixctl command),
and answering at all is the proof that they run.

The control sockets sit in the OVS run directory, which for a `unix:` OVSDB target is the
socket's directory (Debian: /var/run/openvswitch; the companion; each lab host). For a `tcp:`
or `ssl:` target the daemons may be on another machine: nothing is asked.

Place: docs/architecture.md, "Layers": facade layer (the OVS daemons' control sockets).
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

from ovsnet import jsonrpc

VSWITCHD = "ovs-vswitchd"
OVSDB_SERVER = "ovsdb-server"
TIMEOUT = 2.0  # seconds: a daemon that does not answer this fast is treated as not answering
_VERSION = re.compile(r"\(Open vSwitch\)\s+(\S+)")


def run_dir(db: str) -> Path | None:
    """The OVS run directory of the daemons behind a `unix:` OVSDB target."""
    if not db.startswith("unix:"):
        return None
    return Path(os.path.realpath(db[len("unix:") :])).parent


def control_socket(directory: Path, daemon: str) -> Path | None:
    """`<daemon>.<pid>.ctl` through the pidfile (ovs-ctl's layout), else `<daemon>.ctl` (a
    daemon started with --unixctl=<dir>/<daemon>.ctl); None if neither exists."""
    try:
        pid = int((directory / f"{daemon}.pid").read_text().strip())
    except (OSError, ValueError):
        pid = None
    candidates = [directory / f"{daemon}.{pid}.ctl"] if pid else []
    candidates.append(directory / f"{daemon}.ctl")
    return next((path for path in candidates if path.exists()), None)


def unixctl(path: Path, command: str, timeout: float = TIMEOUT) -> str | None:
    """The daemon's reply to one unixctl command, or None if it did not answer in time.

    ovsnet's own JSON-RPC (ovsnet.jsonrpc), not ovs.unixctl.client: that one waits without a
    deadline (a hung daemon must not hang `status`) and loads the `ovs` library's parser.
    """
    try:
        reply = jsonrpc.call(f"unix:{path}", command, [], timeout)
    except OSError:
        return None
    if reply.get("error") is not None:
        return None
    return str(reply.get("result"))


# The last `version` answer per control socket: `status` asks for the version (through the
# OVSDB read) and whether vswitchd answers, one question is enough for both. A second old
# answer is not reused: a long-running caller (metrics, the agent) asks afresh.
VERSION_FRESH = 1.0  # seconds
_versions: dict[Path, tuple[float, str | None]] = {}


def version_reply(path: Path) -> str | None:
    """The daemon's answer to `version` (None: it did not answer), asked at most once a second."""
    now = time.monotonic()
    seen = _versions.get(path)
    if seen is not None and now - seen[0] < VERSION_FRESH:
        return seen[1]
    reply = unixctl(path, "version")
    _versions[path] = (now, reply)
    return reply


def parse_version(reply: str | None) -> str | None:
    """`ovs-vswitchd (Open vSwitch) 3.1.0` -> `3.1.0`."""
    found = _VERSION.search(reply or "")
    return found.group(1) if found else None


def running_version(db: str) -> str | None:
    """The Open vSwitch version the running daemons report (ovs-vswitchd, else ovsdb-server),
    or None when neither can be asked."""
    directory = run_dir(db)
    if directory is None:
        return None
    for daemon in (VSWITCHD, OVSDB_SERVER):
        path = control_socket(directory, daemon)
        version = parse_version(version_reply(path)) if path else None
        if version:
            return version
    return None


def vswitchd_answers(db: str) -> bool | None:
    """Whether ovs-vswitchd answers on its control socket; None when that cannot be told from
    here: an OVSDB over TCP, or a socket outside an OVS run directory (no ovsdb-server control
    socket beside it either, so the absence of ovs-vswitchd's proves nothing)."""
    directory = run_dir(db)
    if directory is None:
        return None
    path = control_socket(directory, VSWITCHD)
    if path is None:
        return False if control_socket(directory, OVSDB_SERVER) else None
    return version_reply(path) is not None
