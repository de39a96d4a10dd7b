"""Fleet inventory: parsing, clear errors, allocation examples, and `ovsnet inventory allocate`."""

from __future__ import annotations

import json
from ipaddress import IPv4Address
from pathlib import Path

import pytest
import yaml

from ovsnet import inventory as inv
from ovsnet.cli import main
from ovsnet.errors import InvalidInput


def hosts(*entries: tuple) -> list[dict]:
    """(name, ip[, prefix]) tuples as inventory host entries."""
    return [{"name": e[0], "ip": e[1], **({"prefix": e[2]} if len(e) > 2 else {})} for e in entries]


def allocate(data: dict) -> inv.AllocationReport:
    return inv.allocate(inv.parse(data))


def test_hosts_without_prefix_get_the_lowest_free_slash_24():
    report = allocate({"hosts": hosts(("a", "198.51.100.1"), ("b", "198.51.100.2", "10.0.1"),
                                      ("c", "198.51.100.3"))})  # fmt: skip
    assert [(e.name, e.prefix, e.status) for e in report.hosts] == [
        ("a", "10.0.2", "allocated"),
        ("b", "10.0.1", "recorded"),
        ("c", "10.0.3", "allocated"),
    ]
    assert report.inventory.allocations == {"a": "10.0.2", "b": "10.0.1", "c": "10.0.3"}


def test_first_and_last_slash_24_are_never_allocated():
    candidates = list(inv.candidate_prefixes(inv.parse({"supernet": "10.1.0.0/22"}).supernet))
    assert candidates == ["10.1.1", "10.1.2"]


def test_the_first_slash_24_may_still_be_given_on_purpose():
    report = allocate({"hosts": hosts(("a", "198.51.100.1", "10.0.0"))})
    assert report.hosts[0].prefix == "10.0.0"


def test_a_removed_host_keeps_its_slash_24_reserved_and_is_reported():
    first = allocate({"hosts": hosts(("a", "198.51.100.1"), ("b", "198.51.100.2"))}).inventory
    data = inv.to_data(first)
    data["hosts"] = [h for h in data["hosts"] if h["name"] != "a"] + hosts(("c", "198.51.100.3"))
    report = allocate(data)
    assert report.removed == (("a", "10.0.1"),)
    assert {e.name: e.prefix for e in report.hosts} == {"b": "10.0.2", "c": "10.0.3"}


def test_a_host_given_a_removed_hosts_slash_24_is_refused():
    data = {"hosts": hosts(("c", "198.51.100.3", "10.0.1")), "allocations": {"a": "10.0.1"}}
    with pytest.raises(InvalidInput, match="host c and removed host a are both on 10.0.1.0/24"):
        allocate(data)


def test_a_host_whose_prefix_line_was_deleted_gets_its_recorded_slash_24_back():
    data = {"hosts": hosts(("a", "198.51.100.1")), "allocations": {"a": "10.0.7"}}
    (entry,) = allocate(data).hosts
    assert (entry.prefix, entry.status) == ("10.0.7", "restored")


def test_moving_a_host_by_hand_is_reported():
    data = {"hosts": hosts(("a", "198.51.100.1", "10.0.9")), "allocations": {"a": "10.0.7"}}
    report = allocate(data)
    assert report.hosts[0].status == "moved" and report.inventory.allocations == {"a": "10.0.9"}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"hosts": hosts(("a", "198.51.100.1"), ("a", "198.51.100.2"))},
         "host name a appears twice"),
        ({"hosts": hosts(("a", "198.51.100.1"), ("b", "198.51.100.1"))},
         "underlay IP 198.51.100.1 appears twice"),
        ({"hosts": hosts(("a", "198.51.100.1", "10.0.5"), ("b", "198.51.100.2", "10.0.5"))},
         "host a and host b are both on 10.0.5.0/24"),
        ({"hosts": hosts(("a", "198.51.100.1", "192.168.5"))},
         "host a: subnet 192.168.5.0/24 is not inside the supernet 10.0.0.0/8"),
        ({"supernet": "10.0.0.0/22", "hosts": hosts(*[(f"h{n}", f"198.51.100.{n}")
                                                      for n in range(1, 4)])},
         "has no free /24 left for host h3"),
        ({"hosts": hosts(("a", "10.3.2.1"))}, "host a: peer 10.3.2.1 is inside the overlay"),
        ({"hosts": hosts(("a", "nowhere"))}, "is not an IP address"),
        ({"hosts": [{"name": "a"}]}, "host a has no ip"),
        ({"hosts": [{"name": "a b", "ip": "198.51.100.1"}]}, "is not a host name"),
        ({"hosts": [{"name": "a", "ip": "198.51.100.1", "prefx": "10.0.1"}]},
         "unknown key 'prefx'"),
        ({"hosts": hosts(("a", "198.51.100.1")), "supernett": "10.0.0.0/8"},
         "unknown key 'supernett'"),
        ({"supernet": "10.0.0.0/24", "hosts": []}, "has no room for /24 host subnets"),
        ({"supernet": "10.0.0.1/8", "hosts": []}, "not a valid IPv4 network"),
        ({"underlay_mtu": "big", "hosts": []}, "underlay_mtu must be a int"),
        ({"docker_tls": "yes", "hosts": []}, "docker_tls must be a bool"),
        ({"docker_tls_dir": 5, "hosts": []}, "docker_tls_dir must be a str"),
        ({"hosts": "a"}, "hosts must be a list"),
        ({"hosts": [], "allocations": {"a": "10.0.300"}}, "allocations of a: prefix"),
        ([], "is not a YAML mapping"),
    ],
)  # fmt: skip
def test_bad_inventories_are_refused_with_a_clear_message(data, message):
    with pytest.raises(InvalidInput) as caught:
        allocate(data)
    assert message in caught.value.one_line()


