"""`init` asks the real Docker daemon whether it runs with this host's bip, fixed-cidr and MTU."""

import pytest

pytestmark = pytest.mark.lab


def test_docker_with_the_wrong_mtu_is_explained_and_nothing_changes(lab_factory):
    lab = lab_factory(hosts=1, dockerd_args=("--mtu=1500",))
    host = lab.hosts[0]
    before = host.vsctl("list-br").stdout
    done = host.ovsnet("init", "--prefix", host.prefix, "--datapath", "netdev")
    assert done.returncode == 3
    assert "mtu is 1500 (wants 1462)" in done.stderr
    assert f"--bip={host.prefix}.1/8 --fixed-cidr={host.prefix}.0/24 --mtu=1462" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert host.vsctl("list-br").stdout == before
    forced = host.ovsnet(
        "init", "--prefix", host.prefix, "--datapath", "netdev", "--no-docker-check"
    )
    assert forced.returncode == 0, forced.stderr


def test_a_named_docker_daemon_that_cannot_be_reached_is_not_ready(lab_factory):
    lab = lab_factory(hosts=1)
    host = lab.hosts[0]
    done = host.ovsnet(
        "init", "--prefix", host.prefix, "--datapath", "netdev",
        "--docker-host", "unix:///nonexistent/docker.sock",
    )  # fmt: skip
    assert done.returncode == 3, done.stderr
    assert "nonexistent/docker.sock" in done.stderr
    assert "br0" not in host.vsctl("list-br").stdout
