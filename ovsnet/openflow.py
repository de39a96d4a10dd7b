"""OpenFlow facade: read and replace ovsnet's own flows on a bridge, through `ovs-ofctl`.

OVSDB cannot carry flows, and ovs-vswitchd keeps them only in memory (a restart starts from the
bridge's default NORMAL flow): ovsnet puts its flows back from OVSDB's records on every `init`,
`peer` command and companion heal. ovs-ofctl ships with OVS itself, so it is always there and
speaks the version vswitchd speaks; a flow library (os-ken) would be one more dependency for
a handful of rules. Every ovsnet flow carries ovsnet's cookie, and a change is one OpenFlow
bundle (delete the flows that differ, add the missing ones): atomic, and nobody else's flows
are touched.

Place: docs/architecture.md, "Layers": facade layer.
"""

from __future__ import annotations

import re
import shutil
import subprocess

from ovsnet import antispoof, ovs_daemons
from ovsnet.errors import NotReady, OperationFailed

OFCTL_TIMEOUT = 30
_INSTALL_HINT = "install Open vSwitch's tools (apt install openvswitch-switch)"
_COOKIE = f"cookie={antispoof.COOKIE:#x}/-1"


def reachable(db: str) -> bool:
    """Whether ovsnet can reach vswitchd's OpenFlow socket: it sits next to a `unix:` OVSDB
    socket; behind `tcp:` or `ssl:` vswitchd may run on another machine."""
    return ovs_daemons.run_dir(db) is not None


def target(db: str, bridge: str) -> str:
    """vswitchd's OpenFlow management socket for `bridge` (the companion, a lab host, Debian's
    /var/run/openvswitch all keep it next to the OVSDB socket)."""
    return f"unix:{ovs_daemons.run_dir(db)}/{bridge}.mgmt"


def read_flows(db: str, bridge: str) -> list[str]:
    """ovsnet's flows now on the bridge (cookie stripped, as antispoof.plan_flows writes them).
    OpenFlow 1.5, so that meter actions show (1.0 cannot express them)."""
    with FlowRead(db, bridge) as reading:
        return reading.flows()


_READ_FLOWS = "read ovsnet's OpenFlow rules"


class FlowRead:
    """read_flows, started now and taken later: ovs-ofctl and vswitchd answer while the caller
    does other work (NOTE(perf): `status` reads OVSDB and the kernel meanwhile, a no-op
    `peer sync` the plaintext guard). Errors come from flows(), as from read_flows. Use as a
    context manager: leaving it ends an ovs-ofctl whose answer was not taken."""

    def __init__(self, db: str, bridge: str):
        self._error: NotReady | None = None
        self._process: subprocess.Popen | None = None
        try:
            dump = ["dump-flows", target(db, bridge), _COOKIE]
            self._process = _start(["-O", "OpenFlow15", "--no-stats", "--no-names", *dump],
                                   _READ_FLOWS)  # fmt: skip
        except NotReady as exc:
            self._error = exc

    def flows(self) -> list[str]:
        if self._process is None:
            raise self._error or NotReady(f"cannot {_READ_FLOWS}: taken already")
        process, self._process = self._process, None
        return antispoof.parse_dump(_finish(process, _READ_FLOWS).stdout)

    def close(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.communicate()
            self._process = None

    def __enter__(self) -> FlowRead:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def has_meters(db: str, bridge: str) -> bool:
    """Whether the bridge's datapath has meters (userspace: yes; kernel: Linux >= 4.15)."""
    done = _run(["-O", "OpenFlow13", "meter-features", target(db, bridge)],
                "read the datapath's meter features")  # fmt: skip
    found = re.search(r"max_meter:(\d+)", done.stdout)
    return bool(found and int(found.group(1)) > 0)


def read_meters(db: str, bridge: str) -> list[int]:
    """ovsnet's meter, if the bridge has it ([] or [antispoof.METER_ID])."""
    done = _run(["-O", "OpenFlow13", "dump-meters", target(db, bridge)],
                "read ovsnet's OpenFlow meter")  # fmt: skip
    ids = {int(m) for m in re.findall(r"meter=(\d+)", done.stdout)}
    return [antispoof.METER_ID] if antispoof.METER_ID in ids else []


def change_flows(
    db: str,
    bridge: str,
    changes: antispoof.FlowChanges,
    wanted_meters: list[int],
    meters: list[int],
) -> None:
    """Make ovsnet's flows the wanted ones by deleting and adding only those that differ, in
    one bundle (all or nothing): deletes first, so a flow whose actions changed is deleted and
    added again. Meters (which a bundle cannot carry) are added before the flows that use
    them, removed after."""
    where = target(db, bridge)
    for meter in sorted(set(wanted_meters) - set(meters)):
        _run(["-O", "OpenFlow13", "add-meter", where, antispoof.meter_spec(meter)],
             "add ovsnet's broadcast meter")  # fmt: skip
    lines = [f"delete_strict {_COOKIE},{antispoof.match_of(flow)}" for flow in changes.removed]
    lines += [f"add cookie={antispoof.COOKIE:#x},{flow}" for flow in changes.added]
    if lines:
        _run(["--bundle", "add-flows", where, "-"],
             "install ovsnet's OpenFlow rules", "\n".join(lines) + "\n")  # fmt: skip
    for meter in sorted(set(meters) - set(wanted_meters)):
        _run(["-O", "OpenFlow13", "del-meter", where, f"meter={meter}"],
             "remove ovsnet's broadcast meter")  # fmt: skip


def _run(args: list[str], what: str, script: str | None = None) -> subprocess.CompletedProcess:
    """Run ovs-ofctl; a missing binary, a hang or a refusal become ovsnet's errors."""
    return _finish(_start(args, what, script is not None), what, script)


def _start(args: list[str], what: str, with_input: bool = False) -> subprocess.Popen:
    ofctl = shutil.which("ovs-ofctl")
    if ofctl is None:
        raise NotReady(f"cannot {what}: ovs-ofctl not found", _INSTALL_HINT)
    try:
        return subprocess.Popen(
            [ofctl, f"--timeout={OFCTL_TIMEOUT}", *args],
            stdin=subprocess.PIPE if with_input else None,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    except PermissionError:
        raise NotReady(f"cannot {what}: no permission to run ovs-ofctl", "run as root") from None


def _finish(
    process: subprocess.Popen, what: str, script: str | None = None
) -> subprocess.CompletedProcess:
    try:
        stdout, stderr = process.communicate(script, timeout=OFCTL_TIMEOUT + 5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise OperationFailed(f"cannot {what}: ovs-ofctl did not finish in time") from None
    if process.returncode != 0:
        raise NotReady(
            f"cannot {what}: {_first_line(stderr)}",
            "is ovs-vswitchd running? (ovsnet status)",
        )
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def _first_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[0] if lines else "ovs-ofctl failed without a message"
