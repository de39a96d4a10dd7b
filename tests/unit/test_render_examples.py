"""cloud-config/ holds exactly what `make render-examples` would write: fails when stale."""

from __future__ import annotations

import shutil
from pathlib import Path

from ovsnet.cli import main
from ovsnet.render.fleet import render_examples
from ovsnet.render.validate import check

EXAMPLES = Path(__file__).resolve().parents[2] / "cloud-config"
KIND_OF_SUFFIX = {
    ".coreos.yaml": "cloud-config",
    ".ign": "ignition",
    ".cloud-init.yaml": "cloud-init",
    ".daemon.json": "daemon-json",
    ".50-ovsnet-bridge.conf": "docker-dropin",
}


def expected_files() -> dict[str, str]:
    inventories = {path.name: path.read_text() for path in EXAMPLES.glob("*.yaml")}
    return render_examples(inventories)


def test_examples_are_up_to_date():
    expected = expected_files()
    stale = [name for name, text in expected.items() if _read(EXAMPLES / name) != text]
    rendered_dirs = {name.split("/")[0] for name in expected if "/" in name}
    extra = [
        f"{folder}/{path.name}"
        for folder in rendered_dirs
        for path in (EXAMPLES / folder).iterdir()
        if f"{folder}/{path.name}" not in expected
    ]
    assert (stale, extra) == ([], []), "run `make render-examples` and commit cloud-config/"


def test_examples_include_a_three_host_fleet_of_every_kind():
    names = set(expected_files())
    for kind_suffix in KIND_OF_SUFFIX:
        assert {f"hosts/core-{n}{kind_suffix}" for n in (1, 2, 3)} <= names


def test_examples_include_a_docker_tls_fleet():
    files = expected_files()
    for n in (1, 2, 3):
        assert "--tlsverify" in files[f"hosts-docker-tls/dock-{n}.50-ovsnet-bridge.conf"]
        assert '"tlsverify": true' in files[f"hosts-docker-tls/dock-{n}.daemon.json"]
        assert "ListenStream=0.0.0.0:2376" in files[f"hosts-docker-tls/dock-{n}.cloud-init.yaml"]
    assert not any("PRIVATE KEY" in text for text in files.values())


def test_every_example_passes_its_validator():
    for name, text in expected_files().items():
        suffix = next((s for s in KIND_OF_SUFFIX if name.endswith(s)), None)
        if suffix is not None:
            assert check(KIND_OF_SUFFIX[suffix], text) == [], name


def test_stale_check_fails_on_a_changed_file(tmp_path, capsys):
    copy = tmp_path / "cloud-config"
    shutil.copytree(EXAMPLES, copy)
    assert main(["render-examples", str(copy), "--check"]) == 0
    target = copy / "hosts" / "core-1.daemon.json"
    target.write_text(target.read_text().replace("1462", "1500"))
    (copy / "hosts" / "old-host.ign").write_text("{}")
    capsys.readouterr()
    assert main(["render-examples", str(copy), "--check"]) == 1
    err = capsys.readouterr().err
    assert "core-1.daemon.json" in err and "old-host.ign" in err and err.count("\n") == 1
    assert main(["render-examples", str(copy)]) == 0  # regenerates
    assert not (copy / "hosts" / "old-host.ign").exists()
    assert main(["render-examples", str(copy), "--check"]) == 0


def _read(path: Path) -> str | None:
    return path.read_text() if path.is_file() else None
