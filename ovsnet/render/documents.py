"""Render each kind of first-boot configuration from a HostConfig."""

from __future__ import annotations

import json
from dataclasses import dataclass

from ovsnet import __version__
from ovsnet.batch import SEPARATOR
from ovsnet.errors import InvalidInput
from ovsnet.render.context import HostConfig
from ovsnet.render.host_layout import (
    AGENT_ENV_FILE,
    AGENT_UNIT,
    COMPANION_CAPABILITIES,
    COMPANION_NAME,
    COMPANION_UNIT,
    DOCKER,
    DOCKER_DROPIN_NAME,
    DOCKER_TLS_SOCKET_UNIT,
    GUARD_WATCH_UNIT,
    HEAL_UNIT,
    INIT_UNIT,
    MODPROBE,
    OVSNET,
    VSWITCHD_DROPIN_NAME,
)
from ovsnet.render.safe_text import command_line
from ovsnet.render.templating import render_template

IGNITION_VERSION = "3.3.0"  # Flatcar >= 3185 and Fedora CoreOS accept it; ignition 2.14 validates
DAEMON_JSON_PATH = "/etc/docker/daemon.json"


@dataclass(frozen=True)
class Unit:
    """A systemd unit (or drop-in) file: its name and its text."""

    name: str
    contents: str


@dataclass(frozen=True)
class Kind:
    template: str
    suffix: str  # file name suffix for `--all -o DIR`


KINDS: dict[str, Kind] = {
    "cloud-config": Kind("coreos-cloud-config.yaml.j2", ".coreos.yaml"),  # CoreOS user-data
    "ignition": Kind("ignition.json.j2", ".ign"),  # Ignition spec 3.3
    "cloud-init": Kind("cloud-init.yaml.j2", ".cloud-init.yaml"),  # Debian/Ubuntu user-data
    "daemon-json": Kind("daemon.json.j2", ".daemon.json"),  # /etc/docker/daemon.json
    "docker-dropin": Kind("docker-dropin.conf.j2", "." + DOCKER_DROPIN_NAME),
    # ovsnet-init.service for hosts with OVS from packages and ovsnet installed (no companion)
    "host-unit": Kind("ovsnet-host.service.j2", "." + INIT_UNIT),
    # the cluster agent (etcd) for the same hosts, instead of host-unit's fixed peers
    "agent-unit": Kind("ovsnet-agent.service.j2", "." + AGENT_UNIT),
    # ovs-vswitchd.service drop-in for the same hosts: the plaintext guard back before vswitchd
    "vswitchd-dropin": Kind("ovs-vswitchd-guard.conf.j2", "." + VSWITCHD_DROPIN_NAME),
    # the IPsec healer for the same hosts (the companion runs it itself)
    "heal-unit": Kind("ovsnet-ipsec-heal.service.j2", "." + HEAL_UNIT),
    # ... and the unit that puts the guard back after a firewall reload flushed it
    "guard-watch": Kind("ovsnet-guard-watch.service.j2", "." + GUARD_WATCH_UNIT),
}


def header(config: HostConfig) -> list[str]:
    """Comment lines saying what the file is; no timestamp, so re-rendering is stable."""
    who = f"host {config.name}" if config.name else "one host"
    peers = ", ".join(str(peer) for peer in config.peers) or "none"
    lines = [
        f"Rendered by ovsnet {__version__} for {who}; re-render rather than edit.",
        f"subnet {config.addressing.subnet} of {config.addressing.supernet}, MTU {config.mtu}, "
        f"IPsec {'on' if config.ipsec else 'off'}, peers: {peers}",
    ]
    if config.docker_tls:
        tls = config.docker_tls
        lines.append(f"Docker API: {tls.url} with mutual TLS, certificates in {tls.directory}/")
    if config.ipsec_secret is not None:
        lines.append(
            "THIS FILE HOLDS THE HOST'S IPSEC SECRET (embedded on request): anyone who can read "
            "this user-data can decrypt or join the overlay. Keep it secret."
        )
    return lines


def _exec_start(
    argv: list[str],
    breaks: tuple[str, ...] = ("--volume", "--cap-drop=ALL"),
    last_alone: bool = True,
) -> str:
    """A long command line for a unit, a new continuation line before each of `breaks` (and
    before the last token: the companion's image)."""
    command_line(argv)  # refuses unsafe tokens
    lines = [argv[0]]
    for index, token in enumerate(argv[1:], start=1):
        if token in breaks or (last_alone and index == len(argv) - 1):
            lines.append(token)
        else:
            lines[-1] += " " + token
    return " \\\n    ".join(lines)


def _boot_exec_start(argv: list[str]) -> str:
    """The init unit's one command: each ovsnet command of its batch on a line of its own."""
    return _exec_start(argv, breaks=(SEPARATOR,), last_alone=False)


def _unit_context(config: HostConfig) -> dict:
    return {
        "header": header(config),
        "docker": DOCKER,
        "modprobe": MODPROBE,
        "companion_name": COMPANION_NAME,
        "companion_unit": COMPANION_UNIT,
        "companion_run": _exec_start(config.companion_run()),
        "capabilities": COMPANION_CAPABILITIES,
        "host_modules": config.host_modules(),
        "image_tarball": config.image_tarball,
        "ovsnet_command": _boot_exec_start(config.companion_exec(config.boot_command())),
        "docker_flags": config.dropin_flags,
        "docker_tls": config.docker_tls,
    }


def docker_dropin(config: HostConfig) -> Unit:
    return Unit(
        DOCKER_DROPIN_NAME, render_template(KINDS["docker-dropin"].template, _unit_context(config))
    )


