"""Every rendered kind passes the real validators, and each validator really rejects bad input.

ignition-validate (Ignition spec 3.3), `cloud-init schema`, `systemd-analyze verify` for every
unit and drop-in, dockerd itself reading daemon.json, and coreos-cloudinit's structure for the
CoreOS cloud-config. The "rejects" tests prove none of these checks passes whatever it is given.
"""

from __future__ import annotations

import json

import pytest

from ovsnet.render import KINDS, build_host_config, render
from ovsnet.render.validate import (
    check,
    check_cloud_init,
    check_coreos_cloud_config,
    check_daemon_json,
    check_docker_dropin,
    check_ignition,
    check_units,
    check_vswitchd_dropin,
)

HOSTS = {
    "plain": {"prefix": "10.0.42", "peers": ["198.51.100.12", "198.51.100.13"]},
    "ipsec-jumbo": {
        "subnet": "10.64.7.0/24",
        "supernet": "10.64.0.0/16",
        "underlay_mtu": 9000,
        "ipsec": True,
        "peers": ["203.0.113.5"],
        "image": "registry.example:5000/ovsnet:dev",
    },
    "alone": {"prefix": "10.0.1", "peers": []},
}


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("host", sorted(HOSTS))
def test_rendered_file_passes_its_validator(kind, host):
    text = render(kind, build_host_config(name=host, **HOSTS[host]))
    assert check(kind, text) == []


@pytest.fixture(scope="module")
def rendered():
    host = build_host_config(name="core-1", **HOSTS["plain"])
    return {kind: render(kind, host) for kind in KINDS}


def test_systemd_check_rejects_an_unknown_key_in_a_dropin(rendered):
    problems = check_docker_dropin(rendered["docker-dropin"] + "Bogus=1\n")
    assert any("Unknown key 'Bogus'" in problem for problem in problems)


def test_vswitchd_dropin_is_checked_against_the_installed_ovs_vswitchd_service(rendered):
    problems = check_vswitchd_dropin(rendered["vswitchd-dropin"].replace("ExecStartPre", "ExecPre"))
    assert any("Unknown key 'ExecPre'" in problem for problem in problems)


def test_systemd_check_rejects_a_missing_binary():
    unit = "[Service]\nExecStart=/usr/bin/ovsnet-no-such-binary\n"
    assert any("is not executable" in p for p in check_units({"x-ovsnet.service": unit}))


def test_systemd_check_rejects_a_bad_value_in_a_unit():
    unit = "[Service]\nType=oneshot\nRemainAfterExit=maybe\nExecStart=/bin/true\n"
    assert any("Failed to parse boolean" in p for p in check_units({"x-ovsnet.service": unit}))


def test_daemon_json_check_rejects_an_option_docker_does_not_know(rendered):
    text = rendered["daemon-json"].replace('"mtu"', '"mtu-size"')
    assert any("don't match any configuration option" in p for p in check_daemon_json(text))


def test_daemon_json_check_rejects_a_wrongly_typed_option(rendered):
    text = rendered["daemon-json"].replace("1462", '"1462"')
    assert any("cannot unmarshal" in p for p in check_daemon_json(text))


def test_daemon_json_check_rejects_a_fixed_cidr_outside_bip(rendered):
    options = json.loads(rendered["daemon-json"]) | {"fixed-cidr": "192.168.0.0/24"}
    assert any("does not hold bip" in p for p in check_daemon_json(json.dumps(options)))


def test_ignition_check_rejects_an_unknown_field(rendered):
    text = rendered["ignition"].replace('"overwrite"', '"overwrites"')
    assert any("Unused key overwrites" in p for p in check_ignition(text))


def test_ignition_check_rejects_a_version_it_cannot_read(rendered):
    text = rendered["ignition"].replace('"3.3.0"', '"2.9.0"')
    assert check_ignition(text) != []


def test_ignition_check_reaches_the_units_inside(rendered):
    text = rendered["ignition"].replace("RemainAfterExit=yes", "RemainAfterExit=perhaps")
    assert any("Failed to parse boolean" in p for p in check_ignition(text))


def test_ignition_check_reaches_the_daemon_json_inside(rendered):
    text = rendered["ignition"].replace("%22mtu%22", "%22mtux%22")
    assert any("dockerd rejects" in p for p in check_ignition(text))


def test_cloud_init_check_rejects_a_bad_write_files_entry(rendered):
    text = rendered["cloud-init"].replace("permissions:", "perms:", 1)
    assert any("'perms' was unexpected" in p for p in check_cloud_init(text))


def test_cloud_init_check_reaches_the_units_inside(rendered):
    text = rendered["cloud-init"].replace("/usr/bin/docker exec", "/usr/bin/dockr exec")
    assert any("/usr/bin/dockr is not executable" in p for p in check_cloud_init(text))


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        ("command: start", "command: begin", "is not one of coreos-cloudinit's"),
        ("enable: true", "enable: yes please", "enable must be true or false"),
        ("- name: ovsnet.service", "- nam: ovsnet.service", "unknown key 'nam'"),
        ("- name: 50-ovsnet-bridge.conf", "- name: 50-ovsnet-bridge", "needs exactly a .conf"),
        ("#cloud-config\n", "#!/bin/sh\n", "must start with a '#cloud-config' line"),
        ("Type=oneshot", "Type=oneshotx", "Failed to parse service type"),
        ("[Install]", "[Instal]", "enable needs an [Install] section"),
    ],
)
def test_coreos_check_rejects_broken_structure_or_units(rendered, old, new, problem):
    assert old in rendered["cloud-config"]
    problems = check_coreos_cloud_config(rendered["cloud-config"].replace(old, new))
    assert any(problem in p for p in problems), problems
