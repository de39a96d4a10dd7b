"""Check rendered files with the real tools: ignition-validate, cloud-init, systemd, dockerd.

Each check returns a list of problems (empty when the file is valid) so a test can show them all.
A missing tool is a problem too, never a silent pass.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from ipaddress import IPv4Interface, IPv4Network
from pathlib import Path
from urllib.parse import unquote

import yaml

from ovsnet.render.context import (
    AGENT_UNIT,
    GUARD_WATCH_UNIT,
    HEAL_UNIT,
    INIT_UNIT,
    VSWITCHD_DROPIN_NAME,
    VSWITCHD_UNIT,
)
from ovsnet.render.documents import DAEMON_JSON_PATH, DOCKER_DROPIN_NAME

SYSTEMD_UNIT_DIR = "/etc/systemd/system/"
# coreos-cloudinit's schema for coreos.units (config/unit.go of coreos-cloudinit).
COREOS_UNIT_KEYS = {"name", "runtime", "enable", "content", "command", "mask", "drop-ins"}
COREOS_UNIT_COMMANDS = {
    "start", "stop", "restart", "reload", "try-restart", "reload-or-restart",
    "reload-or-try-restart",
}  # fmt: skip
UNIT_SUFFIXES = (".service", ".socket", ".timer", ".target", ".path", ".mount", ".slice")
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
    return _dropin_tls_problems(text) + check_units(
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


def _docker_opts(text: str) -> list[str]:
    """The flags a drop-in's `Environment="DOCKER_OPTS=..."` gives dockerd (split like systemd)."""
    flags: list[str] = []
    for line in text.splitlines():
        if line.startswith("Environment="):
            for assignment in shlex.split(line.removeprefix("Environment=")):
                name, _, value = assignment.partition("=")
                if name == "DOCKER_OPTS":
                    flags += value.split()
    return flags


def _dropin_tls_problems(text: str) -> list[str]:
    """A TCP listener on dockerd's command line must come with --tlsverify and its files."""
    flags = _docker_opts(text)
    tcp = [f for f in flags if f.startswith(("--host=tcp://", "-H=tcp://", "tcp://"))]
    if not tcp:
        return []
    options = {
        name: value or True
        for name, _, value in (f.removeprefix("--").partition("=") for f in flags)
        if name in TLS_OPTIONS
    }
    return _tls_problems(options, f"the drop-in's {tcp[0]}")


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
    problems = _check_docker_values(options)
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


TLS_OPTIONS = ("tlsverify", "tlscacert", "tlscert", "tlskey")


def _tls_problems(options: dict, what: str) -> list[str]:
    """Mutual TLS needs --tlsverify (plain --tls does not check clients) and all three files."""
    problems = []
    if options.get("tlsverify") is not True:
        problems.append(f"{what} without tlsverify: anyone who reaches the port is root")
    for name in TLS_OPTIONS[1:]:
        value = options.get(name)
        if not isinstance(value, str) or not value.startswith("/"):
            problems.append(f"{what} needs {name} as an absolute path, not {value!r}")
    return problems


def _check_docker_values(options: dict) -> list[str]:
    problems = []
    if "hosts" in options:
        # docker.service passes -H fd:// on Debian, Ubuntu, Fedora and Flatcar alike.
        problems.append(
            'daemon.json sets "hosts": dockerd refuses to start next to docker.service\'s -H fd://'
        )
    if any(name in options for name in (*TLS_OPTIONS, "tls")):
        problems += _tls_problems(options, "daemon.json's TLS")
    try:
        bip = IPv4Interface(options["bip"])
        fixed = IPv4Network(options["fixed-cidr"])
        if not fixed.subnet_of(bip.network) or bip.ip not in fixed:
            problems.append(f"fixed-cidr {fixed} does not hold bip {bip} inside its network")
    except (KeyError, ValueError, TypeError) as exc:
        problems.append(f"bip/fixed-cidr missing or malformed: {exc!r}")
    mtu = options.get("mtu")
    if not isinstance(mtu, int) or not 576 <= mtu <= 9000:
        problems.append(f"mtu {mtu!r} is not an MTU between 576 and 9000")
    return problems


def _tls_listener_problems(daemon_json: str, units: dict[str, str]) -> list[str]:
    """daemon.json's TLS settings are useless without a socket unit that hands dockerd a port."""
    try:
        tls = json.loads(daemon_json).get("tlsverify")
    except (ValueError, AttributeError):
        return []  # check_daemon_json reports it
    sockets = [
        text
        for name, text in units.items()
        if name.endswith(".socket")
        and "Service=docker.service" in text.splitlines()
        and any(line.startswith("ListenStream=") for line in text.splitlines())
    ]
    if tls and not sockets:
        return ["daemon.json enables TLS but no socket unit gives docker.service a TCP port"]
    return []


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
            problems += check_daemon_json(text) + _tls_listener_problems(text, units)
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
        problems += check_daemon_json(text) + _tls_listener_problems(text, units)
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
    problems: list[str] = _coreos_write_files_problems(config.get("write_files"))
    contents: dict[str, str] = {}
    dropins: dict[str, dict[str, str]] = {}
    for index, unit in enumerate(units):
        problems += _coreos_unit_problems(index, unit)
        if problems:
            continue
        if "content" in unit:
            contents[unit["name"]] = unit["content"]
        if unit.get("drop-ins"):
            dropins[unit["name"]] = {d["name"]: d["content"] for d in unit["drop-ins"]}
    if problems:
        return problems
    for text in dropins.get("docker.service", {}).values():
        problems += _dropin_tls_problems(text)
    return problems + check_units(contents, dropins)


COREOS_FILE_KEYS = ("path", "content", "permissions", "owner", "encoding")


def _coreos_write_files_problems(files) -> list[str]:
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


def _coreos_unit_problems(index: int, unit) -> list[str]:
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
