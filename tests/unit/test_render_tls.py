"""`ovsnet render ... --docker-tls`: Docker's API on tcp://0.0.0.0:2376 with mutual TLS.

Drop-in kinds (docker-dropin, cloud-config) put `--host=tcp://...` and the TLS flags in
$DOCKER_OPTS, next to the `-H fd://` docker.service passes itself. Kinds that configure Docker
through daemon.json (daemon-json, ignition, cloud-init) put the TLS settings there, never
"hosts" (dockerd refuses to start with -H on its command line and "hosts" in daemon.json), and
ignition/cloud-init carry a socket unit that hands dockerd the TCP port through that `-H fd://`.
The lab test (tests/lab/test_render_docker_tls.py) starts a real dockerd with both.
"""

from __future__ import annotations

import json
import stat
from pathlib import Path
from urllib.parse import unquote

import pytest
import yaml

from ovsnet.cli import main
from ovsnet.errors import InvalidInput
from ovsnet.pki import cas as pki_cas
from ovsnet.pki import issue as pki_issue
from ovsnet.pki import store as pki_store
from ovsnet.render import KINDS, build_host_config, render, units
from ovsnet.render.context import embed_docker_tls
from ovsnet.render.documents import docker_tls_socket
from ovsnet.render.host_secrets import TlsFiles
from ovsnet.render.validate import check, check_cloud_init, check_daemon_json, check_ignition

PEERS = ["198.51.100.12", "198.51.100.13"]
TLS_FLAGS = [
    "--host=tcp://0.0.0.0:2376",
    "--tlsverify",
    "--tlscacert=/etc/docker/tls/ca.pem",
    "--tlscert=/etc/docker/tls/cert.pem",
    "--tlskey=/etc/docker/tls/key.pem",
]
TLS_OPTIONS = {
    "tlsverify": True,
    "tlscacert": "/etc/docker/tls/ca.pem",
    "tlscert": "/etc/docker/tls/cert.pem",
    "tlskey": "/etc/docker/tls/key.pem",
}
SOCKET = "ovsnet-docker-tls.socket"


def config(**overrides):
    args = {"prefix": "10.0.42", "peers": PEERS, "name": "core-1", "docker_tls": True}
    return build_host_config(**(args | overrides))


def dropin_opts(text: str) -> list[str]:
    (line,) = [x for x in text.splitlines() if x.startswith("Environment=")]
    assert line.startswith('Environment="DOCKER_OPTS=') and line.endswith('"')
    return line.removeprefix('Environment="DOCKER_OPTS=').removesuffix('"').split()


def ignition_files(text: str) -> dict[str, dict]:
    return {f["path"]: f for f in json.loads(text)["storage"]["files"]}


def data_url(entry: dict) -> str:
    return unquote(entry["contents"]["source"].removeprefix("data:,"))


# --- what each kind says --------------------------------------------------------------------


def test_dropin_adds_the_tcp_listener_and_tls_flags_after_the_bridge_options():
    host = config()
    assert dropin_opts(render("docker-dropin", host)) == [*host.docker_flags, *TLS_FLAGS]


def test_coreos_cloud_config_uses_the_dropin_and_no_socket_unit():
    data = yaml.safe_load(render("cloud-config", config()))
    names = [unit["name"] for unit in data["coreos"]["units"]]
    assert names == ["docker.service", "ovsnet.service", "ovsnet-init.service"]
    (dropin,) = data["coreos"]["units"][0]["drop-ins"]
    assert dropin_opts(dropin["content"])[-5:] == TLS_FLAGS


def test_daemon_json_holds_the_tls_settings_and_never_hosts():
    options = json.loads(render("daemon-json", config()))
    assert options == config().docker_options | TLS_OPTIONS
    assert "hosts" not in options and "tls" not in options


