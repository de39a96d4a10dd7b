"""Property tests for allocation: no overlap, inside the supernet, stable, additions only add."""

from __future__ import annotations

from ipaddress import IPv4Network

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from ovsnet import inventory as inv
from ovsnet.addressing import host_addressing
from ovsnet.errors import InvalidInput

# No per-example deadline: a loaded CI machine must not turn these into flaky failures.
NO_DEADLINE = settings(deadline=None)
SUPERNETS = ["10.0.0.0/20", "10.8.0.0/21", "10.250.0.0/22", "10.0.0.0/16", "172.16.0.0/12"]


@st.composite
def inventories(draw, max_hosts: int = 14) -> inv.Inventory:
    supernet = IPv4Network(draw(st.sampled_from(SUPERNETS)))
    slots = list(supernet.subnets(new_prefix=24))
    count = draw(st.integers(0, max_hosts))
    fixed_slots = draw(st.lists(st.integers(0, len(slots) - 1), unique=True, max_size=count))
    fixed_slots = [i for i in fixed_slots if 0 < i < len(slots) - 1]  # valid host subnets
    hosts = []
    for index in range(count):
        prefix = None
        if index < len(fixed_slots) and draw(st.booleans()):
            prefix = str(slots[fixed_slots[index]].network_address).rsplit(".", 1)[0]
        hosts.append(
            {"name": f"h{index}", "ip": f"198.51.100.{index + 1}"}
            | ({"prefix": prefix} if prefix else {})
        )
    order = draw(st.permutations(hosts))
    return inv.parse({"supernet": str(supernet), "hosts": list(order)})


def allocate_or_full(inventory: inv.Inventory) -> inv.AllocationReport:
    """Allocate; a "full" error must be true (more hosts to place than free /24s): skip those."""
    try:
        return inv.allocate(inventory)
    except InvalidInput as exc:
        assert "has no free /24 left" in exc.message
        fixed = {h.prefix for h in inventory.hosts if h.prefix}
        free = [p for p in inv.candidate_prefixes(inventory.supernet) if p not in fixed]
        assert sum(1 for h in inventory.hosts if not h.prefix) > len(free)
        assume(False)
        raise


@NO_DEADLINE
@given(inventories())
def test_allocations_never_overlap_and_never_leave_the_supernet(inventory):
    report = allocate_or_full(inventory)
    prefixes = [entry.prefix for entry in report.hosts]
    assert len(set(prefixes)) == len(prefixes)
    for prefix in prefixes:
        addressing = host_addressing(prefix=prefix, supernet=str(inventory.supernet))
        assert addressing.subnet.subnet_of(inventory.supernet)
    subnets = [IPv4Network(f"{p}.0/24") for p in prefixes]
    assert not any(a.overlaps(b) for i, a in enumerate(subnets) for b in subnets[i + 1 :])


@NO_DEADLINE
@given(inventories())
def test_fixed_prefixes_are_kept(inventory):
    report = allocate_or_full(inventory)
    for host, entry in zip(inventory.hosts, report.hosts, strict=True):
        if host.prefix:
            assert entry.prefix == host.prefix


@NO_DEADLINE
@given(inventories())
def test_allocation_is_stable_across_reruns_and_the_yaml_file(inventory):
    first = allocate_or_full(inventory).inventory
    again = inv.allocate(inv.loads(inv.dumps(first)))
    assert not again.changed and again.inventory == first
    assert inv.dumps(again.inventory) == inv.dumps(first)


@NO_DEADLINE
@given(inventories(max_hosts=8), st.integers(1, 6))
def test_adding_hosts_allocates_only_for_them(inventory, added):
    first = allocate_or_full(inventory).inventory
    data = inv.to_data(first)
    data["hosts"] += [{"name": f"new{n}", "ip": f"192.0.2.{n + 1}"} for n in range(added)]
    try:
        report = inv.allocate(inv.parse(data))
    except InvalidInput as exc:
        assert "has no free /24 left" in exc.message
        return
    before = {h.name: h.prefix for h in first.hosts}
    for entry in report.hosts:
        if entry.name in before:
            assert (entry.prefix, entry.status) == (before[entry.name], "kept")
        else:
            assert entry.status == "allocated" and entry.prefix not in before.values()


@NO_DEADLINE
@given(inventories(max_hosts=8), st.data())
def test_removing_a_host_frees_nothing(inventory, data):
    assume(inventory.hosts)
    first = allocate_or_full(inventory).inventory
    gone = data.draw(st.sampled_from(first.hosts))
    remaining = inv.to_data(first)
    remaining["hosts"] = [h for h in remaining["hosts"] if h["name"] != gone.name]
    remaining["hosts"].append({"name": "newcomer", "ip": "192.0.2.200"})
    try:
        report = inv.allocate(inv.parse(remaining))
    except InvalidInput as exc:
        assert "has no free /24 left" in exc.message
        return
    assert (gone.name, gone.prefix) in report.removed
    assert gone.prefix not in [entry.prefix for entry in report.hosts]


@settings(max_examples=30, deadline=None)
@given(st.sampled_from(SUPERNETS[:3]))
def test_a_full_supernet_is_a_clear_error(supernet):
    usable = sum(1 for _ in inv.candidate_prefixes(IPv4Network(supernet)))
    data = {
        "supernet": supernet,
        "hosts": [{"name": f"h{n}", "ip": f"198.51.100.{n + 1}"} for n in range(usable + 1)],
    }
    with pytest.raises(InvalidInput, match=f"no free /24 left for host h{usable}"):
        inv.allocate(inv.parse(data))
