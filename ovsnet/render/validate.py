"""Check rendered files with the real tools: ignition-validate, cloud-init, systemd, dockerd.

Each check returns a list of problems (empty when the file is valid) so a test can show them all.
A missing tool is a problem too, never a silent pass.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import unquote

import yaml

from ovsnet.render.coreos_schema import unit_problems, write_files_problems
from ovsnet.render.docker_settings import (
    docker_value_problems,
    dropin_tls_problems,
    tls_listener_problems,
)
from ovsnet.render.documents import DAEMON_JSON_PATH, DOCKER_DROPIN_NAME
from ovsnet.render.host_layout import (
    AGENT_UNIT,
    GUARD_WATCH_UNIT,
    HEAL_UNIT,
    INIT_UNIT,
    VSWITCHD_DROPIN_NAME,
    VSWITCHD_UNIT,
)

SYSTEMD_UNIT_DIR = "/etc/systemd/system/"
TOOL_TIMEOUT = 60


def _run(argv: list[str], env: dict | None = None) -> subprocess.CompletedProcess | str:
    """Run a validator; a string is the problem when it cannot run at all."""
    if shutil.which(argv[0]) is None:
        return f"{argv[0]} is not installed (scripts/setup.sh installs it)"
    return subprocess.run(
        argv, capture_output=True, text=True, timeout=TOOL_TIMEOUT, env=env, check=False
    )


@contextmanager
def _scratch() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="ovsnet-validate-") as name:
        yield Path(name)


# --- systemd ---------------------------------------------------------------------------------


def check_units(
    units: dict[str, str], dropins: dict[str, dict[str, str]] | None = None
) -> list[str]:
    """`systemd-analyze verify` the units, and each unit carrying drop-ins, with them applied.

    systemd-analyze exits 0 on unknown keys and bad values (it only warns), so any output on
    stderr counts as a problem. The units go into a private unit directory put in front of the
    system's through SYSTEMD_UNIT_PATH, so a drop-in for docker.service is checked against the
    docker.service actually installed here.
    """
    dropins = dropins or {}
    with _scratch() as root:
        for name, text in units.items():
            (root / name).write_text(text)
        for unit, files in dropins.items():
            (root / f"{unit}.d").mkdir()
            for name, text in files.items():
                (root / f"{unit}.d" / name).write_text(text)
        env = {**os.environ, "SYSTEMD_UNIT_PATH": f"{root}:", "SYSTEMD_LOG_COLOR": "0"}
        names = sorted({*units, *dropins})
        result = _run(["systemd-analyze", "verify", "--man=no", *names], env=env)
    if isinstance(result, str):
        return [result]
    problems = [line for line in result.stderr.splitlines() if line.strip()]
    if result.returncode != 0 and not problems:
        problems.append(f"systemd-analyze verify exited {result.returncode}")
    return [f"systemd-analyze: {line}" for line in problems]


def check_docker_dropin(text: str) -> list[str]:
    return dropin_tls_problems(text) + check_units(
        {}, {"docker.service": {DOCKER_DROPIN_NAME: text}}
    )


def check_host_unit(text: str) -> list[str]:
    return check_units({INIT_UNIT: text})


def check_agent_unit(text: str) -> list[str]:
    return check_units({AGENT_UNIT: text})


def check_heal_unit(text: str) -> list[str]:
    return check_units({HEAL_UNIT: text})


def check_guard_watch_unit(text: str) -> list[str]:
    return check_units({GUARD_WATCH_UNIT: text})


def check_vswitchd_dropin(text: str) -> list[str]:
    """Checked against the ovs-vswitchd.service installed here (openvswitch-switch)."""
    return check_units({}, {VSWITCHD_UNIT: {VSWITCHD_DROPIN_NAME: text}})


# --- Docker ----------------------------------------------------------------------------------

_DOCKERD_ACCEPTED = "needs to be started with root"


def check_daemon_json(text: str) -> list[str]:
    """Parse daemon.json, check the values ovsnet sets, and let the real dockerd read it.

    dockerd 20.10 has no --validate (added in 23.0), but it reads and checks its configuration
    file (unknown keys, types, conflicts) before it checks that it runs as root: started as
    nobody it stops there, having said either what is wrong or that it needs root.
    """
    try:
        options = json.loads(text)
    except ValueError as exc:
        return [f"daemon.json is not JSON: {exc}"]
    if not isinstance(options, dict):
        return ["daemon.json is not a JSON object"]
    problems = docker_value_problems(options)
    with _scratch() as root:
        root.chmod(0o755)
        path = root / "daemon.json"
        path.write_text(text)
        path.chmod(0o644)
        result = _run([*_as_nobody(), "dockerd", "--config-file", str(path)])
    if isinstance(result, str):
        return [*problems, result]
    if _DOCKERD_ACCEPTED not in result.stderr:
        detail = " ".join(result.stderr.split()) or f"exit {result.returncode}"
        problems.append(f"dockerd rejects daemon.json: {detail}")
    return problems


def _as_nobody() -> list[str]:
    if os.geteuid() != 0:
        return []  # already unprivileged
    return ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


# --- Ignition --------------------------------------------------------------------------------


def check_ignition(text: str) -> list[str]:
    """ignition-validate, then the units and daemon.json it carries."""
    with _scratch() as root:
        path = root / "config.ign"
        path.write_text(text)
        result = _run(["ignition-validate", str(path)])
    if isinstance(result, str):
        return [result]
    if result.returncode != 0 or result.stdout.strip() or result.stderr.strip():
        return [f"ignition-validate: {' '.join((result.stdout + result.stderr).split())}"]
    config = json.loads(text)
    systemd = config.get("systemd", {})
    units = {u["name"]: u["contents"] for u in systemd.get("units", []) if "contents" in u}
    dropins = {
        u["name"]: {d["name"]: d["contents"] for d in u["dropins"]}
        for u in systemd.get("units", [])
        if u.get("dropins")
    }
    problems = check_units(units, dropins)
    for entry in config.get("storage", {}).get("files", []):
        if entry["path"] == DAEMON_JSON_PATH:
            text = _data_url_text(entry["contents"]["source"])
            problems += check_daemon_json(text) + tls_listener_problems(text, units)
    return problems


def _data_url_text(url: str) -> str:
    head, _, data = url.partition(",")
    if head != "data:":
        raise ValueError(f"unexpected data URL header {head!r}")
    return unquote(data)


# --- cloud-init ------------------------------------------------------------------------------


def check_cloud_init(text: str) -> list[str]:
    """`cloud-init schema`, then the units and daemon.json it writes."""
    with _scratch() as root:
        path = root / "user-data"
        path.write_text(text)
        result = _run(["cloud-init", "schema", "--config-file", str(path)])
    if isinstance(result, str):
        return [result]
    if result.returncode != 0:
        return [f"cloud-init schema: {' '.join((result.stdout + result.stderr).split())}"]
    config = yaml.safe_load(text)
    files = {entry["path"]: entry["content"] for entry in config.get("write_files", [])}
    units = {
        path.removeprefix(SYSTEMD_UNIT_DIR): content
        for path, content in files.items()
        if path.startswith(SYSTEMD_UNIT_DIR) and "/" not in path.removeprefix(SYSTEMD_UNIT_DIR)
    }
    problems = check_units(units)
    if DAEMON_JSON_PATH in files:
        text = files[DAEMON_JSON_PATH]
        problems += check_daemon_json(text) + tls_listener_problems(text, units)
    return problems


# --- CoreOS cloud-config ---------------------------------------------------------------------


def check_coreos_cloud_config(text: str) -> list[str]:
    """Structure as coreos-cloudinit reads it (no validator is packaged), then the units."""
    if not text.startswith("#cloud-config\n"):
        return ["CoreOS user-data must start with a '#cloud-config' line"]
    config = yaml.safe_load(text)
    units = (config.get("coreos") or {}).get("units") if isinstance(config, dict) else None
    if not isinstance(units, list) or not units:
        return ["coreos.units is missing or not a list"]
    problems: list[str] = write_files_problems(config.get("write_files"))
    contents: dict[str, str] = {}
    dropins: dict[str, dict[str, str]] = {}
    for index, unit in enumerate(units):
        problems += unit_problems(index, unit)
        if problems:
            continue
        if "content" in unit:
            contents[unit["name"]] = unit["content"]
        if unit.get("drop-ins"):
            dropins[unit["name"]] = {d["name"]: d["content"] for d in unit["drop-ins"]}
    if problems:
        return problems
    for text in dropins.get("docker.service", {}).values():
        problems += dropin_tls_problems(text)
    return problems + check_units(contents, dropins)


CHECKS = {
    "cloud-config": check_coreos_cloud_config,
    "ignition": check_ignition,
    "cloud-init": check_cloud_init,
    "daemon-json": check_daemon_json,
    "docker-dropin": check_docker_dropin,
    "host-unit": check_host_unit,
    "agent-unit": check_agent_unit,
    "vswitchd-dropin": check_vswitchd_dropin,
    "heal-unit": check_heal_unit,
    "guard-watch": check_guard_watch_unit,
}


def check(kind: str, text: str) -> list[str]:
    """Problems the real validators find in one rendered file of this kind."""
    return CHECKS[kind](text)
