"""Modules stay small enough to have one job: a line budget for every module under ovsnet/.

A module that outgrows the budget is split along its jobs (docs/architecture.md, "Module map").
There are no exceptions: every module fits.
"""

from __future__ import annotations

from pathlib import Path

import pytest

BUDGET = 400  # lines
PACKAGE = Path(__file__).resolve().parents[2] / "ovsnet"


def _sizes() -> dict[str, int]:
    root = PACKAGE.parent
    return {
        str(path.relative_to(root)): len(path.read_text().splitlines())
        for path in sorted(PACKAGE.rglob("*.py"))
    }


SIZES = _sizes()


def test_the_budget_covers_the_whole_package():
    assert len(SIZES) > 100 and "ovsnet/cli/app.py" in SIZES


@pytest.mark.parametrize("module", sorted(SIZES))
def test_a_module_stays_within_the_line_budget(module):
    assert SIZES[module] <= BUDGET, (
        f"{module} has {SIZES[module]} lines (budget {BUDGET}): split it along its jobs"
    )
