"""`ovsnet render --docker-tls` drives a real dockerd: the API answers over mutual TLS only.

Server and client certificates come from `ovsnet pki issue-docker` in a temp dir. A lab host's
own dockerd (its own network namespace) is restarted with exactly the rendered configuration:

- daemon.json kinds (daemon-json, ignition, cloud-init): the rendered daemon.json (bridge and TLS
  settings, no "hosts") and the rendered socket unit's ListenStream, handed to dockerd the way
  systemd does for a socket unit with `Service=docker.service`: systemd's `systemd-socket-activate`
  binds it and execs dockerd, which takes it through `--host=fd://`.
- drop-in kinds (docker-dropin, cloud-config): dockerd with the drop-in's $DOCKER_OPTS as
  docker.service expands it, next to its own local socket (`-H fd://` on a real host).

Lab-only differences, all forced by running on a shared machine: the rendered listen address
0.0.0.0 becomes 127.0.0.1 (loopback only; the port stays the rendered 2376, which cannot collide
with anything since the host's namespace has its own port space); `--docker-tls-dir` points at
the temp server folder instead of /etc/docker/tls; dockerd keeps the lab's data root, pidfile
and unix socket (the lab stops it by PID); `init` gets `--datapath netdev` (no openvswitch
module here). Checks run inside the host's namespace, where its 127.0.0.1 is.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
import yaml

from ovsnet.cli import main
from ovsnet.lab import dockerd
from ovsnet.lab.proc import LabError
from ovsnet.pki import store as pki_store
from tests.lab.rendered_dockerd import restart_dockerd_as_rendered

pytestmark = [pytest.mark.lab, pytest.mark.slow]

PREFIX = "10.0.78"  # not the lab's own prefix: only the rendered file can put it on docker0
RENDERED_LISTEN = "0.0.0.0:2376"
LAB_LISTEN = "127.0.0.1:2376"
LAB_URL = f"tcp://{LAB_LISTEN}"
PROBE = Path(__file__).with_name("docker_tls_probe.py")


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("pki")
    ours, theirs = base / "ours", base / "theirs"
    for directory in (ours, theirs):
        assert main(["pki", "init", "--dir", str(directory)]) == 0
    assert main(["pki", "issue-docker", "dock-1", "--ip", "127.0.0.1", "--dir", str(ours)]) == 0
    assert main(["pki", "issue-docker", "dock-1", "--ip", "127.0.0.1", "--dir", str(theirs)]) == 0
    server, client = pki_store.docker_dirs(ours, "dock-1")
    # A client holding a certificate of another CA, but trusting the right server CA.
    impostor = base / "impostor"
    impostor.mkdir()
    _, foreign_client = pki_store.docker_dirs(theirs, "dock-1")
    shutil.copy(client / "ca.pem", impostor / "ca.pem")
    for name in ("cert.pem", "key.pem"):
        shutil.copy(foreign_client / name, impostor / name)
    return {"server": server, "client": client, "impostor": impostor}


@pytest.fixture(scope="module")
def host(lab_factory_module):
    (host,) = lab_factory_module(hosts=1).hosts
    return host


def rendered(kind: str, server: Path, tmp_path: Path) -> str:
    """`ovsnet render KIND --docker-tls` for this host, through the CLI, as written to a file."""
    out = tmp_path / f"rendered-{kind}"
    argv = ["render", kind, "--prefix", PREFIX, "--docker-tls", "--docker-tls-dir", str(server),
            "-o", str(out)]  # fmt: skip
    assert main(argv) == 0
    return out.read_text()


def dropin_flags(text: str) -> list[str]:
    """What docker.service's unbraced `$DOCKER_OPTS` expands to with the rendered drop-in."""
    (line,) = [x for x in text.splitlines() if x.startswith('Environment="DOCKER_OPTS=')]
    return line.removeprefix('Environment="DOCKER_OPTS=').removesuffix('"').split()


