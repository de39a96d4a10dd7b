"""Builds (once, cached) and runs the companion image on lab hosts, as the rendered unit would.

The image is built offline by container/build.sh on a lab host's dockerd and saved under the
cache directory, keyed by the hash of everything that goes into it; later runs only `docker
load` it. A file lock keeps concurrent test runs from building it twice.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from ovsnet.lab import dockerd, ovs
from ovsnet.lab.proc import stop_pids
from ovsnet.render import DEFAULT_IMAGE
from ovsnet.render.context import HostConfig
from ovsnet.render.host_layout import COMPANION_NAME, OVS_DB_VOLUME

REPO = Path(__file__).resolve().parents[2]
CACHE_DIR = Path(os.environ.get("OVSNET_CACHE_DIR", "/var/cache/ovsnet"))
IMAGE = DEFAULT_IMAGE
BUILD_TIMEOUT = 1800  # a cold build (debootstrap) under a loaded machine

# What the lab adds to the rendered `docker run`, and nothing else: the rendered capabilities,
# Docker's default seccomp profile and device set are what the lab runs with, so the lab proves
# they are enough for OVS, strongSwan, the nftables guard and the supervisor. A real host
# needs none of this:
# - /dev/net/tun: this kernel has no openvswitch module, so the lab runs the userspace datapath,
#   whose internal ports are tap devices (the kernel datapath makes them over netlink).
LAB_ONLY = ["--device=/dev/net/tun"]


@dataclass(frozen=True)
class BuiltImage:
    tag: str
    archive: Path
    built_now: bool
    build_seconds: float | None


def image_key() -> str:
    """Hash of every file that goes into the image (sources, packaging, container files)."""
    digest = hashlib.sha256()
    files = [REPO / "pyproject.toml"]
    for top in ("container", "ovsnet"):
        files += [
            p
            for p in (REPO / top).rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".md"
        ]
    for path in sorted(files):
        digest.update(str(path.relative_to(REPO)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def ensure_image(host) -> BuiltImage:
    """The image archive for the current sources: built on `host`'s dockerd when not cached."""
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    archive = CACHE_DIR / f"ovsnet-image-{image_key()}.tar"
    with open(CACHE_DIR / "image.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if archive.exists():
            return BuiltImage(IMAGE, archive, False, None)
        started = time.monotonic()
        env = {
            **os.environ,
            "DOCKER": dockerd.docker_cli(),
            "DOCKER_HOST": host.docker_host,
            "OVSNET_CACHE_DIR": str(CACHE_DIR),
        }
        done = subprocess.run(
            ["bash", str(REPO / "container" / "build.sh"), "--tag", IMAGE, "--save", str(archive)],
            env=env,
            capture_output=True,
            text=True,
            timeout=BUILD_TIMEOUT,
        )
        assert done.returncode == 0, f"image build failed:\n{done.stdout}\n{done.stderr}"
        for stale in CACHE_DIR.glob("ovsnet-image-*.tar"):
            if stale != archive:
                stale.unlink(missing_ok=True)
        return BuiltImage(IMAGE, archive, True, time.monotonic() - started)


def load_image(host, image: BuiltImage) -> None:
    if host.docker("image", "inspect", image.tag, check=False).returncode == 0:
        return
    host.docker("load", "-q", "-i", str(image.archive), timeout=300)


def image_info(host, tag: str = IMAGE) -> dict:
    return json.loads(host.docker("image", "inspect", tag).stdout)[0]


def stop_lab_ovs(host) -> None:
    """The companion brings its own OVS: stop the lab host's (by PID). Its taps persist, so the
    underlay address stays on br-phy, which the companion's hook adds to its own database."""
    targets = {pid: str(host.rundir) + "/" for pid in ovs.pids(host.layout).values() if pid}
    assert not stop_pids(targets, timeout=10), f"lab OVS of {host.name} did not stop"


def write_underlay_hook(host) -> Path:
    """The lab's hardware, replayed after every OVS start: userspace tunnels route through an
    OVS bridge holding the underlay address (docs/testing.md, "The netns lab")."""
    hooks = host.rundir / "companion-hooks"
    hooks.mkdir(exist_ok=True)
    hook = hooks / "10-underlay"
    hook.write_text(
        "#!/bin/sh\nset -e\n"
        "ovs-vsctl --may-exist add-br br-phy -- set Bridge br-phy datapath_type=netdev"
        " -- --may-exist add-port br-phy eth0\n"
        f"ip addr replace {host.underlay_cidr} dev br-phy\n"
        "ip link set br-phy up\n"
    )
    hook.chmod(0o755)
    return hooks


def lab_run_argv(host, config: HostConfig, env: dict[str, str], hooks: Path) -> list[str]:
    """The rendered unit's `docker run`, adapted to a lab host:

    - the lab host's Docker engine;
    - `--rm` -> `--detach --restart=always`: systemd's Restart=always (PartOf=docker.service)
      brings the rendered companion back after a Docker restart; there is no systemd here;
    - LAB_ONLY added (see there);
    - /run/openvswitch -> a directory of the lab host (all lab hosts share one mount namespace);
    - the datapath and configuration as environment, the underlay hook as a mount.
    """
    argv = config.companion_run()
    assert argv[:3] == ["/usr/bin/docker", "run", "--rm"] and argv[-1] == config.image
    options = [*LAB_ONLY]
    for option in argv[3:-1]:
        if option == "/run/openvswitch:/run/openvswitch":
            options.append(f"{host.rundir / 'companion-run'}:/run/openvswitch")
        else:
            options.append(option)
    for key, value in env.items():
        options += ["--env", f"{key}={value}"]
    options += ["--volume", f"{hooks}:/etc/ovsnet/hooks.d:ro"]
    return ["run", "--detach", "--restart=always", *options, config.image]


def companion_state(host) -> dict:
    return json.loads(host.docker("inspect", COMPANION_NAME).stdout)[0]["State"]


def in_companion(host, *argv: str, check: bool = True, timeout: float = 60):
    return host.docker("exec", COMPANION_NAME, *argv, check=check, timeout=timeout)


def one_off_argv(*argv: str, entrypoint: str) -> list[str]:
    """Run one command in a throwaway container of the image."""
    return ["run", "--rm", "--entrypoint", entrypoint, IMAGE, *argv]


def volume_argv(*argv: str, entrypoint: str) -> list[str]:
    """A throwaway container on the OVS database volume (the companion itself stopped)."""
    return [
        "run", "--rm", "--entrypoint", entrypoint,
        "--volume", f"{OVS_DB_VOLUME}:/var/lib/openvswitch", IMAGE, *argv,
    ]  # fmt: skip
