"""CoreOS cloud-config's structure as coreos-cloudinit reads it (pure): no validator is packaged
for it, so ovsnet checks coreos.units and write_files against coreos-cloudinit's schema.

Each function returns the problems it finds (empty: none).
"""

from __future__ import annotations

import re

# coreos-cloudinit's schema for coreos.units (config/unit.go of coreos-cloudinit).
COREOS_UNIT_KEYS = {"name", "runtime", "enable", "content", "command", "mask", "drop-ins"}
COREOS_UNIT_COMMANDS = {
    "start", "stop", "restart", "reload", "try-restart", "reload-or-restart",
    "reload-or-try-restart",
}  # fmt: skip
UNIT_SUFFIXES = (".service", ".socket", ".timer", ".target", ".path", ".mount", ".slice")
COREOS_FILE_KEYS = ("path", "content", "permissions", "owner", "encoding")


def write_files_problems(files: object) -> list[str]:
    """write_files as coreos-cloudinit reads it: absolute path, text, octal permissions."""
    if files is None:
        return []
    if not isinstance(files, list):
        return ["write_files is not a list"]
    problems = []
    for index, entry in enumerate(files):
        where = f"write_files[{index}]"
        if not isinstance(entry, dict):
            problems.append(f"{where} is not a mapping")
            continue
        unknown = [key for key in entry if key not in COREOS_FILE_KEYS]
        problems += [f"{where}: unknown key {key!r}" for key in unknown]
        if not str(entry.get("path", "")).startswith("/"):
            problems.append(f"{where}: path must be absolute")
        if not isinstance(entry.get("content"), str):
            problems.append(f"{where}: content must be text")
        if not re.fullmatch(r"0[0-7]{3}", str(entry.get("permissions", ""))):
            problems.append(f"{where}: permissions must be a quoted octal mode like '0600'")
    return problems


def unit_problems(index: int, unit: object) -> list[str]:
    where = f"coreos.units[{index}]"
    if not isinstance(unit, dict):
        return [f"{where} is not a mapping"]
    problems = [f"{where}: unknown key {key!r}" for key in unit if key not in COREOS_UNIT_KEYS]
    name = unit.get("name")
    if not isinstance(name, str) or not name.endswith(UNIT_SUFFIXES):
        problems.append(f"{where}: name {name!r} is not a unit name")
    if "command" in unit and unit["command"] not in COREOS_UNIT_COMMANDS:
        problems.append(f"{where}: command {unit['command']!r} is not one of coreos-cloudinit's")
    for flag in ("enable", "runtime", "mask"):
        if flag in unit and not isinstance(unit[flag], bool):
            problems.append(f"{where}: {flag} must be true or false")
    if "content" in unit and not isinstance(unit["content"], str):
        problems.append(f"{where}: content must be text")
    if unit.get("enable") and "[Install]" not in unit.get("content", ""):
        problems.append(f"{where}: enable needs an [Install] section in content")
    if not any(key in unit for key in ("content", "drop-ins", "command", "mask")):
        problems.append(f"{where}: says nothing to do (no content, drop-ins, command or mask)")
    for dropin in unit.get("drop-ins") or []:
        if not (
            isinstance(dropin, dict)
            and set(dropin) == {"name", "content"}
            and str(dropin["name"]).endswith(".conf")
            and isinstance(dropin["content"], str)
        ):
            problems.append(f"{where}: drop-in {dropin!r} needs exactly a .conf name and content")
    return problems
