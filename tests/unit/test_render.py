"""Pure rendering: what a host's first-boot configuration says, derived from addressing/MTU."""

from __future__ import annotations

import json
from ipaddress import IPv4Address
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

import ovsnet
from ovsnet.addressing import host_addressing
from ovsnet.cli.render_commands import KIND_NAMES
from ovsnet.errors import InvalidInput
from ovsnet.render import DEFAULT_IMAGE, KINDS, build_host_config, render, units
from ovsnet.render.documents import docker_dropin, guard_watch_unit, vswitchd_dropin
from ovsnet.render.safe_text import command_line
from ovsnet.tunnels import overlay_mtu

PEERS = ["198.51.100.12", "198.51.100.13"]
TEMPLATES = Path(ovsnet.__file__).parent / "templates"


def config(**overrides):
    args = {"prefix": "10.0.42", "peers": PEERS, "name": "core-1"} | overrides
    return build_host_config(**args)


def test_docker_options_come_from_addressing_and_overlay_mtu():
    host = config(underlay_mtu=9000)
    expected = host_addressing(prefix="10.0.42").docker_options(overlay_mtu(9000, "gre"))
    assert (
        host.docker_options
        == expected
        == {
            "bip": "10.0.42.1/8",
            "fixed-cidr": "10.0.42.0/24",
            "mtu": 8962,
        }
    )


def test_ipsec_leaves_room_in_the_mtu_and_asks_init_and_peers_for_it():
    host = config(ipsec=True)
    assert host.mtu == overlay_mtu(1500, "gre", ipsec=True) == 1400
    init, peers = host.ovsnet_commands()
    assert "--ipsec" in init and peers == ["peer", "add", *PEERS, "--ipsec"]


def test_init_command_is_explicit_about_every_input():
    init, peers = config(supernet="10.0.0.0/12", underlay_mtu=1450).ovsnet_commands()
    assert init == [
        "init", "--prefix", "10.0.42", "--supernet", "10.0.0.0/12", "--underlay-mtu", "1450",
    ]  # fmt: skip
    assert peers == ["peer", "add", *PEERS]


def test_a_subnet_that_is_not_a_slash_24_is_passed_as_subnet():
    init = config(prefix=None, subnet="10.0.42.0/25").init_args()
    assert init[1:3] == ["--subnet", "10.0.42.0/25"]


def test_no_peers_means_no_peer_add():
    assert config(peers=[]).ovsnet_commands() == [config(peers=[]).init_args()]


def test_companion_runs_on_the_host_network_with_its_mounts():
    run = config().companion_run()
    assert run[:6] == ["/usr/bin/docker", "run", "--rm", "--name", "ovsnet", "--net=host"]
    assert run[-1] == DEFAULT_IMAGE
    mounts = [run[i + 1] for i, token in enumerate(run) if token == "--volume"]
    assert mounts == [
        "/lib/modules:/lib/modules:ro",
        "ovsnet-openvswitch:/var/lib/openvswitch",
        "/run/openvswitch:/run/openvswitch",
    ]
    ipsec_run = config(ipsec=True).companion_run()
    assert "/etc/ovsnet:/etc/ovsnet:ro" in ipsec_run


# The companion's whole grant, as docs/security.md ("The companion container") documents it.
DOCUMENTED_CAPABILITIES = {"NET_ADMIN", "NET_RAW", "NET_BIND_SERVICE"}
# Options that would widen the grant beyond those capabilities: privileged mode, host devices,
# relaxed confinement, host namespaces other than the network.
WIDENING = ("--privileged", "--device", "--security-opt", "--pid", "--ipc", "--userns", "--uts",
            "--cgroupns")  # fmt: skip


@pytest.mark.parametrize("ipsec", [False, True])
def test_companion_gets_only_the_documented_capabilities_never_privileged(ipsec):
    run = config(ipsec=ipsec).companion_run()
    options = run[3:-1]
    assert not [o for o in options if o.startswith(WIDENING)], options
    drops = [o.split("=", 1)[1] for o in options if o.startswith("--cap-drop")]
    adds = [o.split("=", 1)[1] for o in options if o.startswith("--cap-add")]
    assert drops == ["ALL"]  # Docker's default set does not apply: only what is added
    assert set(adds) == DOCUMENTED_CAPABILITIES and len(adds) == len(set(adds)), adds
    # The rendered unit says why each one is granted, and carries exactly these options.
    unit = next(u for u in units(config(ipsec=ipsec)) if u.name == "ovsnet.service").contents
    for capability in DOCUMENTED_CAPABILITIES:
        assert f"#   {capability}: " in unit
    settings = "\n".join(line for line in unit.splitlines() if not line.startswith("#"))
    assert settings.count("--cap-add=") == len(adds) and "--privileged" not in settings