def test_socket_unit_listens_on_2376_for_docker_service():
    unit = docker_tls_socket(config())
    lines = unit.contents.splitlines()
    assert unit.name == SOCKET
    assert "ListenStream=0.0.0.0:2376" in lines and "Service=docker.service" in lines
    assert "WantedBy=sockets.target" in lines


def test_ignition_carries_tls_daemon_json_and_the_enabled_socket_unit():
    text = render("ignition", config())
    files = ignition_files(text)
    assert list(files) == ["/etc/docker/daemon.json"]  # no certificate unless embedded
    assert json.loads(data_url(files["/etc/docker/daemon.json"])) == config().daemon_json_options
    named = {unit["name"]: unit for unit in json.loads(text)["systemd"]["units"]}
    assert named[SOCKET] == {
        "name": SOCKET,
        "enabled": True,
        "contents": docker_tls_socket(config()).contents,
    }


def test_cloud_init_writes_the_socket_and_starts_it_before_restarting_docker():
    data = yaml.safe_load(render("cloud-init", config()))
    files = {entry["path"]: entry for entry in data["write_files"]}
    assert json.loads(files["/etc/docker/daemon.json"]["content"]) == config().daemon_json_options
    assert files[f"/etc/systemd/system/{SOCKET}"]["content"] == docker_tls_socket(config()).contents
    assert not any(path.startswith("/etc/docker/tls") for path in files)
    runcmd = data["runcmd"]
    enable_socket = runcmd.index(["systemctl", "enable", "--now", SOCKET])
    assert enable_socket < runcmd.index(["systemctl", "restart", "docker.service"])


def test_the_tls_folder_option_moves_every_path():
    host = config(docker_tls_dir="/srv/docker-tls/")
    assert dropin_opts(render("docker-dropin", host))[-3:] == [
        "--tlscacert=/srv/docker-tls/ca.pem",
        "--tlscert=/srv/docker-tls/cert.pem",
        "--tlskey=/srv/docker-tls/key.pem",
    ]
    assert json.loads(render("daemon-json", host))["tlskey"] == "/srv/docker-tls/key.pem"
    assert "/srv/docker-tls/" in docker_tls_socket(host).contents


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_without_docker_tls_nothing_listens_on_tcp(kind):
    text = render(kind, config(docker_tls=False))
    assert "2376" not in text and "tls" not in text.lower() and SOCKET not in text
    assert docker_tls_socket(config(docker_tls=False)) is None


def test_ovsnet_units_are_the_same_with_and_without_tls_but_for_the_header():
    def body(unit):
        return [line for line in unit.contents.splitlines() if not line.startswith("# ")]

    with_tls, without = units(config()), units(config(docker_tls=False))
    assert [body(u) for u in with_tls] == [body(u) for u in without]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"docker_tls": False, "docker_tls_dir": "/etc/docker/tls"}, "without --docker-tls"),
        ({"docker_tls_dir": "etc/docker/tls"}, "is not an absolute path"),
        ({"docker_tls_dir": "/"}, "is not an absolute path"),
        ({"docker_tls_dir": "/etc/../root"}, "is not an absolute path"),
        ({"docker_tls_dir": "/etc/docker tls"}, "is not an absolute path"),
        ({"docker_tls_dir": "/etc/$HOME"}, "is not an absolute path"),
        ({"docker_tls_dir": "/etc/50%"}, "is not an absolute path"),
    ],
)
def test_bad_tls_input_is_refused_with_a_clear_message(overrides, message):
    with pytest.raises(InvalidInput, match=message.replace("$", r"\$")):
        config(**overrides)


# --- validators -----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_kind_with_docker_tls_passes_its_validator(kind):
    assert check(kind, render(kind, config(docker_tls_dir="/srv/docker-tls"))) == []


def test_daemon_json_check_rejects_hosts_next_to_docker_services_fd():
    options = json.loads(render("daemon-json", config())) | {"hosts": ["tcp://0.0.0.0:2376"]}
    assert any('sets "hosts"' in p for p in check_daemon_json(json.dumps(options)))


