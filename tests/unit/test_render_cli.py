"""`ovsnet render` through the CLI edge: outputs, files, idempotence, one-line errors (exit 2)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from ovsnet.cli import main
from ovsnet.render import KINDS, build_host_config, render

EXAMPLES = Path(__file__).resolve().parents[2] / "cloud-config"


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_render_to_stdout_is_the_document_itself(capsys):
    code, out, err = run(capsys, "render", "daemon-json", "--prefix", "10.0.42")
    assert (code, err) == (0, "")
    assert json.loads(out) == {"bip": "10.0.42.1/8", "fixed-cidr": "10.0.42.0/24", "mtu": 1462}


def test_render_flags_reach_the_document(capsys):
    argv = ["render", "cloud-config", "--subnet", "10.64.3.0/24", "--supernet", "10.64.0.0/16",
            "--underlay-mtu", "9000", "--peer", "198.51.100.2", "--peer", "198.51.100.3",
            "--ipsec", "--image", "registry.example/ovsnet:dev"]  # fmt: skip
    code, out, _ = run(capsys, *argv)
    expected = build_host_config(
        subnet="10.64.3.0/24",
        supernet="10.64.0.0/16",
        underlay_mtu=9000,
        peers=["198.51.100.2", "198.51.100.3"],
        ipsec=True,
        image="registry.example/ovsnet:dev",
    )
    assert code == 0 and out == render("cloud-config", expected)


def test_json_wraps_the_document(capsys):
    code, out, _ = run(capsys, "--json", "render", "docker-dropin", "--prefix", "10.0.42")
    data = json.loads(out)
    assert code == 0 and data["kind"] == "docker-dropin" and "DOCKER_OPTS" in data["text"]


def test_render_to_a_file_is_idempotent(capsys, tmp_path):
    target = tmp_path / "user-data"
    argv = ["render", "ignition", "--prefix", "10.0.42", "-o", str(target)]
    assert run(capsys, *argv)[:2] == (0, f"written: {target}\n")
    first = target.read_text()
    code, out, _ = run(capsys, *argv)
    assert code == 0 and "nothing to do" in out and target.read_text() == first
    assert json.loads(first)["ignition"]["version"] == "3.3.0"


def test_dry_run_writes_nothing(capsys, tmp_path):
    target = tmp_path / "daemon.json"
    code, out, _ = run(capsys, "render", "daemon-json", "--prefix", "10.0.42", "-o",
                       str(target), "--dry-run")  # fmt: skip
    assert code == 0 and "would write" in out and not target.exists()


@pytest.fixture
def inventory(tmp_path) -> Path:
    path = tmp_path / "hosts.yaml"
    shutil.copy(EXAMPLES / "hosts.yaml", path)
    return path


def test_render_one_inventory_host_with_every_other_host_as_peer(capsys, inventory):
    code, out, _ = run(capsys, "render", "cloud-config", "--inventory", str(inventory),
                       "--host", "core-2")  # fmt: skip
    expected = build_host_config(
        prefix="10.0.42", peers=["198.51.100.11", "198.51.100.13"], name="core-2",
        peer_subnets=["10.0.1.0/24", "10.0.2.0/24"],
    )  # fmt: skip
    assert code == 0 and out == render("cloud-config", expected)


def test_each_inventory_peer_is_pinned_to_its_own_subnet(capsys, inventory):
    """The inventory knows every host's /24: each tunnel the user-data adds carries only that
    peer's container sources (ovsnet.antispoof), in the peers' order."""
    code, out, _ = run(capsys, "render", "host-unit", "--inventory", str(inventory),
                       "--host", "core-2")  # fmt: skip
    assert code == 0
    add = next(line for line in out.splitlines() if " peer add " in line)
    assert add.endswith(
        "peer add 198.51.100.11 198.51.100.13 --subnet 10.0.1.0/24 --subnet 10.0.2.0/24"
    )


def test_peers_without_a_prefix_yet_are_added_unpinned(capsys, tmp_path):
    path = tmp_path / "hosts.yaml"
    path.write_text(
        "hosts:\n- {name: a, ip: 198.51.100.11, prefix: 10.0.1}\n- {name: b, ip: 198.51.100.12}\n"
    )
    code, out, _ = run(capsys, "render", "host-unit", "--inventory", str(path), "--host", "a")
    assert code == 0
    add = next(line for line in out.splitlines() if " peer add " in line)
    assert add.endswith("peer add 198.51.100.12"), add


@pytest.mark.parametrize(
    ("subnets", "message"),
    [
        (["10.0.1.0/24"], "1 peer subnets for 2 peers"),
        (["10.0.1.0/24", "10.0.42.0/24"], "is not another host's slice"),
        (["10.0.1.0/24", "192.0.2.0/24"], "is not another host's slice"),
    ],
)
def test_peer_subnets_must_be_other_hosts_slices_one_per_peer(subnets, message):
    from ovsnet.errors import InvalidInput

    with pytest.raises(InvalidInput, match=message):
        build_host_config(prefix="10.0.42", peers=["198.51.100.11", "198.51.100.13"],
                          peer_subnets=subnets)  # fmt: skip


def test_render_all_writes_one_file_per_host(capsys, inventory, tmp_path):
    out_dir = tmp_path / "out"
    code, _, _ = run(capsys, "render", "ignition", "--inventory", str(inventory), "--all",
                     "-o", str(out_dir))  # fmt: skip
    assert code == 0
    assert sorted(p.name for p in out_dir.iterdir()) == ["core-1.ign", "core-2.ign", "core-3.ign"]
    assert (out_dir / "core-2.ign").read_text() == (EXAMPLES / "hosts/core-2.ign").read_text()


def test_command_line_overrides_win_over_the_inventory(capsys, inventory):
    code, out, _ = run(capsys, "render", "daemon-json", "--inventory", str(inventory),
                       "--host", "core-1", "--underlay-mtu", "9000")  # fmt: skip
    assert code == 0 and json.loads(out)["mtu"] == 8962


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--prefix", "10.0.300"], "prefix '10.0.300' is malformed"),
        ([], "give exactly one of --prefix A.B.C or --subnet CIDR"),
        (["--prefix", "10.0.1", "--subnet", "10.0.1.0/24"], "give exactly one of"),
        (["--prefix", "10.0.1", "--peer", "10.0.2.3"], "inside the overlay supernet"),
        (["--prefix", "10.0.1", "--underlay-mtu", "100"], "leaves only"),
        (["--prefix", "10.0.1", "--host", "core-1"], "--host and --all need --inventory"),
        (["--inventory", "{inv}", "--host", "core-9"], "no host 'core-9' in the inventory"),
        (["--inventory", "{inv}"], "either --host NAME or --all"),
        (["--inventory", "{inv}", "--all"], "give the folder with -o DIR"),
        (["--inventory", "{inv}", "--host", "core-1", "--peer", "192.0.2.1"],
         "--peer cannot be combined with --inventory"),
        (["--inventory", "{inv}", "--host", "core-1", "--supernet", "10.0.0.0/9"],
         "--supernet cannot be combined"),
        (["--inventory", "/nonexistent/hosts.yaml", "--host", "a"], "does not exist"),
    ],
)  # fmt: skip
def test_bad_input_exits_2_with_one_line(capsys, inventory, argv, message):
    argv = [arg.replace("{inv}", str(inventory)) for arg in argv]
    code, out, err = run(capsys, "render", "cloud-config", *argv)
    assert code == 2 and out == ""
    assert err.startswith("ovsnet: error: ") and err.count("\n") == 1 and message in err


def test_unknown_kind_is_a_usage_error(capsys):
    code, _, err = run(capsys, "render", "kickstart", "--prefix", "10.0.1")
    assert code == 2 and "kickstart" in err


def test_every_kind_renders_through_the_cli(capsys):
    for kind in KINDS:
        code, out, _ = run(capsys, "render", kind, "--prefix", "10.0.42")
        assert code == 0 and out == render(kind, build_host_config(prefix="10.0.42"))
