"""Every reference in the code points into the repository (docs/), never to a file outside it or
to a tracker number, and every package says where it sits in docs/architecture.md."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# Written so that this file does not match itself.
OUTSIDE = re.compile("DESIGN" + r"\.md|issue [0-9]")
SOURCES = sorted(
    path
    for top in ("ovsnet", "tests", "bench")
    for path in (REPO / top).rglob("*.py")
    if "__pycache__" not in path.parts
)
PACKAGES = sorted((REPO / "ovsnet").glob("*/__init__.py"))


def test_the_walk_sees_the_code():
    assert len(SOURCES) > 200 and len(PACKAGES) >= 10


def test_no_reference_leaves_the_repository():
    found = [
        f"{path.relative_to(REPO)}:{number}: {line.strip()}"
        for path in SOURCES
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if OUTSIDE.search(line)
    ]
    assert not found, "references outside the repository:\n" + "\n".join(found)


@pytest.mark.parametrize("package", PACKAGES, ids=lambda path: path.parent.name)
def test_every_package_names_its_place_in_the_architecture(package):
    assert "docs/architecture.md" in package.read_text(), (
        f"{package.relative_to(REPO)}: its docstring should name its place in docs/architecture.md"
    )
