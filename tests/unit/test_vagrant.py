"""vagrant/: the Vagrantfile parses, and configures what its README promises.

Vagrant itself cannot run here (no hypervisor for it, no boxes): `ruby -c` checks the syntax,
and a stand-in for Vagrant's configuration object (a fake: it records every call) checks what
the Vagrantfile asks for when it is loaded for `vagrant up`.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

VAGRANT_DIR = Path(__file__).resolve().parents[2] / "vagrant"
OVSNET = str(Path(sys.executable).parent / "ovsnet")

RECORDER = r"""
require "json"
module Vagrant
  class Recorder
    def initialize(path = [], calls = []) @path = path; @calls = calls end
    def method_missing(name, *args, **kwargs, &block)
      key = @path + [name.to_s]
      @calls << { "path" => key.join("."), "args" => args, "kwargs" => kwargs }
      child = Recorder.new(key, @calls)
      block.call(child) if block
      child
    end
    def respond_to_missing?(*) = true
    def calls = @calls
  end
  def self.configure(version)
    raise "unexpected configuration version #{version}" unless version == "2"
    recorder = Recorder.new
    yield recorder
    puts JSON.generate(recorder.calls)
  end
end
ARGV.replace([ENV.fetch("VAGRANT_COMMAND")])
load ENV.fetch("VAGRANTFILE")
"""


def recorded_calls(command: str = "up") -> list[dict]:
    done = subprocess.run(
        ["ruby", "-e", RECORDER],
        env={
            **os.environ,
            "VAGRANTFILE": str(VAGRANT_DIR / "Vagrantfile"),
            "VAGRANT_COMMAND": command,
            "OVSNET": OVSNET,
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_vagrantfile_syntax_is_valid_ruby():
    done = subprocess.run(
        ["ruby", "-c", str(VAGRANT_DIR / "Vagrantfile")], capture_output=True, text=True
    )
    assert done.returncode == 0 and "Syntax OK" in done.stdout, done.stderr


def test_provision_script_is_valid_shell():
    done = subprocess.run(["sh", "-n", str(VAGRANT_DIR / "provision.sh")], capture_output=True)
    assert done.returncode == 0, done.stderr


def test_three_vms_on_the_inventory_addresses_with_both_providers_fake_vagrant():
    calls = recorded_calls()
    inventory = yaml.safe_load((VAGRANT_DIR / "hosts.yaml").read_text())["hosts"]
    defined = [c["args"][0] for c in calls if c["path"] == "vm.define"]
    networks = [c for c in calls if c["path"] == "vm.define.vm.network"]
    assert defined == [h["name"] for h in inventory] and len(defined) == 3
    assert [(n["args"], n["kwargs"]["ip"]) for n in networks] == [
        (["private_network"], h["ip"]) for h in inventory
    ]
    providers = [c["args"][0] for c in calls if c["path"] == "vm.provider"]
    assert sorted(providers) == ["libvirt", "virtualbox"]
    assert {"path": "vm.box=", "args": ["debian/bookworm64"], "kwargs": {}} in calls


def test_each_vm_is_provisioned_with_its_rendered_user_data_fake_vagrant():
    calls = recorded_calls()
    provisioners = [c for c in calls if c["path"] == "vm.define.vm.provision"]
    assert len(provisioners) == 3
    for host, call in zip(["ovs1", "ovs2", "ovs3"], provisioners, strict=True):
        assert call["kwargs"]["type"] == "shell" and call["kwargs"]["path"] == "provision.sh"
        user_data = base64.b64decode(call["kwargs"]["args"][0]).decode()
        rendered = subprocess.run(
            [OVSNET, "render", "cloud-init", "--inventory", str(VAGRANT_DIR / "hosts.yaml"),
             "--host", host],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        assert user_data == rendered
        assert user_data.startswith("#cloud-config") and f"host {host}" in user_data


def test_commands_that_do_not_provision_need_no_ovsnet_fake_vagrant():
    done = subprocess.run(
        ["ruby", "-e", RECORDER],
        env={
            **os.environ,
            "VAGRANTFILE": str(VAGRANT_DIR / "Vagrantfile"),
            "VAGRANT_COMMAND": "status",
            "OVSNET": "/nonexistent/ovsnet",
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


def test_inventory_supernet_avoids_virtualbox_nat_network():
    """VirtualBox's NAT network (10.0.2.0/24) must not fall inside the overlay supernet."""
    from ipaddress import ip_network

    supernet = ip_network(yaml.safe_load((VAGRANT_DIR / "hosts.yaml").read_text())["supernet"])
    assert not supernet.overlaps(ip_network("10.0.2.0/24"))
