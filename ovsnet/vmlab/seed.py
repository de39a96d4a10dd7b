"""What a seeded lab (`ovsnet vmlab up --inventory FILE`) hands each VM: pure derivations.

The lab plays the cloud: one VM per inventory host, at the host's underlay address, each given
its host's rendered user-data through a NoCloud seed (a small disk labelled `cidata` holding
user-data, meta-data and network-config). meta-data names the host; network-config gives it its
static underlay address, as a cloud's metadata service would. The disks themselves are made in
disks.py (mkfs.vfat, mcopy); everything here is text in, text out (tests/unit/test_vmlab_seed.py).
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

from ovsnet.errors import InvalidInput
from ovsnet.inventory import Inventory
from ovsnet.vmlab.config import VmSpec

# The documentation ranges (RFC 5737): a lab underlay may only use these.
TEST_NETS = tuple(IPv4Network(net) for net in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24"))
SEED_LABEL = "cidata"  # what cloud-init's NoCloud datasource (and ds-identify) look for
MAX_VMS = 20


def underlay_of(addresses: list[IPv4Address]) -> IPv4Network:
    """The TEST-NET /24 holding every address: the lab's underlay for these hosts."""
    nets = {next((net for net in TEST_NETS if address in net), None) for address in addresses}
    if None in nets:
        outside = [str(a) for a in addresses if not any(a in net for net in TEST_NETS)]
        raise InvalidInput(
            f"the VM lab's underlay is a documentation range; {', '.join(outside)} is not in one",
            "give the inventory's hosts addresses of one of " + ", ".join(map(str, TEST_NETS)),
        )
    if len(nets) != 1:
        raise InvalidInput(
            "the inventory's hosts are in different TEST-NET ranges",
            "the lab has one underlay: put every host in the same /24",
        )
    network = nets.pop()
    assert network is not None
    for address in addresses:
        if address in (network.network_address, network.broadcast_address):
            raise InvalidInput(f"{address} is not a host address of {network}", "pick another")
    return network


def vm_specs(inventory: Inventory, lab_id: str) -> list[VmSpec]:
    """One VM per inventory host, in inventory order, with the host's name and address."""
    if not 1 <= len(inventory.hosts) <= MAX_VMS:
        raise InvalidInput(
            f"cannot run {len(inventory.hosts)} VMs", f"give an inventory of 1 to {MAX_VMS} hosts"
        )
    network = underlay_of([host.ip for host in inventory.hosts])
    return [
        VmSpec(index=i, lab_id=lab_id, host_name=host.name, address=str(host.ip), network=network)
        for i, host in enumerate(inventory.hosts, start=1)
    ]


def meta_data(vm: VmSpec) -> str:
    """NoCloud meta-data: a new instance id per lab (cloud-init runs its first boot once per
    instance, so a rebooted VM keeps its state) and the host's name."""
    return f"instance-id: ovsnet-{vm.lab_id}-{vm.name}\nlocal-hostname: {vm.name}\n"


def network_config(vm: VmSpec) -> str:
    """Network config v2: the NIC (found by the lab's MAC) at the host's static underlay address.

    No gateway: the underlay is one /24 and nothing lies beyond it (no mirror, no registry).
    """
    return (
        "version: 2\n"
        "ethernets:\n"
        "  eth0:\n"
        "    match:\n"
        f"      macaddress: '{vm.mac}'\n"
        "    set-name: eth0\n"
        f"    addresses: ['{vm.underlay}']\n"
    )


def seed_files(vm: VmSpec, user_data: str) -> dict[str, str]:
    """The seed disk's files, by name, as NoCloud reads them."""
    return {
        "user-data": user_data,
        "meta-data": meta_data(vm),
        "network-config": network_config(vm),
    }
