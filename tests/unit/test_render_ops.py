"""render --image-tarball (no registry) and render agent-unit."""

from __future__ import annotations

import pytest

from ovsnet.cli import main
from ovsnet.errors import InvalidInput
from ovsnet.render import build_host_config, render
from ovsnet.render.validate import check

TARBALL = "/var/lib/ovsnet/ovsnet-image-0.1.0.tar.gz"


def test_image_tarball_loads_the_image_and_never_pulls():
    config = build_host_config(prefix="10.0.5", image="ovsnet:local", image_tarball=TARBALL)
    text = render("cloud-init", config)
    assert f"ExecStartPre=/usr/bin/docker load --quiet --input {TARBALL}" in text
    assert "docker run --rm --pull=never --name ovsnet" in text
    assert text.index("docker load") < text.index("ExecStart=/usr/bin/docker run")
    # The tarball may be on a volume mounted late (nofail): the unit waits for it.
    assert f"RequiresMountsFor={TARBALL}" in text
    assert check("cloud-init", text) == []


def test_without_a_tarball_the_unit_pulls_as_before():
    text = render("cloud-init", build_host_config(prefix="10.0.5"))
    assert "--pull=never" not in text and "docker load" not in text
    assert "RequiresMountsFor" not in text
    assert "ghcr.io/ovsnet/ovsnet:" in text


@pytest.mark.parametrize("path", ["relative/image.tar.gz", "/", "/a/../b.tar", "/a b.tar", "/x$y"])
def test_image_tarball_must_be_a_plain_absolute_path(path):
    with pytest.raises(InvalidInput, match="not an absolute path"):
        build_host_config(prefix="10.0.5", image_tarball=path)


def test_image_tarball_from_the_cli(capsys):
    code = main(["render", "docker-dropin", "--prefix", "10.0.5", "--image-tarball", TARBALL])
    assert code == 0
    assert main(["render", "cloud-init", "--prefix", "10.0.5", "--image-tarball", "x.tar"]) == 2
    assert "not an absolute path" in capsys.readouterr().err


def test_agent_unit_runs_the_agent_with_this_hosts_settings():
    config = build_host_config(prefix="10.0.5", underlay_mtu=9000, ipsec=True, name="h5")
    text = render("agent-unit", config)
    assert ("ExecStart=/usr/local/bin/ovsnet agent --name h5 --prefix 10.0.5 "
            "--supernet 10.0.0.0/8 --underlay-mtu 9000 --ipsec\n") in text  # fmt: skip
    assert "EnvironmentFile=/etc/ovsnet/agent.env" in text
    assert "openvswitch-ipsec.service" in text
    assert check("agent-unit", text) == []


def test_agent_unit_without_a_24_claims_any_subnet():
    config = build_host_config(subnet="10.0.8.0/23", supernet="10.0.0.0/8")
    text = render("agent-unit", config)
    assert "agent --supernet 10.0.0.0/8" in text and "--prefix" not in text
    assert "openvswitch-ipsec" not in text


def test_agent_unit_check_finds_a_broken_unit():
    text = render("agent-unit", build_host_config(prefix="10.0.5"))
    problems = check("agent-unit", text.replace("Restart=always", "Restart=sometimes"))
    assert any("restart specifier" in p for p in problems), problems
