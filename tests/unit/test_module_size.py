"""Modules stay small enough to have one job: a line budget for every module under ovsnet/.

A module that outgrows the budget is split along its jobs (docs/architecture.md, "Module map").
The exceptions are listed by name with the size they have now, so none can grow unnoticed, and
an exception that has been split must leave the list.
"""

from __future__ import annotations

from pathlib import Path

import pytest

BUDGET = 400  # lines
PACKAGE = Path(__file__).resolve().parents[2] / "ovsnet"

# Module (relative to the repository) -> its size when it was let through; it may shrink, not grow.
EXCEPTIONS: dict[str, int] = {}


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
    allowed = EXCEPTIONS.get(module, BUDGET)
    assert SIZES[module] <= allowed, (
        f"{module} has {SIZES[module]} lines (budget {allowed}): split it along its jobs"
    )


@pytest.mark.parametrize("module", sorted(EXCEPTIONS))
def test_an_exception_is_still_needed(module):
    assert module in SIZES, f"{module} no longer exists: remove it from EXCEPTIONS"
    assert SIZES[module] > BUDGET, f"{module} fits the budget now: remove it from EXCEPTIONS"
