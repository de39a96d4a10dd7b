"""The VM lab's state file, <run dir>/state.json: PIDs and names, so that another process (the
CLI) can reach a lab or remove it later.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from ipaddress import IPv4Interface, IPv4Network
from pathlib import Path
from typing import Protocol, TypeVar

from ovsnet.errors import InvalidInput
from ovsnet.vmlab import config
from ovsnet.vmlab.config import VmSpec
from ovsnet.vmlab.image import Image
from ovsnet.vmlab.vm import LabOfVm, Vm


class SavedLab(LabOfVm, Protocol):
    """What the state file records of a lab (`lab.VmLab`). A protocol, so this module does not
    import the lab that imports it."""

    name: str
    lab_id: str
    image: Image
    vms: list[Vm]
    capture_pids: list[int]
    timings: dict[str, float]
    network: IPv4Network
    host_address: IPv4Interface
    seeded: bool
    powered_on_at: float | None


Lab = TypeVar("Lab", bound=SavedLab)


def save(lab: SavedLab) -> None:
    state = {
        "name": lab.name,
        "lab_id": lab.lab_id,
        "image": str(lab.image.directory),
        "ssh_key": str(lab.image.ssh_key),
        "capture_pids": lab.capture_pids,
        "timings": lab.timings,
        "network": str(lab.network),
        "host_address": str(lab.host_address),
        "seeded": lab.seeded,
        "powered_on_at": lab.powered_on_at,
        "vms": [
            {
                "index": vm.spec.index,
                "pid": vm.pid,
                "ssh_master_pid": vm.ssh_master_pid,
                "host_name": vm.spec.host_name,
                "address": vm.spec.address,
            }
            for vm in lab.vms
        ],
    }
    tmp = lab.run_dir / "state.json.tmp"
    tmp.write_text(json.dumps(state, indent=2) + "\n")
    tmp.rename(lab.run_dir / "state.json")


def load(lab_class: Callable[..., Lab], name: str) -> Lab:
    """A lab started earlier (by this or another process), from its state file."""
    check_name(name)
    state_file = config.run_root() / name / "state.json"
    if not state_file.exists():
        raise InvalidInput(f"no VM lab named {name}", "see `ovsnet vmlab status`")
    state = json.loads(state_file.read_text())
    image = Image(directory=Path(state["image"]), ssh_key=Path(state["ssh_key"]))
    network = IPv4Network(state.get("network", str(config.UNDERLAY)))
    lab = lab_class(
        name=state["name"],
        lab_id=state["lab_id"],
        run_dir=state_file.parent,
        image=image,
        capture_pids=state.get("capture_pids", []),
        timings=state.get("timings", {}),
        network=network,
        host_address=IPv4Interface(state.get("host_address", str(config.host_side_address()))),
        seeded=state.get("seeded", False),
        powered_on_at=state.get("powered_on_at"),
    )
    lab.vms = [
        Vm(spec=VmSpec(index=v["index"], lab_id=state["lab_id"], host_name=v.get("host_name"),
                       address=v.get("address"), network=network),
           lab=lab, pid=v.get("pid"), ssh_master_pid=v.get("ssh_master_pid"))
        for v in state["vms"]
    ]  # fmt: skip
    return lab


def names() -> list[str]:
    root = config.run_root()
    if not root.is_dir():
        return []
    return sorted(p.parent.name for p in root.glob("*/state.json"))


def check_name(name: str) -> None:
    if not name.replace("-", "").isalnum() or len(name) > 40:
        raise InvalidInput(f"bad lab name {name!r}", "use letters, digits and dashes")
