"""Docker remote API over mutual TLS with ovsnet's certificates, against a real dockerd.

dockerd listens with --tlsverify on tcp://127.0.0.1:PORT (loopback only, random port) with the
server certificate of `ovsnet pki issue-docker`; the ovsnet Docker facade talks to it with the
client certificate. Plain HTTP, TLS without a client certificate and client certificates of
another CA must get nothing out of it.
"""

from __future__ import annotations

import http.client
import shutil
import socket
import ssl
import time
from pathlib import Path

import pytest

from ovsnet import docker as ovsnet_docker
from ovsnet.errors import NotReady
from ovsnet.pki import cas as pki_cas
from ovsnet.pki import issue as pki_issue
from tests.lab.dockerd_harness import running_dockerd, throwaway_netns

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("pki")
    ours, theirs = base / "ours", base / "theirs"
    pki_cas.ensure_cas(ours)
    pki_cas.ensure_cas(theirs)
    server, client = pki_issue.ensure_docker_certs(ours, "dockerhost", ["127.0.0.1"], ["localhost"])
    _, foreign_client = pki_issue.ensure_docker_certs(theirs, "dockerhost", ["127.0.0.1"])
    # A client holding a certificate of another CA, but trusting the right server CA.
    impostor = base / "impostor"
    impostor.mkdir()
    shutil.copy(client.cert_path.parent / "ca.pem", impostor / "ca.pem")
    shutil.copy(foreign_client.cert_path, impostor / "cert.pem")
    shutil.copy(foreign_client.key_path, impostor / "key.pem")
    # Our client certificate, but trusting another CA for the server.
    distrustful = base / "distrustful"
    distrustful.mkdir()
    shutil.copy(foreign_client.cert_path.parent / "ca.pem", distrustful / "ca.pem")
    shutil.copy(client.cert_path, distrustful / "cert.pem")
    shutil.copy(client.key_path, distrustful / "key.pem")
    found = {
        "server": server.cert_path.parent,
        "client": client.cert_path.parent,
        "impostor": impostor,
        "distrustful": distrustful,
    }
    # Certificates of our own PKI for other purposes, offered as Docker API clients (each
    # folder trusts the right server CA, so only the client certificate is wrong).
    ike = pki_issue.ensure_host_cert(ours, "dockerhost", ["127.0.0.1"])
    etcd = pki_issue.ensure_leaf(ours, pki_issue.leaf_request(ours, "etcd-client", "dockerhost"))
    for name, issued in (("ike", ike), ("etcd-client", etcd), ("docker-server", server)):
        folder = base / f"as-{name}"
        folder.mkdir()
        shutil.copy(client.cert_path.parent / "ca.pem", folder / "ca.pem")
        shutil.copy(issued.cert_path, folder / "cert.pem")
        shutil.copy(issued.key_path, folder / "key.pem")
        found[f"as-{name}"] = folder
    return found


@pytest.fixture(scope="module")
def dockerd(certs):
    with running_dockerd(tls_server_dir=certs["server"]) as d:
        yield d


def _https_get_version(port: int, context: ssl.SSLContext) -> tuple[int, bytes]:
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=10)
    try:
        conn.request("GET", "/version")
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_docker_api_answers_the_ovsnet_client_certificate_over_tls(dockerd, certs):
    with ovsnet_docker.connect(dockerd.tcp_url, certs["client"]) as client:
        info = client.info()
    assert info.server_version.startswith("20.10")
    assert info.api_version


def test_docker_api_refuses_plain_http(dockerd):
    conn = http.client.HTTPConnection("127.0.0.1", dockerd.tcp_port, timeout=10)
    try:
        conn.request("GET", "/version")
        response = conn.getresponse()
        status, body = response.status, response.read()
    finally:
        conn.close()
    assert status == 400
    assert b"ApiVersion" not in body
    with (
        pytest.raises(NotReady, match="not reachable"),
        ovsnet_docker.connect(dockerd.tcp_url) as client,
    ):
        client.info()


