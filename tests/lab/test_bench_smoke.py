"""`python -m bench` end to end with tiny sizes, so the benchmark cannot rot.

Real OVS daemons in a throwaway lab (no mocks); checks the JSON it writes, the table it prints,
and that it leaves no lab behind.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ovsnet.lab import list_labs
from ovsnet.lab import netns as lab_netns

pytestmark = [pytest.mark.lab]

ROOT = Path(__file__).resolve().parents[2]


def run_bench(tmp_path: Path, *args: str, timeout: float) -> tuple[dict, str]:
    output = tmp_path / "latest.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quiet", "--output", str(output), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(output.read_text()), done.stdout


def assert_no_lab_left(doc: dict) -> None:
    names = set(doc["meta"]["labs"])
    assert names, "the runner did not record its labs"
    assert not names & {lab.name for lab in list_labs()}
    assert not [n for n in lab_netns.list_names("ovl-") if any(n in x for x in names)]


def test_quick_control_plane_run(tmp_path):
    doc, stdout = run_bench(tmp_path, "--quick", "--sizes", "3,5", timeout=600)
    measured = doc["measurements"]
    for n in (3, 5):
        for key in (f"add/{n}/ovsnet", f"sync/{n}/ovsnet", f"add/{n}/vsctl-loop"):
            assert measured[key]["failures"] == [], key
        assert len(measured[f"add/{n}/ovsnet"]["samples"]) == 2
        assert len(measured[f"add/{n}/vsctl-loop"]["samples"]) == 1
    for key in ("noop-sync/5/ovsnet", "status/5/ovsnet", "churn-sync/5/ovsnet", "help"):
        assert measured[key]["samples"], key
        assert all(s > 0 for s in measured[key]["samples"])
        assert len(measured[key]["cpu_client"]) == len(measured[key]["samples"])
    rows = {(r["operation"], r["size"]): r for r in doc["control_plane"]}
    assert rows[("peer add (one call)", "5")]["ratio"] > 0
    assert "| peer add (one call)" in stdout and "ovs-vsctl loop" in stdout
    assert doc["data_plane"] == []
    reads = {r["operation"]: r for r in doc["reads"] if r["install"] == "make setup venv"}
    assert set(reads) == {"status --json", "peer sync, nothing to do", "metrics scrape"}
    assert all(r["ratio"] > 0 for r in reads.values()), reads
    assert "ovs-vsctl list Interface" in stdout
    assert_no_lab_left(doc)


def test_reads_only_beside_another_venv(tmp_path):
    """--venv measures a second install's reads in the same run (here: this venv again)."""
    doc, stdout = run_bench(tmp_path, "--reads-only", "--sizes", "4", "--reps", "1",
                            "--venv", sys.prefix, timeout=300)  # fmt: skip
    installs = {(r["install"], r["operation"]) for r in doc["reads"] if r["ratio"]}
    assert len(installs) == 6, doc["reads"]
    assert doc["control_plane"] == [] or all(r["ovsnet"] is None for r in doc["control_plane"])
    assert "plain pip install ." in stdout
    assert_no_lab_left(doc)


@pytest.mark.slow
def test_data_plane_run_measures_all_three_paths(tmp_path):
    doc, stdout = run_bench(
        tmp_path, "--sizes", "2", "--reps", "1", "--loop-reps", "1", "--help-reps", "1",
        "--data-reps", "1", "--data-seconds", "2", "--no-remove-all", timeout=900,
    )  # fmt: skip
    measured = doc["measurements"]
    assert measured["data/underlay/tcp"]["samples"][0] > 1  # Mbit/s
    assert measured["data/overlay/tcp"]["samples"][0] > 1
    assert measured["data/overlay/rtt"]["samples"][0] > 0
    # Containers at MTU 1500 over a 1462 overlay: TCP stalls (docs/facts.md, "MTU").
    wrong = measured["data/wrong-mtu/tcp"]
    assert wrong["failures"] or wrong["samples"][0] < 0.1 * measured["data/overlay/tcp"]["median"]
    assert doc["meta"]["overlay_mtu"] == 1462
    assert "overlay, ovsnet's MTU" in stdout
    assert_no_lab_left(doc)
