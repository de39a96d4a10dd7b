"""The Docker facade's pure parts: target validation and reading the bridge network."""

from __future__ import annotations

import pytest

from ovsnet import docker as ovsnet_docker
from ovsnet.errors import InvalidInput, NotReady


@pytest.fixture
def tls_dir(tmp_path):
    for name in ovsnet_docker.TLS_FILES:
        (tmp_path / name).write_text("x")
    return tmp_path


def test_default_target_is_the_local_socket(monkeypatch):
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    target = ovsnet_docker.resolve_target(None, None)
    assert target.url == "unix:///var/run/docker.sock" and target.tls_dir is None


def test_docker_host_from_the_environment(monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "unix:///run/other.sock")
    assert ovsnet_docker.resolve_target(None, None).url == "unix:///run/other.sock"


def test_remote_tcp_without_tls_is_refused():
    with pytest.raises(InvalidInput) as raised:
        ovsnet_docker.resolve_target("tcp://198.51.100.2:2376", None)
    assert "--docker-tls" in raised.value.one_line()


@pytest.mark.parametrize("url", ["tcp://127.0.0.1:2375", "tcp://localhost:2375", "tcp://[::1]:1"])
def test_loopback_tcp_without_tls_is_allowed(url):
    assert ovsnet_docker.resolve_target(url, None).tls_dir is None


def test_remote_tcp_with_a_complete_tls_dir_is_accepted(tls_dir):
    target = ovsnet_docker.resolve_target("tcp://198.51.100.2:2376", tls_dir)
    assert target.tls_dir == tls_dir and target.is_tcp


def test_tls_dir_missing_a_file_is_named(tls_dir):
    (tls_dir / "key.pem").unlink()
    with pytest.raises(InvalidInput, match="key.pem"):
        ovsnet_docker.resolve_target("tcp://198.51.100.2:2376", tls_dir)


def test_tls_dir_with_a_unix_socket_is_a_usage_error(tls_dir):
    with pytest.raises(InvalidInput, match="tcp://"):
        ovsnet_docker.resolve_target("unix:///var/run/docker.sock", tls_dir)


def test_unknown_scheme_is_a_usage_error():
    with pytest.raises(InvalidInput):
        ovsnet_docker.resolve_target("ftp://host", None)


def test_bridge_settings_from_a_docker_network_document():
    attrs = {
        "Name": "bridge",
        "IPAM": {
            "Config": [
                {"Subnet": "fd00::/64"},
                {"Subnet": "10.0.0.0/8", "Gateway": "10.0.42.1", "IPRange": "10.0.42.0/24"},
            ]
        },
        "Options": {
            "com.docker.network.bridge.name": "docker0",
            "com.docker.network.driver.mtu": "1400",
        },
    }
    settings = ovsnet_docker.bridge_settings_from_network(attrs)
    assert settings.bip == "10.0.42.1/8"
    assert (settings.bridge, settings.subnet, settings.ip_range, settings.mtu) == (
        "docker0",
        "10.0.0.0/8",
        "10.0.42.0/24",
        1400,
    )


def test_bridge_settings_of_a_sparse_document_are_unknown_not_wrong():
    settings = ovsnet_docker.bridge_settings_from_network({"IPAM": None, "Options": None})
    assert settings.bip is None and settings.mtu is None and settings.bridge is None


def test_connection_error_finds_the_os_reason_deep_in_the_chain():
    try:
        try:
            raise ConnectionRefusedError(111, "Connection refused")
        except OSError as inner:
            raise RuntimeError("Error while fetching server API version") from inner
    except RuntimeError as outer:
        error = ovsnet_docker.connection_error("tcp://198.51.100.2:2376", outer)
    assert isinstance(error, NotReady)
    assert error.one_line().startswith(
        "Docker at tcp://198.51.100.2:2376 is not reachable (Connection refused)"
    )
