"""A host without a registry: the rendered companion unit's `docker load --input TARBALL` and
`docker run --pull=never`, run against a real dockerd of a lab host."""

from __future__ import annotations

import gzip
import re
import shutil

import pytest

from ovsnet.lab import image
from ovsnet.render import build_host_config
from ovsnet.render.documents import units
from ovsnet.render.host_layout import DOCKER

pytestmark = pytest.mark.lab

LOCAL = "ovsnet-local:tarball-test"


def exec_lines(unit: str, key: str) -> list[list[str]]:
    joined = unit.replace("\\\n", " ")
    return [line.split("=", 1)[1].split() for line in joined.splitlines()
            if line.startswith(f"{key}=")]  # fmt: skip


def test_rendered_unit_loads_the_tarball_and_runs_without_pulling(lab_factory, tmp_path):
    host = lab_factory(hosts=1).hosts[0]
    # An image that exists only as a `docker save | gzip` file, as `make image` writes it.
    host.docker("tag", image.IMAGE, LOCAL)
    saved = tmp_path / "image.tar"
    host.docker("save", "-o", str(saved), LOCAL)
    tarball = tmp_path / "ovsnet-image.tar.gz"
    with open(saved, "rb") as raw, gzip.open(tarball, "wb") as packed:
        shutil.copyfileobj(raw, packed)
    host.docker("rmi", LOCAL)
    assert host.docker("image", "inspect", LOCAL, check=False).returncode != 0

    config = build_host_config(prefix=host.prefix, image=LOCAL, image_tarball=str(tarball))
    companion = units(config)[0].contents
    [load] = [argv for argv in exec_lines(companion, "ExecStartPre") if "load" in argv]
    [run] = exec_lines(companion, "ExecStart")
    assert load[0] == DOCKER and run[0] == DOCKER
    assert "--pull=never" in run and run[-1] == LOCAL

    loaded = host.docker(*load[1:])
    assert loaded.returncode == 0
    assert host.docker("image", "inspect", LOCAL, check=False).returncode == 0
    # The unit's own options (capabilities, host paths) need a real host; the pull policy and the
    # image are what matter here.
    ran = host.docker("run", "--rm", "--pull=never", LOCAL, "echo", "from-tarball")
    assert ran.stdout.strip() == "from-tarball"
    host.docker("rmi", LOCAL)
    refused = host.docker("run", "--rm", "--pull=never", LOCAL, "true", check=False)
    assert refused.returncode != 0
    assert re.search(r"No such image|not found", refused.stderr, re.I), refused.stderr