def test_daemon_json_check_rejects_tls_without_client_verification():
    options = json.loads(render("daemon-json", config())) | {"tlsverify": False, "tls": True}
    assert any("without tlsverify" in p for p in check_daemon_json(json.dumps(options)))


@pytest.mark.parametrize("kind", ["docker-dropin", "cloud-config"])
def test_dropin_check_rejects_a_tcp_host_without_tlsverify(kind):
    text = render(kind, config()).replace(" --tlsverify", "")
    assert any("--host=tcp://0.0.0.0:2376 without tlsverify" in p for p in check(kind, text))


def test_dropin_check_rejects_a_tcp_host_without_its_key():
    text = render("docker-dropin", config()).replace(" --tlskey=/etc/docker/tls/key.pem", "")
    assert any("needs tlskey" in p for p in check("docker-dropin", text))


def test_ignition_and_cloud_init_checks_want_the_socket_for_tls_settings():
    ignition = render("ignition", config()).replace(SOCKET, "ovsnet-docker-tls.service")
    assert any("no socket unit" in p for p in check_ignition(ignition))
    cloud_init = render("cloud-init", config()).replace(
        "Service=docker.service", "Service=ovsnet.service"
    )
    assert any("no socket unit" in p for p in check_cloud_init(cloud_init))


# --- the opt-in to embed the certificates ---------------------------------------------------


