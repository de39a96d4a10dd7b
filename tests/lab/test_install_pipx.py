"""The wheel `make dist` builds, installed with Debian's pipx into Debian's own Python in a clean
PIPX_HOME, runs: `ovsnet --help`, `--version`, and a lab up/status/down with that binary.

Nothing of this checkout's venv is on PATH or sys.path for the installed command.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from ovsnet import __version__

pytestmark = [pytest.mark.lab, pytest.mark.slow]

REPO = Path(__file__).parents[2]
SYSTEM_PYTHON = "/usr/bin/python3"
SYSTEM_PATH = "/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin"


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, dict]:
    """(the pipx-installed ovsnet, the environment to run it in)."""
    root = tmp_path_factory.mktemp("pipx")
    build = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--outdir", str(root / "dist"), str(REPO)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr[-2000:]
    wheel = next((root / "dist").glob("ovsnet-*.whl"))
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env |= {
        "PATH": SYSTEM_PATH,
        "PIPX_HOME": str(root / "home"),
        "PIPX_BIN_DIR": str(root / "bin"),
        "PIPX_MAN_DIR": str(root / "man"),
    }
    done = subprocess.run([
        "pipx", "install", "--python", SYSTEM_PYTHON, str(wheel)],
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return root / "bin" / "ovsnet", env


def run(installed, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    binary, env = installed
    return subprocess.run([str(binary), *args], capture_output=True, text=True, env=env,
                          timeout=timeout)  # fmt: skip


def test_the_installed_command_runs_on_debians_python(installed):
    binary, env = installed
    interpreter = Path(env["PIPX_HOME"], "venvs", "ovsnet", "bin", "python").resolve()
    assert str(interpreter).startswith("/usr/bin/python3"), interpreter
    assert str(REPO) not in binary.read_text().splitlines()[0]
    helped = run(installed, "--help")
    assert helped.returncode == 0 and "Usage: ovsnet" in helped.stdout, helped.stderr
    assert run(installed, "--version").stdout == f"ovsnet {__version__}\n"
    # The templates travel in the wheel.
    rendered = run(installed, "render", "host-unit", "--prefix", "10.0.7", "--peer", "192.0.2.8")
    assert rendered.returncode == 0 and "ExecStart=" in rendered.stdout, rendered.stderr


def test_the_installed_command_drives_a_lab(installed):
    name = "pi" + secrets.token_hex(2)  # in the default workdir: socket paths must stay short
    common = ["--name", name]
    try:
        up = run(installed, "lab", "up", "--hosts", "1", "--no-docker", *common, timeout=180)
        assert up.returncode == 0, up.stderr
        status = run(installed, "--json", "lab", "status", *common)
        assert status.returncode == 0, status.stderr
        assert len(json.loads(status.stdout)["hosts"]) == 1
    finally:
        down = run(installed, "lab", "down", *common, timeout=180)
    assert down.returncode == 0, down.stderr
