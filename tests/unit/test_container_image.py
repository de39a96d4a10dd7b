"""What the companion image's Dockerfile promises (read as text: no image is built here)."""

from __future__ import annotations

import re
from pathlib import Path

DOCKERFILE = Path(__file__).resolve().parents[2] / "container" / "Dockerfile"


def _healthcheck() -> tuple[dict[str, int], str]:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    (line,) = [x for x in text.splitlines() if x.startswith("HEALTHCHECK ")]
    options, command = line.removeprefix("HEALTHCHECK ").split(" CMD ", 1)
    seconds = {name: int(value) for name, value in re.findall(r"--([a-z-]+)=(\d+)s", options)}
    return seconds, command.strip()


def test_a_health_probe_is_ended_before_docker_stops_waiting_for_it():
    """Docker does not kill a probe past --timeout; it starts the next one. On a slow host
    (an emulated VM) `ovsnet status --check` probes piled up five at once."""
    seconds, command = _healthcheck()
    bound = re.fullmatch(r"timeout -s KILL (\d+) ovsnet status --check \|\| exit 1", command)
    assert bound, command
    assert int(bound[1]) < seconds["timeout"] <= seconds["interval"]