@pytest.fixture(scope="module")
def pki_dir(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("pki")
    pki_cas.ensure_cas(base)
    for host in ("core-1", "core-2", "core-3"):
        pki_issue.ensure_docker_certs(base, host, [f"198.51.100.{10 + int(host[-1])}"])
    return base


def server_files(pki_dir: Path, host: str = "core-1") -> TlsFiles:
    server = pki_store.docker_dirs(pki_dir, host)[0]
    return TlsFiles(*((server / name).read_text() for name in ("ca.pem", "cert.pem", "key.pem")))


def test_embedded_certificates_are_ignition_files_with_the_key_0600(pki_dir):
    files = server_files(pki_dir)
    text = render("ignition", embed_docker_tls(config(), files))
    entries = ignition_files(text)
    assert {path: entry["mode"] for path, entry in entries.items()} == {
        "/etc/docker/daemon.json": 0o644,
        "/etc/docker/tls/ca.pem": 0o644,
        "/etc/docker/tls/cert.pem": 0o644,
        "/etc/docker/tls/key.pem": 0o600,
    }
    assert data_url(entries["/etc/docker/tls/key.pem"]) == files.key
    assert data_url(entries["/etc/docker/tls/cert.pem"]) == files.cert
    assert check_ignition(text) == []


def test_embedded_certificates_are_cloud_init_files_with_the_key_0600(pki_dir):
    files = server_files(pki_dir)
    text = render("cloud-init", embed_docker_tls(config(), files))
    entries = {entry["path"]: entry for entry in yaml.safe_load(text)["write_files"]}
    assert entries["/etc/docker/tls/key.pem"]["permissions"] == "0600"
    assert entries["/etc/docker/tls/ca.pem"]["permissions"] == "0644"
    assert entries["/etc/docker/tls/key.pem"]["content"] == files.key
    assert "HOLDS DOCKER'S TLS PRIVATE KEY" in text
    assert check_cloud_init(text) == []


def test_embedded_key_is_not_in_the_configs_repr(pki_dir):
    files = server_files(pki_dir)
    assert "PRIVATE KEY" not in repr(embed_docker_tls(config(), files))


@pytest.mark.parametrize("kind", ["docker-dropin", "daemon-json", "cloud-config"])
def test_kinds_without_file_modes_refuse_to_embed(pki_dir, kind):
    with pytest.raises(InvalidInput, match="cannot carry Docker's certificates"):
        render(kind, embed_docker_tls(config(), server_files(pki_dir)))


def test_embedding_needs_docker_tls(pki_dir):
    with pytest.raises(InvalidInput, match="needs --docker-tls"):
        embed_docker_tls(config(docker_tls=False), server_files(pki_dir))


# --- through the CLI ------------------------------------------------------------------------


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_help_shows_the_tls_options(capsys):
    code, out, _ = run(capsys, "render", "--help")
    assert code == 0
    for option in ("--docker-tls ", "--docker-tls-dir", "--docker-tls-embed"):
        assert option in out


def test_cli_flags_reach_the_document(capsys):
    code, out, err = run(capsys, "render", "docker-dropin", "--prefix", "10.0.42",
                         "--docker-tls", "--docker-tls-dir", "/srv/tls")  # fmt: skip
    assert (code, err) == (0, "")
    assert out == render("docker-dropin", build_host_config(
        prefix="10.0.42", docker_tls=True, docker_tls_dir="/srv/tls"))  # fmt: skip


def test_inventory_settings_and_overrides(capsys, tmp_path):
    inventory = tmp_path / "hosts.yaml"
    inventory.write_text(yaml.safe_dump({
        "docker_tls_dir": "/srv/tls",
        "hosts": [{"name": "a", "ip": "198.51.100.1", "prefix": "10.0.1"},
                  {"name": "b", "ip": "198.51.100.2", "prefix": "10.0.2"}],
    }))  # fmt: skip
    code, _, err = run(capsys, "render", "daemon-json", "--inventory", str(inventory),
                       "--host", "a")  # fmt: skip
    assert code == 2 and "without --docker-tls" in err
    code, out, _ = run(capsys, "render", "daemon-json", "--inventory", str(inventory),
                       "--host", "a", "--docker-tls")  # fmt: skip
    assert code == 0 and json.loads(out)["tlscert"] == "/srv/tls/cert.pem"


def test_cli_embeds_into_a_0600_file_and_is_idempotent(capsys, tmp_path, pki_dir):
    target = tmp_path / "core-1.ign"
    server = pki_store.docker_dirs(pki_dir, "core-1")[0]
    argv = ["--json", "render", "ignition", "--prefix", "10.0.42", "--docker-tls",
            "--docker-tls-embed", str(server), "-o", str(target)]  # fmt: skip
    code, out, _ = run(capsys, *argv)
    assert code == 0 and json.loads(out)["files"] == [{"path": str(target), "status": "written"}]
    assert "PRIVATE KEY" not in out
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert ignition_files(target.read_text())["/etc/docker/tls/key.pem"]["mode"] == 0o600
    code, out, _ = run(capsys, *argv)
    assert json.loads(out)["files"][0]["status"] == "unchanged"
    target.chmod(0o644)  # a readable copy of a key is not "up to date"
    code, out, _ = run(capsys, *argv)
    assert json.loads(out)["files"][0]["status"] == "written"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_cli_embeds_each_hosts_own_certificate_for_the_whole_fleet(capsys, tmp_path, pki_dir):
    inventory = tmp_path / "hosts.yaml"
    hosts = [{"name": f"core-{n}", "ip": f"198.51.100.{10 + n}", "prefix": f"10.0.{n}"}
             for n in (1, 2, 3)]  # fmt: skip
    inventory.write_text(yaml.safe_dump({"docker_tls": True, "hosts": hosts}))
    out_dir = tmp_path / "out"
    code, _, err = run(capsys, "render", "cloud-init", "--inventory", str(inventory), "--all",
                       "--docker-tls-embed", str(pki_dir), "-o", str(out_dir))  # fmt: skip
    assert code == 0, err
    for n in (1, 2, 3):
        path = out_dir / f"core-{n}.cloud-init.yaml"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        entries = {e["path"]: e for e in yaml.safe_load(path.read_text())["write_files"]}
        assert entries["/etc/docker/tls/cert.pem"]["content"] == (
            server_files(pki_dir, f"core-{n}").cert
        )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["ignition", "--docker-tls-dir", "/etc/docker/tls"], "without --docker-tls"),
        (["ignition", "--docker-tls", "--docker-tls-dir", "tls"], "not an absolute path"),
        (["ignition", "--docker-tls", "--docker-tls-embed", "{server}"],
         "give -o FILE (written 0600)"),
        (["daemon-json", "--docker-tls", "--docker-tls-embed", "{server}", "-o", "{out}"],
         "daemon-json cannot carry Docker's certificates"),
        (["ignition", "--docker-tls", "--docker-tls-embed", "{client}", "-o", "{out}"],
         "is a Docker API client certificate, not a Docker API server certificate"),
        (["ignition", "--docker-tls", "--docker-tls-embed", "{pki}", "-o", "{out}"],
         "lacks ca.pem, cert.pem, key.pem"),
        (["ignition", "--docker-tls-embed", "{server}", "-o", "{out}"], "needs --docker-tls"),
    ],
)  # fmt: skip
def test_bad_tls_input_exits_2_with_one_line_and_writes_nothing(
    capsys, tmp_path, pki_dir, argv, message
):
    server, client = pki_store.docker_dirs(pki_dir, "core-1")
    out = tmp_path / "out.ign"
    values = {"{server}": server, "{client}": client, "{pki}": pki_dir, "{out}": out}
    argv = [str(values.get(arg, arg)) for arg in argv]
    code, stdout, err = run(capsys, "render", argv[0], "--prefix", "10.0.42", *argv[1:])
    assert code == 2 and stdout == "" and not out.exists()
    assert err.startswith("ovsnet: error: ") and err.count("\n") == 1 and message in err
    assert "PRIVATE KEY" not in err


