"""`ovsnet vmlab` refuses bad input with one line and exit 2, before touching anything."""

from __future__ import annotations

import os

import pytest

from ovsnet.cli import main


@pytest.fixture
def empty_run_root(tmp_path, monkeypatch):
    monkeypatch.setenv("OVSNET_VMLAB_RUN", str(tmp_path / "run"))
    monkeypatch.setenv("OVSNET_VMLAB_CACHE", str(tmp_path / "cache"))
    return tmp_path


def test_exec_without_a_running_lab_says_how_to_start_one(empty_run_root, capsys):
    assert main(["vmlab", "exec", "vm1", "--", "true"]) == 2
    err = capsys.readouterr().err
    assert "no VM lab running" in err and "ovsnet vmlab up" in err
    assert len(err.strip().splitlines()) == 1


def test_unknown_lab_name_is_bad_input(empty_run_root, capsys):
    assert main(["vmlab", "down", "nosuchlab"]) == 2
    assert "no VM lab named nosuchlab" in capsys.readouterr().err


def test_bad_lab_name_is_refused(empty_run_root, capsys):
    assert main(["vmlab", "status", "--name", "../etc"]) == 2
    assert "bad lab name" in capsys.readouterr().err


def test_vm_count_out_of_range_is_refused_before_building_anything(empty_run_root, capsys):
    if os.geteuid() != 0:
        pytest.skip("`vmlab up` checks for root first")
    assert main(["vmlab", "up", "--vms", "0"]) == 2
    assert "cannot run 0 VMs" in capsys.readouterr().err
    assert not (empty_run_root / "cache").exists()


def test_status_with_no_lab_lists_none(empty_run_root, capsys):
    assert main(["--json", "vmlab", "status"]) == 0
    assert capsys.readouterr().out.strip() == "[]"


def test_the_vm_tier_fails_instead_of_skipping_when_it_cannot_run(tmp_path):
    """Without qemu and the other tools on PATH the VM tier must fail, never pass as skipped."""
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-m", "vm", "-p", "no:cacheprovider",
         str(repo / "tests" / "vm" / "test_vm_smoke.py")],
        cwd=repo, capture_output=True, text=True, timeout=120,
        env={"PATH": str(tmp_path), "HOME": str(tmp_path), "PYTHONPATH": str(repo)},
    )  # fmt: skip
    assert done.returncode != 0, done.stdout
    assert "the VM tier cannot run: missing" in done.stdout, done.stdout[-2000:]
    assert " skipped" not in done.stdout.splitlines()[-1]
