"""The VM lab's Python layer: this checkout's ovsnet wheel and its dependencies on a small
read-only ext4 disk, built for each lab in a couple of seconds.

The dependencies are installed on the host with `pip install --target` (native speed, no pip run
under emulation) and byte-compiled; their wheels and the installed tree are cached by the
dependency list (`wheelhouse/<deps-key>/`, `pydeps/<deps-key>/` in the cache, see `image.py`).
So neither editing ovsnet nor adding a dependency rebuilds the base image.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

from ovsnet.errors import OperationFailed
from ovsnet.vmlab import config
from ovsnet.vmlab.host_run import Log, cache_lock, run, stderr_log


def project_root() -> Path:
    return Path(__file__).resolve().parents[2]


def ensure_wheelhouse(cache: Path, python_deps: list[str], log: Log = stderr_log) -> Path:
    """ovsnet's dependencies as wheels, built with this (3.11, like Debian 12's) Python."""
    house = cache / "wheelhouse" / config.wheelhouse_key(python_deps)
    if (house / "requirements.txt").exists():
        return house
    partial = house.with_name(house.name + f".partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    (partial / "requirements.in").write_text("\n".join(python_deps) + "\n")
    log(f"building the wheelhouse ({len(python_deps)} dependencies)")
    run(
        ["nice", "-n", "10", sys.executable, "-m", "pip", "wheel", "-q", "--prefer-binary",
         "-w", str(partial), "-r", str(partial / "requirements.in")]
    )  # fmt: skip
    (partial / "requirements.in").rename(partial / "requirements.txt")
    shutil.rmtree(house, ignore_errors=True)
    partial.rename(house)
    return house


def build_ovsnet_wheel(out_dir: Path, source: Path | None = None) -> Path:
    """`pip wheel --no-deps` of this checkout (pure Python, a few seconds)."""
    source = source or project_root()
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob("ovsnet-*.whl"):
        old.unlink()
    run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
         "-w", str(out_dir), str(source)]
    )  # fmt: skip
    wheels = sorted(out_dir.glob("ovsnet-*.whl"))
    if not wheels:
        raise OperationFailed(f"pip wheel produced no ovsnet wheel in {out_dir}")
    return wheels[0]


def ensure_python_deps(cache: Path, log: Log = stderr_log) -> Path:
    """ovsnet's dependencies installed into a plain directory (cached by the dependency list)."""
    python_deps = config.python_dependencies((project_root() / "pyproject.toml").read_text())
    target = cache / "pydeps" / config.wheelhouse_key(python_deps)
    with cache_lock(cache / "pydeps" / f".{target.name}.lock"):
        if (target / ".complete").exists():
            return target
        house = ensure_wheelhouse(cache, python_deps, log)
        partial = target.with_name(target.name + f".partial-{os.getpid()}")
        shutil.rmtree(partial, ignore_errors=True)
        run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-compile",
             "--find-links", str(house), "--target", str(partial),
             "-r", str(house / "requirements.txt")])  # fmt: skip
        _compile(partial)
        (partial / ".complete").write_text("")
        shutil.rmtree(target, ignore_errors=True)
        partial.rename(target)
    return target


def build_python_layer(cache: Path, out: Path, log: Log = stderr_log) -> Path:
    """A read-only disk with this checkout's ovsnet and its dependencies, for one lab."""
    deps = ensure_python_deps(cache, log)
    stage = out.with_suffix(".d")
    shutil.rmtree(stage, ignore_errors=True)
    try:
        shutil.copytree(deps, stage, symlinks=True)
        wheel = build_ovsnet_wheel(out.parent / "wheel")
        run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps",
             "--no-compile", "--target", str(stage), str(wheel)])  # fmt: skip
        _compile(stage / "ovsnet")
        (stage / "ovsnet-layer.json").write_text(
            json.dumps({"wheel": wheel.name, "sha256": config.file_key(wheel.read_bytes())}) + "\n"
        )
        used = sum(f.stat().st_size for f in stage.rglob("*") if f.is_file())
        run(["truncate", "-s", str(used * 2 + 32 * 2**20), str(out)])
        run(["mkfs.ext4", "-q", "-F", "-L", config.LAYER_LABEL, "-d", str(stage), str(out)])
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return out


def _compile(directory: Path) -> None:
    # Hash-checked .pyc files stay valid whatever mtimes the ext4 copy ends up with, and the
    # layer is read-only: without them every `ovsnet` run would recompile under emulation.
    run([sys.executable, "-m", "compileall", "-q", "-j", "0", "--invalidation-mode",
         "unchecked-hash", str(directory)])  # fmt: skip