def host_unit(config: HostConfig) -> Unit:
    """The init unit for a host that runs OVS and ovsnet natively (no companion container)."""
    context = {
        "header": header(config),
        "ovsnet": OVSNET,
        "unit_name": INIT_UNIT,
        "ipsec": config.ipsec,
        "ovsnet_command": _boot_exec_start([OVSNET, *config.boot_command()]),
    }
    return Unit(INIT_UNIT, render_template(KINDS["host-unit"].template, context))


def agent_unit(config: HostConfig) -> Unit:
    """`ovsnet agent` as a service, for a host with OVS from packages and ovsnet installed."""
    context = {
        "header": header(config),
        "ovsnet": OVSNET,
        "unit_name": AGENT_UNIT,
        "env_file": AGENT_ENV_FILE,
        "ipsec": config.ipsec,
        "agent_command": command_line([OVSNET, *config.agent_args()]),
    }
    return Unit(AGENT_UNIT, render_template(KINDS["agent-unit"].template, context))


def heal_unit(config: HostConfig) -> Unit:
    """`ovsnet ipsec heal --watch` as a service, for hosts with OVS from packages."""
    context = {"header": header(config), "ovsnet": OVSNET, "unit_name": HEAL_UNIT}
    return Unit(HEAL_UNIT, render_template(KINDS["heal-unit"].template, context))


def vswitchd_dropin(config: HostConfig) -> Unit:
    """ovs-vswitchd.service's drop-in restoring the plaintext guard first (OVS from packages)."""
    context = {"header": header(config), "ovsnet": OVSNET, "dropin_name": VSWITCHD_DROPIN_NAME}
    return Unit(VSWITCHD_DROPIN_NAME, render_template(KINDS["vswitchd-dropin"].template, context))


def guard_watch_unit(config: HostConfig) -> Unit:
    """The unit running `ovsnet ipsec plaintext watch` (OVS from packages)."""
    context = {"header": header(config), "ovsnet": OVSNET, "unit_name": GUARD_WATCH_UNIT}
    return Unit(GUARD_WATCH_UNIT, render_template(KINDS["guard-watch"].template, context))


def units(config: HostConfig) -> list[Unit]:
    """The ovsnet units every kind of user-data carries, in start order."""
    context = _unit_context(config)
    return [
        Unit(COMPANION_UNIT, render_template("ovsnet.service.j2", context)),
        Unit(INIT_UNIT, render_template("ovsnet-init.service.j2", context)),
    ]


def docker_tls_socket(config: HostConfig) -> Unit | None:
    """The socket unit that gives dockerd its TLS listener where daemon.json configures Docker.

    Only the kinds that write daemon.json (ignition, cloud-init) carry it; the drop-in kinds put
    --host=tcp://... in $DOCKER_OPTS instead. The template says why.
    """
    if config.docker_tls is None:
        return None
    text = render_template("docker-tls.socket.j2", _unit_context(config))
    return Unit(DOCKER_TLS_SOCKET_UNIT, text)


def daemon_json(config: HostConfig) -> str:
    text = render_template(
        KINDS["daemon-json"].template, {"docker_options": config.daemon_json_options}
    )
    return _normalise_json(text)


# The kinds that can carry files with their own mode (the opt-in to embed Docker's key).
EMBEDDING_KINDS = ("ignition", "cloud-init")
# ... and an IPsec secret: CoreOS cloud-config's write_files takes a mode too.
IPSEC_EMBEDDING_KINDS = ("ignition", "cloud-init", "cloud-config")


def holds_secret(config: HostConfig) -> bool:
    return bool(config.docker_tls and config.docker_tls.embedded) or bool(config.ipsec_secret)


def render(kind: str, config: HostConfig) -> str:
    """The text of one kind of configuration for one host."""
    if config.docker_tls and config.docker_tls.embedded and kind not in EMBEDDING_KINDS:
        raise InvalidInput(
            f"{kind} cannot carry Docker's certificates",
            f"embed them in {' or '.join(EMBEDDING_KINDS)}, or copy them to the host yourself",
        )
    if config.ipsec_secret is not None and kind not in IPSEC_EMBEDDING_KINDS:
        raise InvalidInput(
            f"{kind} cannot carry the IPsec secret",
            f"embed it in {', '.join(IPSEC_EMBEDDING_KINDS)}, or provision it out of band",
        )
    if kind == "docker-dropin":
        return docker_dropin(config).contents
    if kind == "daemon-json":
        return daemon_json(config)
    if kind == "host-unit":
        return host_unit(config).contents
    if kind == "agent-unit":
        return agent_unit(config).contents
    if kind == "vswitchd-dropin":
        return vswitchd_dropin(config).contents
    if kind == "heal-unit":
        return heal_unit(config).contents
    if kind == "guard-watch":
        return guard_watch_unit(config).contents
    context = {
        "header": header(config),
        "units": units(config),
        "docker_dropin": docker_dropin(config),
        "daemon_json": {"path": DAEMON_JSON_PATH, "mode": 0o644, "contents": daemon_json(config)},
        "docker_tls": config.docker_tls,
        "docker_tls_socket": docker_tls_socket(config),
        "docker_tls_files": config.docker_tls.embedded_files() if config.docker_tls else [],
        "ipsec_files": config.ipsec_secret.embedded_files() if config.ipsec_secret else [],
        "ignition_version": IGNITION_VERSION,
    }
    text = render_template(KINDS[kind].template, context)
    if kind == "ignition":
        return _normalise_json(text)
    import yaml

    yaml.safe_load(text)  # a template bug must not reach a host's first boot
    return text


def _normalise_json(text: str) -> str:
    return json.dumps(json.loads(text), indent=2, ensure_ascii=False) + "\n"
