"""Pure parts of a seeded VM lab: inventory to VMs, underlay, NoCloud meta-data, network-config."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

import pytest
import yaml

from ovsnet import inventory as inv
from ovsnet.errors import InvalidInput
from ovsnet.vmlab import config, seed
from ovsnet.vmlab.config import QemuPaths, VmSpec

INVENTORY = """\
supernet: 10.80.0.0/16
ipsec: true
hosts:
- {name: edge-1, ip: 203.0.113.21, prefix: 10.80.1}
- {name: edge-2, ip: 203.0.113.22, prefix: 10.80.2}
- {name: edge-3, ip: 203.0.113.254, prefix: 10.80.3}
"""


def test_each_inventory_host_becomes_a_vm_with_its_name_and_address():
    specs = seed.vm_specs(inv.loads(INVENTORY), "0a1b2c")
    assert [(s.name, s.underlay_ip, s.index) for s in specs] == [
        ("edge-1", "203.0.113.21", 1),
        ("edge-2", "203.0.113.22", 2),
        ("edge-3", "203.0.113.254", 3),
    ]
    assert {str(s.underlay) for s in specs} == {
        "203.0.113.21/24", "203.0.113.22/24", "203.0.113.254/24"
    }  # fmt: skip
    assert len({s.mac for s in specs}) == 3
    # The namespace's own address avoids the hosts' (.254 is taken here).
    taken = tuple(s.underlay_ip for s in specs)
    assert str(config.host_side_address(specs[0].network, taken)) == "203.0.113.253/24"


@pytest.mark.parametrize("net", ["192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24"])
def test_the_underlay_is_the_test_net_holding_every_host(net):
    network = IPv4Network(net)
    addresses = [network.network_address + 5, network.network_address + 200]
    assert seed.underlay_of(addresses) == network


@pytest.mark.parametrize(
    "addresses",
    [
        ["10.1.2.3"],  # not a documentation range
        ["203.0.113.5", "198.51.100.5"],  # two ranges: the lab has one underlay
        ["203.0.113.0"],  # the network's own address
        ["203.0.113.255"],  # its broadcast address
    ],
)
def test_addresses_the_lab_cannot_give_are_refused(addresses):
    with pytest.raises(InvalidInput):
        seed.underlay_of([IPv4Address(a) for a in addresses])


def test_meta_data_names_the_host_with_an_instance_id_per_lab():
    vm = VmSpec(index=1, lab_id="abcdef", host_name="edge-1", address="203.0.113.21",
                network=IPv4Network("203.0.113.0/24"))  # fmt: skip
    meta = yaml.safe_load(seed.meta_data(vm))
    assert meta == {"instance-id": "ovsnet-abcdef-edge-1", "local-hostname": "edge-1"}
    other_lab = VmSpec(index=1, lab_id="123456", host_name="edge-1", address="203.0.113.21")
    assert yaml.safe_load(seed.meta_data(other_lab))["instance-id"] != meta["instance-id"]


def test_network_config_gives_the_nic_its_static_underlay_address():
    vm = VmSpec(index=2, lab_id="abcdef", host_name="edge-2", address="203.0.113.22",
                network=IPv4Network("203.0.113.0/24"))  # fmt: skip
    network = yaml.safe_load(seed.network_config(vm))
    assert network == {
        "version": 2,
        "ethernets": {
            "eth0": {
                "match": {"macaddress": vm.mac},
                "set-name": "eth0",
                "addresses": ["203.0.113.22/24"],
            }
        },
    }
    files = seed.seed_files(vm, "#cloud-config\n")
    assert sorted(files) == ["meta-data", "network-config", "user-data"]
    assert files["user-data"] == "#cloud-config\n"


def test_a_seeded_vm_boots_with_its_seed_and_no_identity_on_the_kernel_line(tmp_path):
    vm = VmSpec(index=1, lab_id="abcdef", host_name="edge-1", address="203.0.113.21",
                network=IPv4Network("203.0.113.0/24"))  # fmt: skip
    paths = QemuPaths(kernel=tmp_path / "k", initrd=tmp_path / "i", disk=tmp_path / "d",
                      pidfile=tmp_path / "p", console=tmp_path / "c", monitor=tmp_path / "m",
                      seed=tmp_path / "seed.img", images=tmp_path / "images.img")  # fmt: skip
    argv = config.qemu_argv(vm, paths)
    cmdline = argv[argv.index("-append") + 1].split()
    # Name and address come from the seed (cloud-init), not from the kernel command line ...
    assert not [word for word in cmdline if word.startswith(("ip=", "systemd.hostname="))]
    # ... and the host services the companion replaces are masked.
    masked = {word.split("=", 1)[1] for word in cmdline if word.startswith("systemd.mask=")}
    assert masked == set(config.COMPANION_MASKED_UNITS)
    assert "cloud-init=disabled" not in cmdline
    drives = [argv[i + 1] for i, word in enumerate(argv) if word == "-drive"]
    assert f"file={tmp_path / 'seed.img'},if=virtio,format=raw,readonly=on" in drives
    assert f"file={tmp_path / 'images.img'},if=virtio,format=raw,readonly=on" in drives


def test_an_unseeded_vm_keeps_its_kernel_line_identity():
    cmdline = config.kernel_cmdline(VmSpec(index=3, lab_id="abcdef")).split()
    assert "systemd.hostname=vm3" in cmdline
    assert not [word for word in cmdline if word.startswith("systemd.mask=")]
    # No seed: cloud-init stays off (its fallback datasource would replace eth0's address).
    assert "cloud-init=disabled" in cmdline