def test_companion_unit_loads_the_data_plane_modules_on_the_host():
    def modprobe(unit):
        lines = [line for line in unit.splitlines() if "/usr/sbin/modprobe" in line]
        assert len(lines) == 1, lines
        assert lines[0].startswith("ExecStartPre=-/usr/sbin/modprobe -a ")
        return lines[0].split(" -a ", 1)[1].split()

    def companion(**overrides):
        return next(u for u in units(config(**overrides)) if u.name == "ovsnet.service").contents

    assert modprobe(companion()) == ["openvswitch", "ip_gre"]
    assert modprobe(companion(ipsec=True)) == ["openvswitch", "ip_gre", "esp4", "xfrm_user"]


def test_default_image_is_this_version():
    assert f"ghcr.io/ovsnet/ovsnet:{ovsnet.__version__}" == DEFAULT_IMAGE
    assert config(image="registry.example/ovsnet:dev").companion_run()[-1] == (
        "registry.example/ovsnet:dev"
    )


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"prefix": "10.0.300"}, "prefix '10.0.300' is malformed"),
        ({"prefix": "192.168.1"}, "is not inside the supernet"),
        ({"peers": ["198.51.100.12", "198.51.100.12"]}, "given more than once"),
        ({"peers": ["10.1.2.3"]}, "inside the overlay supernet"),
        ({"peers": ["not-an-ip"]}, "is not an IP address"),
        ({"underlay_mtu": 600}, "leaves only"),
        ({"image": "bad image"}, "is not a container image reference"),
        ({"image": "--privileged"}, "is not a container image reference"),
        ({"image": "a$(reboot)"}, "is not a container image reference"),
    ],
)
def test_bad_input_is_refused_with_a_clear_message(overrides, message):
    with pytest.raises(InvalidInput, match=message.replace("(", r"\(").replace(")", r"\)")):
        config(**overrides)


def test_own_address_cannot_be_a_peer():
    with pytest.raises(InvalidInput, match="own address"):
        config(own_ip=IPv4Address("198.51.100.12"))


@pytest.mark.parametrize("token", ["a b", "50%", "$HOME", "a;b", "`x`", "'q'", ""])
def test_command_lines_refuse_what_systemd_or_a_shell_would_interpret(token):
    with pytest.raises(InvalidInput):
        command_line(["/usr/bin/docker", token])


def test_cli_kind_names_match_the_renderers():
    assert set(KIND_NAMES) == set(KINDS)


def test_every_template_is_a_file_in_the_package():
    names = {kind.template for kind in KINDS.values()} | {
        "ovsnet.service.j2",
        "ovsnet-init.service.j2",
        "docker-tls.socket.j2",
    }
    assert names == {path.name for path in TEMPLATES.glob("*.j2")}


def test_units_run_the_init_commands_inside_the_companion():
    companion, init = units(config())
    assert companion.name == "ovsnet.service" and init.name == "ovsnet-init.service"
    joined = init.contents.replace(" \\\n    ", " ")
    exec_starts = [line for line in joined.splitlines() if line.startswith("ExecStart=")]
    # One process for both (`ovsnet batch`): each ovsnet start costs seconds on a small host.
    assert exec_starts == [
        "ExecStart=/usr/bin/docker exec ovsnet ovsnet batch init --prefix 10.0.42 "
        "--supernet 10.0.0.0/8 --underlay-mtu 1500 --then peer add 198.51.100.12 198.51.100.13",
    ]
    assert "\n    --then peer add" in init.contents  # each command on a line of its own
    assert "PartOf=docker.service" in companion.contents
    assert "PartOf=ovsnet.service" in init.contents


def test_dropin_sets_the_docker_flags():
    text = docker_dropin(config()).contents
    assert (
        'Environment="DOCKER_OPTS=--bip=10.0.42.1/8 --fixed-cidr=10.0.42.0/24 --mtu=1462"'
        in text.splitlines()
    )


def test_vswitchd_dropin_restores_the_plaintext_guard_before_vswitchd_starts():
    dropin = vswitchd_dropin(config(ipsec=True))
    assert dropin.name == "50-ovsnet-guard.conf"
    assert "/etc/systemd/system/ovs-vswitchd.service.d/50-ovsnet-guard.conf" in dropin.contents
    lines = [line for line in dropin.contents.splitlines() if not line.startswith("#")]
    # ExecStartPre, not ExecStart: a failure keeps vswitchd (and its tunnels) down.
    assert lines == ["[Service]", "ExecStartPre=/usr/local/bin/ovsnet ipsec plaintext restore"]


