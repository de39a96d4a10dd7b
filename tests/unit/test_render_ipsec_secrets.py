"""`ovsnet render ... --ipsec-psk-embed FILE` / `--ipsec-pki-embed DIR`: the opt-in to put one
host's IPsec secret into its user-data, so IPsec comes up at first boot with no human step.

The secret must appear exactly once: in the file-write section, mode 0600, and nowhere else
(not in comments, unit text, --json, stdout, or the config's repr). Every rendered document
still passes its real validator.
"""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path
from urllib.parse import unquote

import pytest
import yaml

from ovsnet.batch import split_steps
from ovsnet.cli import main
from ovsnet.pki import cas as pki_cas
from ovsnet.pki import issue as pki_issue
from ovsnet.pki import store as pki_store
from ovsnet.render.host_layout import IPSEC_KEY_PATH, IPSEC_PSK_PATH
from ovsnet.render.validate import check

PSK = "ExampleOnlyPsk-3f9c1e7a5b2d8064cafe"  # an obviously fake key, >= 32 characters
KINDS = ("cloud-init", "ignition", "cloud-config")
INVENTORY = {
    "supernet": "10.64.0.0/16",
    "ipsec": True,
    "hosts": [
        {"name": "edge-1", "ip": "203.0.113.21", "prefix": "10.64.1"},
        {"name": "edge-2", "ip": "203.0.113.22", "prefix": "10.64.2"},
    ],
}


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def psk_file(tmp_path) -> Path:
    path = tmp_path / "fleet.psk"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, (PSK + "\n").encode())
    os.close(fd)
    return path


@pytest.fixture
def inventory(tmp_path) -> Path:
    path = tmp_path / "hosts.yaml"
    path.write_text(yaml.safe_dump(INVENTORY))
    return path


def written_files(kind: str, text: str) -> dict[str, tuple[int, str]]:
    """path -> (mode, content) of every file the user-data writes."""
    if kind == "ignition":
        files = {}
        for entry in json.loads(text)["storage"]["files"]:
            source = entry["contents"]["source"]
            header, _, data = source.partition(",")
            body = base64.b64decode(data).decode() if header.endswith(";base64") else unquote(data)
            files[entry["path"]] = (entry["mode"], body)
        return files
    entries = yaml.safe_load(text).get("write_files") or []
    return {e["path"]: (int(e["permissions"], 8), e["content"]) for e in entries}


def exec_lines(kind: str, text: str) -> list[str]:
    """The ovsnet commands of the rendered init unit's batch, in order."""
    if kind == "ignition":
        units = {u["name"]: u.get("contents", "") for u in json.loads(text)["systemd"]["units"]}
    elif kind == "cloud-init":
        units = {Path(e["path"]).name: e["content"] for e in yaml.safe_load(text)["write_files"]}
    else:
        units = {u["name"]: u.get("content", "") for u in yaml.safe_load(text)["coreos"]["units"]}
    joined = units["ovsnet-init.service"].replace(" \\\n    ", " ")
    (line,) = [x for x in joined.splitlines() if x.startswith("ExecStart=")]
    return [" ".join(step) for step in split_steps(line.split(" ovsnet batch ", 1)[1].split())]


@pytest.mark.parametrize("kind", KINDS)
def test_the_psk_is_only_in_a_0600_file_and_loaded_before_the_tunnels(
    capsys, tmp_path, psk_file, kind
):
    target = tmp_path / "out" / f"host.{kind}"
    code, out, err = run(capsys, "--json", "render", kind, "--prefix", "10.0.42", "--ipsec",
                         "--peer", "198.51.100.12", "--ipsec-psk-embed", str(psk_file),
                         "-o", str(target))  # fmt: skip
    assert code == 0, err
    assert PSK not in out + err  # not in --json, not on stdout or stderr
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    text = target.read_text()
    assert check(kind, text) == []
    files = written_files(kind, text)
    assert files[IPSEC_PSK_PATH] == (0o600, PSK + "\n")
    holding = [path for path, (_, body) in files.items() if PSK in body]
    assert holding == [IPSEC_PSK_PATH]
    if kind != "ignition":  # ignition carries it base64/percent-encoded, once
        assert text.count(PSK) == 1
        assert not any(PSK in line for line in text.splitlines() if line.lstrip().startswith("#"))
    assert "HOLDS THE HOST'S IPSEC SECRET" in text
    commands = exec_lines(kind, text)
    assert [c.rsplit("ovsnet ", 1)[-1].split()[0:3] for c in commands] == [
        ["init", "--prefix", "10.0.42"],
        ["ipsec", "psk", "set"],
        ["peer", "add", "198.51.100.12"],
    ]
    assert f"--file {IPSEC_PSK_PATH}" in commands[1] and "--ipsec" in commands[2]