def test_yaml_round_trip_keeps_everything():
    data = {"supernet": "10.64.0.0/16", "underlay_mtu": 9000, "ipsec": True, "image": "x:1",
            "docker_tls": True, "docker_tls_dir": "/srv/tls",
            "hosts": hosts(("a", "198.51.100.1"), ("b", "198.51.100.2", "10.64.9"))}  # fmt: skip
    allocated = allocate(data).inventory
    assert inv.loads(inv.dumps(allocated)) == allocated
    assert inv.dumps(inv.loads(inv.dumps(allocated))) == inv.dumps(allocated)


def test_syntax_errors_name_the_line():
    with pytest.raises(InvalidInput, match="hosts.yaml is not valid YAML at line 2: mapping"):
        inv.loads("hosts:\n  - name: a: b\n", "hosts.yaml")


def test_peers_of_a_host_are_all_the_others():
    inventory = inv.parse({"hosts": hosts(("a", "198.51.100.1"), ("b", "198.51.100.2"),
                                          ("c", "198.51.100.3"))})  # fmt: skip
    assert inventory.peers_of("b") == [IPv4Address("198.51.100.1"), IPv4Address("198.51.100.3")]


# --- through the CLI --------------------------------------------------------------------------


def write(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


def test_allocate_writes_back_once_then_has_nothing_to_do(tmp_path, capsys):
    path = write(tmp_path / "hosts.yaml", {"hosts": hosts(("a", "198.51.100.1"))})
    assert main(["allocate_", "x"]) == 2  # an unknown command is a usage error
    capsys.readouterr()
    assert main(["inventory", "allocate", str(path)]) == 0
    assert "wrote" in capsys.readouterr().out
    written = path.read_text()
    assert yaml.safe_load(written)["hosts"] == hosts(("a", "198.51.100.1", "10.0.1"))
    assert main(["inventory", "allocate", str(path)]) == 0
    assert "nothing to do" in capsys.readouterr().out and path.read_text() == written


def test_allocate_dry_run_and_json(tmp_path, capsys):
    path = write(tmp_path / "hosts.yaml", {"hosts": hosts(("a", "198.51.100.1"))})
    before = path.read_text()
    assert main(["--json", "inventory", "allocate", str(path), "--dry-run"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["changed"] and not report["written"] and path.read_text() == before
    assert report["hosts"] == [
        {"name": "a", "ip": "198.51.100.1", "prefix": "10.0.1", "status": "allocated"}
    ]


def test_allocate_reports_removed_hosts(tmp_path, capsys):
    data = {"hosts": hosts(("b", "198.51.100.2")), "allocations": {"a": "10.0.1"}}
    path = write(tmp_path / "hosts.yaml", data)
    assert main(["--json", "inventory", "allocate", str(path)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["removed"] == [{"name": "a", "prefix": "10.0.1"}]
    assert report["hosts"][0]["prefix"] == "10.0.2"


@pytest.mark.parametrize(
    "data",
    [
        {"hosts": hosts(("a", "198.51.100.1"), ("a", "198.51.100.2"))},
        {"hosts": hosts(("a", "198.51.100.1"), ("b", "198.51.100.1"))},
        {"hosts": hosts(("a", "198.51.100.1", "10.0.5"), ("b", "198.51.100.2", "10.0.5"))},
        {"hosts": hosts(("a", "198.51.100.1", "172.16.0"))},
        {"supernet": "10.0.0.0/23", "hosts": hosts(("a", "198.51.100.1"), ("b", "198.51.100.2"))},
    ],
    ids=["duplicate-name", "duplicate-ip", "shared-slash-24", "outside-supernet", "full"],
)
def test_allocate_errors_exit_2_with_one_line_and_change_nothing(tmp_path, capsys, data):
    path = write(tmp_path / "hosts.yaml", data)
    before = path.read_text()
    assert main(["inventory", "allocate", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("ovsnet: error: ") and err.count("\n") == 1
    assert path.read_text() == before


def test_allocate_keeps_the_files_mode(tmp_path, capsys):
    path = write(tmp_path / "hosts.yaml", {"hosts": hosts(("a", "198.51.100.1"))})
    path.chmod(0o600)
    assert main(["inventory", "allocate", str(path)]) == 0
    assert path.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["hosts.yaml"]  # no temporary file left