def test_daemon_json_is_the_docker_options():
    assert json.loads(render("daemon-json", config())) == config().docker_options


def test_coreos_cloud_config_carries_the_dropin_and_units():
    text = render("cloud-config", config())
    assert text.startswith("#cloud-config\n")
    data = yaml.safe_load(text)
    docker, companion, init = data["coreos"]["units"]
    assert docker == {
        "name": "docker.service",
        "drop-ins": [
            {"name": "50-ovsnet-bridge.conf", "content": docker_dropin(config()).contents}
        ],
    }
    assert [companion["content"], init["content"]] == [u.contents for u in units(config())]
    assert companion["command"] == init["command"] == "start"


def test_ignition_carries_daemon_json_and_units():
    data = json.loads(render("ignition", config()))
    assert data["ignition"]["version"] == "3.3.0"
    (daemon,) = data["storage"]["files"]
    assert daemon["path"] == "/etc/docker/daemon.json" and daemon["mode"] == 0o644
    from urllib.parse import unquote

    assert json.loads(unquote(daemon["contents"]["source"].removeprefix("data:,"))) == (
        config().docker_options
    )
    named = {unit["name"]: unit for unit in data["systemd"]["units"]}
    assert named["docker.service"] == {"name": "docker.service", "enabled": True}
    for unit in units(config()):
        assert named[unit.name]["contents"] == unit.contents


def test_cloud_init_writes_daemon_json_and_units_and_starts_them():
    data = yaml.safe_load(render("cloud-init", config()))
    files = {entry["path"]: entry["content"] for entry in data["write_files"]}
    assert json.loads(files["/etc/docker/daemon.json"]) == config().docker_options
    for unit in units(config()):
        assert files[f"/etc/systemd/system/{unit.name}"] == unit.contents
    # Docker from apt only when the host has none: a preinstalled host boots offline, and
    # cloud-init's `packages:` (which always runs `apt-get update` first) is not used.
    assert "packages" not in data and "package_update" not in data
    install = data["runcmd"][0]
    assert install[:2] == ["sh", "-c"]
    assert install[2].startswith("command -v dockerd >/dev/null || {")
    assert "apt-get install -y -q docker.io" in install[2]
    # Not waiting for the units: ovsnet-init's first try may fail while the companion starts
    # (systemd retries it), which must not count as a failed first boot for cloud-init.
    assert data["runcmd"][-1] == ["systemctl", "enable", "--now", "--no-block", "ovsnet.service",
                                  "ovsnet-init.service"]  # fmt: skip


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_rendering_is_deterministic_and_names_no_secret(kind):
    first = render(kind, config(ipsec=True))
    assert first == render(kind, config(ipsec=True))
    assert "psk" not in first.lower() and "private" not in first.lower()


prefixes = st.tuples(st.integers(0, 255), st.integers(1, 254)).map(lambda t: f"10.{t[0]}.{t[1]}")
peer_sets = st.lists(st.integers(1, 254).map(lambda n: f"198.51.100.{n}"), unique=True, max_size=6)


@settings(deadline=None)  # renders every kind; a loaded CI machine must not make it flaky
@given(
    prefix=prefixes,
    peers=peer_sets,
    mtu=st.integers(1000, 9000),
    ipsec=st.booleans(),
    docker_tls=st.booleans(),
)
def test_every_kind_states_the_same_docker_options(prefix, peers, mtu, ipsec, docker_tls):
    host = build_host_config(
        prefix=prefix, peers=peers, underlay_mtu=mtu, ipsec=ipsec, docker_tls=docker_tls
    )
    flags = " ".join(host.dropin_flags)
    assert flags.startswith(" ".join(host.docker_flags))
    assert json.loads(render("daemon-json", host)) == host.daemon_json_options
    assert host.daemon_json_options.items() >= host.docker_options.items()
    assert f'"DOCKER_OPTS={flags}"' in render("docker-dropin", host)
    assert f'"DOCKER_OPTS={flags}"' in render("cloud-config", host)
    cloud_init = yaml.safe_load(render("cloud-init", host))
    assert json.loads(cloud_init["write_files"][0]["content"]) == host.daemon_json_options
    init = units(host)[1].contents
    assert f"--prefix {prefix} " in init and all(peer in init for peer in peers)


def test_guard_watch_unit_keeps_the_watcher_running():
    unit = guard_watch_unit(config(ipsec=True))
    assert unit.name == "ovsnet-guard-watch.service"
    assert "ExecStart=/usr/local/bin/ovsnet ipsec plaintext watch\n" in unit.contents
    assert "Restart=always" in unit.contents  # OVSDB not up yet at boot: come back