def socket_listen(cloud_init: str) -> str:
    """ListenStream= of the socket unit the rendered cloud-init writes."""
    files = {f["path"]: f["content"] for f in yaml.safe_load(cloud_init)["write_files"]}
    (unit,) = [text for path, text in files.items() if path.endswith(".socket")]
    assert "Service=docker.service" in unit.splitlines()
    (line,) = [x for x in unit.splitlines() if x.startswith("ListenStream=")]
    return line.removeprefix("ListenStream=")


def daemon_json_of(cloud_init: str) -> str:
    files = {f["path"]: f["content"] for f in yaml.safe_load(cloud_init)["write_files"]}
    return files["/etc/docker/daemon.json"]


def probe(host, client: Path) -> dict:
    done = host.run([sys.executable, str(PROBE), LAB_URL, str(client)])
    return json.loads(done.stdout)


def assert_mutual_tls_only(host, certs) -> None:
    seen = probe(host, certs["client"])
    assert seen["facade"]["server_version"].startswith("20.10"), seen
    assert "not reachable" in seen["facade_without_tls"]["error"], seen
    assert seen["plain_http"] == {"status": 400, "answered_version": False}, seen
    assert "error" in seen["tls_without_client_certificate"], seen
    assert "client didn't provide a certificate" in dockerd.log_file(host.layout).read_text()
    # The local socket is untouched: the lab's own docker client still talks to it without TLS.
    assert host.docker("version", "--format", "{{.Server.Version}}").stdout.startswith("20.10")


def test_rendered_dropin_flags_serve_the_api_over_mutual_tls_only(host, certs, tmp_path):
    text = rendered("docker-dropin", certs["server"], tmp_path)
    flags = dropin_flags(text)
    assert f"--host=tcp://{RENDERED_LISTEN}" in flags and "--tlsverify" in flags
    lab_flags = [f.replace(RENDERED_LISTEN, LAB_LISTEN) for f in flags]

    restart_dockerd_as_rendered(host, flags=lab_flags)

    assert_mutual_tls_only(host, certs)


def test_rendered_daemon_json_and_socket_unit_serve_the_api_and_init_checks_over_tls(
    host, certs, tmp_path
):
    cloud_init = rendered("cloud-init", certs["server"], tmp_path)
    daemon_json = daemon_json_of(cloud_init)
    assert daemon_json == rendered("daemon-json", certs["server"], tmp_path)  # the same file
    options = json.loads(daemon_json)
    assert options["tlsverify"] is True and "hosts" not in options
    assert socket_listen(cloud_init) == RENDERED_LISTEN

    restart_dockerd_as_rendered(host, daemon_json=daemon_json, activate=[LAB_LISTEN])

    assert_mutual_tls_only(host, certs)
    init = ["init", "--prefix", PREFIX, "--datapath", "netdev", "--docker-host", LAB_URL]
    refused = host.ovsnet(*init, "--docker-tls", str(certs["impostor"]))
    assert refused.returncode == 3 and "TLS with Docker at" in refused.stderr, refused.stderr
    assert "br0" not in host.vsctl("list-br").stdout.split()
    done = host.ovsnet(*init, "--docker-tls", str(certs["client"]))
    assert done.returncode == 0, done.stderr
    assert "br0" in host.vsctl("list-br").stdout.split()
    assert "docker0" in host.vsctl("list-ports", "br0").stdout.split()


def test_hosts_in_daemon_json_next_to_a_command_line_host_keeps_dockerd_from_starting(host):
    # Why no kind renders "hosts" into daemon.json: docker.service passes -H fd:// (here the
    # lab's -H unix://), and dockerd then refuses to start at all.
    daemon_json = json.dumps({"hosts": [LAB_URL]})
    try:
        with pytest.raises(LabError, match="exited"):
            restart_dockerd_as_rendered(host, daemon_json=daemon_json)
        log = dockerd.log_file(host.layout).read_text()
        assert "specified both as a flag and in the configuration file: hosts" in log
    finally:
        (host.layout.docker_dir / "daemon.json").write_text("{}\n")
        host.start_docker(refresh=False)  # leave the lab's dockerd as the lab runs it