def test_certificates_from_the_pki_with_each_peers_cn(capsys, tmp_path, inventory):
    base = tmp_path / "pki"
    pki_cas.ensure_cas(base)
    for host in INVENTORY["hosts"]:
        pki_issue.ensure_host_cert(base, host["name"])
    target = tmp_path / "edge-1.ign"
    code, out, err = run(capsys, "--json", "render", "ignition", "--inventory", str(inventory),
                         "--host", "edge-1", "--ipsec-pki-embed", str(base),
                         "-o", str(target))  # fmt: skip
    assert code == 0, err
    text = target.read_text()
    assert check("ignition", text) == []
    key = pki_store.host_paths(base, "edge-1")[1].read_text()
    assert "PRIVATE KEY" not in out + err
    files = written_files("ignition", text)
    assert files[IPSEC_KEY_PATH] == (0o600, key)
    assert [p for p, (_, body) in files.items() if "PRIVATE KEY" in body] == [IPSEC_KEY_PATH]
    commands = exec_lines("ignition", text)
    assert "ipsec cert --cert /etc/ovsnet/ipsec-cert.pem" in commands[1]
    assert commands[2].endswith(
        "peer add 203.0.113.22 --ipsec --remote-name edge-2 --subnet 10.64.2.0/24"
    )


def test_the_fleet_shares_the_psk_and_every_file_is_0600(capsys, tmp_path, psk_file, inventory):
    out_dir = tmp_path / "fleet"
    code, _, err = run(capsys, "render", "cloud-init", "--inventory", str(inventory), "--all",
                       "--ipsec-psk-embed", str(psk_file), "-o", str(out_dir))  # fmt: skip
    assert code == 0, err
    for path in sorted(out_dir.iterdir()):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert written_files("cloud-init", path.read_text())[IPSEC_PSK_PATH][1] == PSK + "\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["cloud-init", "--ipsec"], "give -o FILE"),  # never on stdout
        (["host-unit", "--ipsec", "-o", "{out}"], "cannot carry the IPsec secret"),
        (["cloud-init", "-o", "{out}"], "needs --ipsec"),
        (["cloud-init", "--ipsec", "--ipsec-pki-embed", "{tmp}", "-o", "{out}"], "both given"),
    ],
)
def test_bad_embedding_exits_2_with_one_line_and_writes_nothing(
    capsys, tmp_path, psk_file, args, message
):
    out = tmp_path / "never"
    argv = [a.format(out=out, tmp=tmp_path) for a in args]
    code, stdout, err = run(capsys, "render", *argv, "--prefix", "10.0.42",
                            "--ipsec-psk-embed", str(psk_file))  # fmt: skip
    assert code == 2 and message in err, err
    assert len(err.strip().splitlines()) == 1 and PSK not in stdout + err
    assert not out.exists()


def test_a_world_readable_psk_file_is_refused(capsys, tmp_path, psk_file):
    psk_file.chmod(0o644)
    code, _, err = run(capsys, "render", "cloud-init", "--prefix", "10.0.42", "--ipsec",
                       "--ipsec-psk-embed", str(psk_file), "-o", str(tmp_path / "x"))  # fmt: skip
    assert code == 2 and "chmod 600" in err and PSK not in err


def test_the_secret_is_not_in_the_configs_repr(psk_file):
    from ovsnet.render import build_host_config
    from ovsnet.render.context import embed_ipsec_secret
    from ovsnet.render.host_secrets import IpsecSecret

    config = embed_ipsec_secret(build_host_config(prefix="10.0.42", ipsec=True),
                                IpsecSecret(psk=PSK))  # fmt: skip
    assert PSK not in repr(config)


def test_without_the_opt_in_no_secret_and_no_secret_command(capsys):
    code, out, _ = run(capsys, "render", "cloud-init", "--prefix", "10.0.42", "--ipsec",
                       "--peer", "198.51.100.12")  # fmt: skip
    assert code == 0
    assert IPSEC_PSK_PATH not in out and "ipsec psk set" not in out


def test_coreos_check_rejects_a_bad_write_files_entry(capsys, tmp_path, psk_file):
    from ovsnet.render.validate import check_coreos_cloud_config

    target = tmp_path / "host.coreos.yaml"
    code, _, err = run(capsys, "render", "cloud-config", "--prefix", "10.0.42", "--ipsec",
                       "--ipsec-psk-embed", str(psk_file), "-o", str(target))  # fmt: skip
    assert code == 0, err
    text = target.read_text()
    assert check_coreos_cloud_config(text) == []
    broken = text.replace("permissions: '0600'", "permissions: rw")
    assert "quoted octal mode" in " ".join(check_coreos_cloud_config(broken))
