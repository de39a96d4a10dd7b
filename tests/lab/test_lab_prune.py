"""`ovsnet lab prune` (ovsnet.lab.prune_labs): a lab whose owner died goes, a kept one stays."""

from __future__ import annotations

import secrets
import shutil
import tempfile
from pathlib import Path

import pytest

from ovsnet.lab import Lab, prune_labs
from ovsnet.lab.state import Owner

pytestmark = pytest.mark.lab


def test_prune_removes_a_lab_whose_owner_died_and_keeps_a_kept_one():
    # A short directory: pytest's tmp_path is too deep for the lab's Unix socket paths.
    tmp_path = Path(tempfile.mkdtemp(prefix="prune-", dir="/tmp"))
    lab = Lab.up(1, docker=False, name=f"prune-{secrets.token_hex(3)}", workdir=tmp_path)
    try:
        lab.disown()  # kept on purpose, like `ovsnet lab up`
        assert prune_labs(tmp_path) == []
        assert lab.status()["hosts"]
        # Our own PID with another start time: a process that died and whose PID was reused.
        lab.state.owner = Owner(pid=Owner.me().pid, start=-1)
        lab._save()
        assert prune_labs(tmp_path) == [lab.name]
        assert not (tmp_path / lab.name).exists()
    finally:
        lab.down()
        shutil.rmtree(tmp_path, ignore_errors=True)
