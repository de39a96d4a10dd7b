"""The lab's state file: what separate `ovsnet lab` invocations need to find a lab again."""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ovsnet.errors import InvalidInput, NotReady
from ovsnet.lab.layout import DEFAULT_BASE_DIR, LabLayout, lab_layout
from ovsnet.lab.proc import is_alive, start_time

STATE_VERSION = 1
BASE_DIR_ENV = "OVSNET_LAB_DIR"


def base_dir(workdir: str | os.PathLike | None = None) -> Path:
    return Path(workdir or os.environ.get(BASE_DIR_ENV) or DEFAULT_BASE_DIR)


@dataclass
class Owner:
    """The process a lab belongs to; a lab whose owner died was leaked (e.g. a killed test run)."""

    pid: int
    start: int | None

    @classmethod
    def me(cls) -> Owner:
        return cls(pid=os.getpid(), start=start_time(os.getpid()))

    def alive(self) -> bool:
        return is_alive(self.pid) and start_time(self.pid) == self.start


@dataclass
class LabState:
    name: str
    token: str
    hosts: int
    docker: bool
    base_dir: str
    created: float = field(default_factory=time.time)
    owner: Owner | None = None  # None: kept on purpose (`ovsnet lab up`)
    dockerd_args: list[str] = field(default_factory=list)
    dockerd_pids: dict[str, int] = field(default_factory=dict)
    version: int = STATE_VERSION

    def layout(self) -> LabLayout:
        return lab_layout(self.name, self.token, self.hosts, Path(self.base_dir))

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> LabState:
        data = dict(data)
        owner = data.pop("owner", None)
        return cls(owner=Owner(**owner) if owner else None, **data)


def save(state: LabState) -> None:
    """Write atomically: a reader (another CLI call) never sees half a file."""
    path = state.layout().state_file
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state.to_json(), indent=2, sort_keys=True) + "\n")
    tmp.replace(path)


def load(name: str, workdir: str | os.PathLike | None = None) -> LabState:
    path = base_dir(workdir) / name / "state.json"
    try:
        return LabState.from_json(json.loads(path.read_text()))
    except FileNotFoundError:
        raise NotReady(
            f"no lab named {name!r} in {base_dir(workdir)}",
            "start one with `ovsnet lab up` (see `ovsnet lab list`)",
        ) from None
    except (ValueError, TypeError) as exc:
        raise NotReady(
            f"state file {path} is unreadable ({exc})",
            f"remove the lab with `ovsnet lab down --name {name}`",
        ) from None


def list_states(workdir: str | os.PathLike | None = None) -> list[LabState]:
    states = []
    for path in sorted(base_dir(workdir).glob("*/state.json")):
        try:
            states.append(LabState.from_json(json.loads(path.read_text())))
        except (OSError, ValueError, TypeError):
            continue
    return states


NAME_ENV = "OVSNET_LAB"


def resolve_name(name: str | None, workdir: str | os.PathLike | None = None) -> str:
    """The lab a CLI call means: --name, else $OVSNET_LAB, else the only lab kept by `up`."""
    if name:
        return name
    if os.environ.get(NAME_ENV):
        return os.environ[NAME_ENV]
    kept = [s.name for s in list_states(workdir) if s.owner is None]
    if len(kept) == 1:
        return kept[0]
    if not kept:
        raise NotReady("no lab is up", "start one with `ovsnet lab up`, or give --name")
    raise InvalidInput(f"several labs are up ({', '.join(kept)})", "pick one with --name")
