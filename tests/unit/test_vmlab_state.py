"""The VM lab's state file: what `VmLab.up` saves is what another process (the CLI) loads."""

from __future__ import annotations

from pathlib import Path

import pytest

from ovsnet.errors import InvalidInput
from ovsnet.vmlab.config import VmSpec
from ovsnet.vmlab.image import Image
from ovsnet.vmlab.lab import VmLab
from ovsnet.vmlab.vm import Vm


def test_a_saved_lab_loads_back_with_its_vms_pids_and_timings(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("OVSNET_VMLAB_RUN", str(tmp_path))
    run_dir = tmp_path / "vmlab-abc123"
    run_dir.mkdir()
    image = Image(directory=tmp_path / "images" / "key", ssh_key=tmp_path / "ssh" / "id_ed25519")
    lab = VmLab(name="vmlab-abc123", lab_id="abc123", run_dir=run_dir, image=image)
    lab.vms = [
        Vm(spec=VmSpec(index=i, lab_id="abc123"), lab=lab, pid=4000 + i, ssh_master_pid=5000 + i)
        for i in (1, 2)
    ]
    lab.timings = {"boot_to_ssh_s": 61.5}
    lab.capture_pids = [77]
    lab._save()

    assert VmLab.names() == ["vmlab-abc123"]
    loaded = VmLab.load("vmlab-abc123")
    assert (loaded.name, loaded.lab_id, loaded.run_dir) == (lab.name, lab.lab_id, run_dir)
    assert loaded.image == image and loaded.timings == lab.timings
    assert loaded.capture_pids == [77]
    assert [(vm.name, vm.underlay_ip, vm.pid, vm.ssh_master_pid) for vm in loaded.vms] == [
        (vm.name, vm.underlay_ip, vm.pid, vm.ssh_master_pid) for vm in lab.vms
    ]
    assert all(vm.lab is loaded for vm in loaded.vms)
    assert loaded.netns == "ovsnet-vmlab-abc123"


@pytest.mark.parametrize("name", ["no-such-lab", "../etc", "x" * 41])
def test_loading_an_unknown_or_bad_lab_name_is_refused(tmp_path: Path, monkeypatch, name):
    monkeypatch.setenv("OVSNET_VMLAB_RUN", str(tmp_path))
    with pytest.raises(InvalidInput):
        VmLab.load(name)