def test_docker_api_refuses_tls_without_a_client_certificate(dockerd, certs):
    context = ssl.create_default_context(cafile=str(certs["client"] / "ca.pem"))
    context.check_hostname = False  # the server is verified by CA; the point is the client
    with pytest.raises((ssl.SSLError, ConnectionError, http.client.HTTPException, socket.error)):
        _https_get_version(dockerd.tcp_port, context)
    assert "client didn't provide a certificate" in dockerd.log()


UNKNOWN_CA = "x509: certificate signed by unknown authority"


def _refusal_logged(dockerd, before: int) -> None:
    """dockerd logs a refused handshake after closing the connection: wait for its line (a
    look right after the client's error failed once in a CI run)."""
    deadline = time.monotonic() + 5
    while dockerd.log().count(UNKNOWN_CA) == before:
        assert time.monotonic() < deadline, dockerd.log()[-2000:]
        time.sleep(0.1)


def test_docker_api_refuses_a_client_certificate_from_another_ca(dockerd, certs):
    before = dockerd.log().count(UNKNOWN_CA)
    with (
        pytest.raises(NotReady, match="TLS with Docker") as raised,
        ovsnet_docker.connect(dockerd.tcp_url, certs["impostor"]) as client,
    ):
        client.info()
    assert "127.0.0.1" in raised.value.one_line()
    _refusal_logged(dockerd, before)


@pytest.mark.parametrize("purpose", ["ike", "etcd-client", "docker-server"])
def test_docker_api_refuses_our_certificates_of_other_purposes_as_clients(dockerd, certs, purpose):
    # dockerd trusts only the docker-client CA: an IPsec host key or an etcd client key of
    # the same PKI is no key to the Docker API.
    before = dockerd.log().count(UNKNOWN_CA)
    with (
        pytest.raises(NotReady, match="TLS with Docker"),
        ovsnet_docker.connect(dockerd.tcp_url, certs[f"as-{purpose}"]) as client,
    ):
        client.info()
    _refusal_logged(dockerd, before)


def test_client_refuses_a_daemon_whose_certificate_is_from_another_ca(dockerd, certs):
    with (
        pytest.raises(NotReady, match="TLS with Docker"),
        ovsnet_docker.connect(dockerd.tcp_url, certs["distrustful"]) as client,
    ):
        client.info()


def test_the_same_client_works_with_a_raw_tls_client_too(dockerd, certs):
    # Guards the refusal tests above: the raw client fails for the certificate, not the code.
    context = ssl.create_default_context(cafile=str(certs["client"] / "ca.pem"))
    context.check_hostname = False
    context.load_cert_chain(certs["client"] / "cert.pem", certs["client"] / "key.pem")
    status, body = _https_get_version(dockerd.tcp_port, context)
    assert status == 200 and b"ApiVersion" in body


def test_unreachable_daemon_is_not_ready_naming_the_host(tmp_path):
    with (
        pytest.raises(NotReady) as raised,
        ovsnet_docker.connect(f"unix://{tmp_path}/none.sock") as client,
    ):
        client.info()
    assert f"{tmp_path}/none.sock" in raised.value.one_line()


def test_bridge_settings_report_bip_fixed_cidr_and_mtu_of_a_real_daemon():
    with (
        throwaway_netns() as netns,
        running_dockerd(
            netns=netns,
            extra_args=("--bip=10.77.1.1/16", "--fixed-cidr=10.77.1.0/24", "--mtu=1400"),
        ) as daemon,
        ovsnet_docker.connect(daemon.socket_url) as client,
    ):
        settings = client.bridge_settings()
    assert settings.bridge == "docker0"
    assert settings.bip == "10.77.1.1/16"
    assert settings.subnet == "10.77.0.0/16"
    assert settings.ip_range == "10.77.1.0/24"
    assert settings.mtu == 1400
