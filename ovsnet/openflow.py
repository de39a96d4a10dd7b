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
    done = _run(["-O", "OpenFlow15", "--no-stats", "--no-names", "dump-flows",
                 target(db, bridge), _COOKIE], "read ovsnet's OpenFlow rules")  # fmt: skip
    return antispoof.parse_dump(done.stdout)


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
    ofctl = shutil.which("ovs-ofctl")
    if ofctl is None:
        raise NotReady(f"cannot {what}: ovs-ofctl not found", _INSTALL_HINT)
    try:
        argv = [ofctl, f"--timeout={OFCTL_TIMEOUT}", *args]
        done = subprocess.run(
            argv, input=script, capture_output=True, text=True, timeout=OFCTL_TIMEOUT + 5
        )
    except subprocess.TimeoutExpired:
        raise OperationFailed(f"cannot {what}: ovs-ofctl did not finish in time") from None
    except PermissionError:
        raise NotReady(f"cannot {what}: no permission to run ovs-ofctl", "run as root") from None
    if done.returncode != 0:
        raise NotReady(
            f"cannot {what}: {_first_line(done.stderr)}",
            "is ovs-vswitchd running? (ovsnet status)",
        )
    return done


def _first_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[0] if lines else "ovs-ofctl failed without a message"