def test_a_fleet_host_without_its_certificate_is_named_and_nothing_is_written(
    capsys, tmp_path, pki_dir
):
    inventory = tmp_path / "hosts.yaml"
    inventory.write_text(yaml.safe_dump({"docker_tls": True, "hosts": [
        {"name": "core-1", "ip": "198.51.100.11", "prefix": "10.0.1"},
        {"name": "edge-9", "ip": "198.51.100.99", "prefix": "10.0.9"},
    ]}))  # fmt: skip
    out_dir = tmp_path / "out"
    code, _, err = run(capsys, "render", "ignition", "--inventory", str(inventory), "--all",
                       "--docker-tls-embed", str(pki_dir), "-o", str(out_dir))  # fmt: skip
    assert code == 2 and "no Docker server certificate for edge-9" in err
    assert not out_dir.exists()


def _folder(tmp_path: Path, name: str, ca: Path, cert: Path, key: Path) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    for source, target in ((ca, "ca.pem"), (cert, "cert.pem"), (key, "key.pem")):
        (folder / target).write_bytes(source.read_bytes())
    (folder / "key.pem").chmod(0o600)
    return folder


def test_embedding_refuses_a_folder_that_would_trust_or_serve_another_purpose(
    capsys, tmp_path, pki_dir
):
    # dockerd must trust only the docker-client CA and present a docker-server certificate.
    server = pki_store.docker_dirs(pki_dir, "core-1")[0]
    ike = pki_issue.ensure_host_cert(pki_dir, "core-1")
    ike_ca = pki_store.ca_cert_path(pki_dir, "ike")
    cases = {
        "trusts-ike": (_folder(tmp_path, "a", ike_ca, server / "cert.pem", server / "key.pem"),
                       "not a Docker API client CA"),
        "serves-ike": (_folder(tmp_path, "b", server / "ca.pem", ike.cert_path, ike.key_path),
                       "not a Docker API server certificate"),
    }  # fmt: skip
    for folder, message in cases.values():
        out = tmp_path / f"{folder.name}.ign"
        code, _, err = run(capsys, "render", "ignition", "--prefix", "10.0.42", "--docker-tls",
                           "--docker-tls-embed", str(folder), "-o", str(out))  # fmt: skip
        assert code == 2 and message in err and not out.exists(), err
