"""A fleet inventory: hosts, their underlay addresses and their /24s of the overlay supernet.

`allocate` gives every host without a prefix the lowest free /24, without a coordinator: the
file itself is the record. It keeps a ledger (`allocations:`) of every prefix it has handed out,
so a host removed from `hosts:` keeps its /24 reserved (and is reported) until someone deletes
its ledger line on purpose: a stale host still running on that /24 cannot collide with a new one.

Parsing, checking and allocating are pure; only `load` and `save` touch the file system.

Place: docs/architecture.md, "Layers": pure layer, plus `load`/`save` for the file.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any

import yaml

from ovsnet.addressing import DEFAULT_SUPERNET, HOST_PREFIXLEN, host_addressing, parse_supernet
from ovsnet.errors import InvalidInput
from ovsnet.tunnels import parse_peer
from ovsnet.validate import check_printable

SETTINGS = ("supernet", "underlay_mtu", "ipsec", "image", "docker_tls", "docker_tls_dir")
TOP_LEVEL_KEYS = (*SETTINGS, "hosts", "allocations")
HOST_KEYS = ("name", "ip", "prefix")
_NAME_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,62})")  # fullmatch: no trailing \n
HEADER = (
    "# ovsnet fleet inventory. `ovsnet inventory allocate` fills in missing prefixes and\n"
    "# rewrites this file (comments are not kept). `allocations` records every /24 handed out:\n"
    "# a removed host's line stays, reserving its /24, until you delete it.\n"
)


@dataclass(frozen=True)
class Host:
    name: str
    ip: IPv4Address
    prefix: str | None = None  # `A.B.C` of the host's /24


@dataclass(frozen=True)
class Inventory:
    hosts: tuple[Host, ...]
    supernet: IPv4Network = IPv4Network(DEFAULT_SUPERNET)
    allocations: dict[str, str] = field(default_factory=dict)  # ledger: name -> prefix
    # Fleet-wide render settings; None means "not set here" (the render default applies).
    underlay_mtu: int | None = None
    ipsec: bool | None = None
    image: str | None = None
    docker_tls: bool | None = None
    docker_tls_dir: str | None = None
    supernet_given: bool = False

    def host(self, name: str) -> Host:
        for host in self.hosts:
            if host.name == name:
                return host
        known = ", ".join(h.name for h in self.hosts) or "none"
        raise InvalidInput(f"no host {name!r} in the inventory", f"known hosts: {known}")

    def prefix_of(self, host: Host) -> str | None:
        """The host's `A.B.C`: its own, else the ledger's; None until allocated."""
        return host.prefix or self.allocations.get(host.name)

    def peers_of(self, name: str) -> list[IPv4Address]:
        """Every other host of the inventory: a full mesh."""
        return [host.ip for host in self.hosts if host.name != name]


@dataclass(frozen=True)
class HostAllocation:
    name: str
    ip: IPv4Address
    prefix: str
    status: str  # kept | allocated | recorded | restored | moved

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "ip": str(self.ip), "prefix": self.prefix, "status": self.status}


@dataclass(frozen=True)
class AllocationReport:
    inventory: Inventory
    hosts: tuple[HostAllocation, ...]
    removed: tuple[tuple[str, str], ...]  # (name, prefix) still reserved for removed hosts

    @property
    def changed(self) -> bool:
        return any(entry.status != "kept" for entry in self.hosts)


# --- parsing and checking (pure) ---------------------------------------------------------------


def parse(data: object, source: str = "inventory") -> Inventory:
    """Build an Inventory from loaded YAML, rejecting anything malformed with a clear message."""
    if not isinstance(data, dict):
        raise InvalidInput(f"{source} is not a YAML mapping", "see cloud-config/hosts.yaml")
    unknown = [key for key in data if key not in TOP_LEVEL_KEYS]
    if unknown:
        raise InvalidInput(
            f"{source}: unknown key {unknown[0]!r}", f"allowed keys: {', '.join(TOP_LEVEL_KEYS)}"
        )
    supernet = parse_supernet(str(data.get("supernet", DEFAULT_SUPERNET)))
    if supernet.prefixlen >= HOST_PREFIXLEN:
        raise InvalidInput(
            f"{source}: supernet {supernet} has no room for /24 host subnets",
            "use a /23 or larger supernet",
        )
    hosts = data.get("hosts") or []
    if not isinstance(hosts, list):
        raise InvalidInput(f"{source}: hosts must be a list of mappings with name and ip")
    inventory = Inventory(
        hosts=tuple(_parse_host(entry, i, supernet, source) for i, entry in enumerate(hosts)),
        supernet=supernet,
        allocations=_parse_allocations(data.get("allocations"), supernet, source),
        underlay_mtu=_optional(data, "underlay_mtu", int, source),
        ipsec=_optional(data, "ipsec", bool, source),
        image=_optional(data, "image", str, source),
        docker_tls=_optional(data, "docker_tls", bool, source),
        docker_tls_dir=_optional(data, "docker_tls_dir", str, source),
        supernet_given="supernet" in data,
    )
    check(inventory)
    return inventory


def _optional(data: dict[str, Any], key: str, kind: type, source: str) -> Any:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise InvalidInput(f"{source}: {key} must be a {kind.__name__}, not {_shown(value)}")
    if isinstance(value, str):
        check_printable(value, f"{source}: {key}")
    return value


def _parse_host(entry: object, index: int, supernet: IPv4Network, source: str) -> Host:
    where = f"{source}: hosts[{index}]"
    if not isinstance(entry, dict):
        raise InvalidInput(f"{where} is not a mapping", "give name, ip and optionally prefix")
    unknown = [key for key in entry if key not in HOST_KEYS]
    if unknown:
        raise InvalidInput(
            f"{where}: unknown key {unknown[0]!r}", f"allowed keys: {', '.join(HOST_KEYS)}"
        )
    name = _check_name(entry.get("name"), where)
    where = f"{source}: host {name}"
    if "ip" not in entry:
        raise InvalidInput(f"{where} has no ip", "give the host's underlay IPv4 address")
    try:
        ip = parse_peer(str(entry["ip"]), set(), supernet)
    except InvalidInput as exc:
        raise InvalidInput(f"{where}: {exc.message}", exc.hint) from None
    prefix = entry.get("prefix")
    if prefix is not None:
        prefix = _check_prefix(str(prefix), supernet, where)
    return Host(name=name, ip=ip, prefix=prefix)


def _check_name(name: object, where: str) -> str:
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise InvalidInput(
            f"{where}: name {_shown(name)} is not a host name",
            "use letters, digits, '.', '_' and '-' (at most 63 characters)",
        )
    return name


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _check_prefix(prefix: str, supernet: IPv4Network, where: str) -> str:
    try:
        return host_addressing(prefix=prefix, supernet=str(supernet)).prefix
    except InvalidInput as exc:
        raise InvalidInput(f"{where}: {exc.message}", exc.hint) from None


def _parse_allocations(data: object, supernet: IPv4Network, source: str) -> dict[str, str]:
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InvalidInput(f"{source}: allocations must map host names to prefixes")
    return {
        _check_name(name, f"{source}: allocations"): _check_prefix(
            str(prefix), supernet, f"{source}: allocations of {name}"
        )
        for name, prefix in data.items()
    }


def check(inventory: Inventory) -> None:
    """Reject duplicate names and IPs, and two hosts (or a removed host) on one /24."""
    _reject_duplicates(
        [h.name for h in inventory.hosts],
        "host name {} appears twice",
        "give every host its own name",
    )
    _reject_duplicates(
        [str(h.ip) for h in inventory.hosts],
        "underlay IP {} appears twice",
        "give every host its own underlay address",
    )
    owners: dict[str, str] = {}
    for name, prefix in _claims(inventory):
        if prefix in owners:
            raise InvalidInput(
                f"{owners[prefix]} and {name} are both on {prefix}.0/24",
                "give one of them another prefix (a removed host's /24 stays reserved until "
                "you delete its line from allocations)",
            )
        owners[prefix] = name


def _claims(inventory: Inventory) -> Iterator[tuple[str, str]]:
    """(who, prefix) for every /24 in use: hosts' own, recorded ones, removed hosts' ones."""
    names = {host.name for host in inventory.hosts}
    for host in inventory.hosts:
        prefix = inventory.prefix_of(host)
        if prefix is not None:
            yield f"host {host.name}", prefix
    for name, prefix in inventory.allocations.items():
        if name not in names:
            yield f"removed host {name}", prefix


def _reject_duplicates(values: list[str], message: str, hint: str) -> None:
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise InvalidInput(message.format(value), hint)
        seen.add(value)


# --- allocation (pure) ----------------------------------------------------------------------


def candidate_prefixes(supernet: IPv4Network) -> Iterator[str]:
    """The supernet's /24s in order, except the first and the last.

    The first holds the supernet's network address and the last its broadcast address; the
    last is unusable (host_addressing refuses it), the first is left to hosts given it on
    purpose so that automatic allocation never hands out `x.y.0` of a /16, `10.0.0` of a /8.
    """
    subnets = supernet.subnets(new_prefix=HOST_PREFIXLEN)
    next(subnets)
    last = supernet.broadcast_address
    for subnet in subnets:
        if last in subnet:
            return
        yield str(subnet.network_address).rsplit(".", 1)[0]


def allocate(inventory: Inventory) -> AllocationReport:
    """Give every host without a prefix one; re-running on the result changes nothing."""
    check(inventory)
    names = {host.name for host in inventory.hosts}
    taken = {h.prefix for h in inventory.hosts if h.prefix} | set(inventory.allocations.values())
    free = (prefix for prefix in candidate_prefixes(inventory.supernet) if prefix not in taken)
    hosts: list[Host] = []
    entries: list[HostAllocation] = []
    # Update in place: existing lines keep their order, new hosts are appended.
    ledger = dict(inventory.allocations)
    for host in inventory.hosts:
        prefix, status = _prefix_for(host, inventory.allocations, free, inventory.supernet)
        hosts.append(replace(host, prefix=prefix))
        entries.append(HostAllocation(host.name, host.ip, prefix, status))
        ledger[host.name] = prefix
    removed = tuple(
        (name, prefix) for name, prefix in inventory.allocations.items() if name not in names
    )
    result = replace(inventory, hosts=tuple(hosts), allocations=ledger)
    return AllocationReport(inventory=result, hosts=tuple(entries), removed=removed)


def _prefix_for(
    host: Host, ledger: dict[str, str], free: Iterator[str], supernet: IPv4Network
) -> tuple[str, str]:
    recorded = ledger.get(host.name)
    if host.prefix is not None:
        if recorded is None:
            return host.prefix, "recorded"
        return host.prefix, "kept" if recorded == host.prefix else "moved"
    if recorded is not None:
        return recorded, "restored"
    prefix = next(free, None)
    if prefix is None:
        raise InvalidInput(
            f"the supernet {supernet} has no free /24 left for host {host.name}",
            "use a larger supernet, or delete removed hosts from allocations",
        )
    return prefix, "allocated"


# --- YAML -------------------------------------------------------------------------------------


def to_data(inventory: Inventory) -> dict[str, Any]:
    """The inventory as YAML data, settings first, only the settings that were given."""
    data: dict[str, Any] = {}
    if inventory.supernet_given or inventory.supernet != IPv4Network(DEFAULT_SUPERNET):
        data["supernet"] = str(inventory.supernet)
    for key in ("underlay_mtu", "ipsec", "image", "docker_tls", "docker_tls_dir"):
        if getattr(inventory, key) is not None:
            data[key] = getattr(inventory, key)
    data["hosts"] = [
        {"name": h.name, "ip": str(h.ip), **({"prefix": h.prefix} if h.prefix else {})}
        for h in inventory.hosts
    ]
    if inventory.allocations:
        data["allocations"] = dict(inventory.allocations)
    return data


def dumps(inventory: Inventory) -> str:
    return HEADER + yaml.safe_dump(to_data(inventory), sort_keys=False, default_flow_style=False)


def loads(text: str, source: str = "inventory") -> Inventory:
    try:
        data = yaml.safe_load(text)
    except RecursionError:
        raise InvalidInput(f"{source} is nested too deeply to be an inventory") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None)
        raise InvalidInput(
            f"{source} is not valid YAML{where}" + (f": {problem}" if problem else ""),
            "fix the syntax",
        ) from None
    return parse(data if data is not None else {}, source)


def load(path: Path) -> Inventory:
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        raise InvalidInput(
            f"inventory {path} does not exist", "give the path of a hosts.yaml"
        ) from None
    except (IsADirectoryError, PermissionError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"cannot read inventory {path}: {exc}") from None
    return loads(text, str(path))


def save(path: Path, inventory: Inventory) -> None:
    """Write atomically: a crash leaves the old file or the new one, never half of it."""
    path = Path(path)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "w") as stream:
            stream.write(dumps(inventory))
        mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise
