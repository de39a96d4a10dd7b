"""A real Docker container on a lab host, and counting the replies of its pings.

Place: docs/architecture.md, "Packages and what they own": the netns lab (`ovsnet.lab`),
the containers its hosts run (`host.LabHost.start_container`).
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Sequence
from typing import Protocol

from ovsnet.lab import dockerd
from ovsnet.lab.layout import HostLayout
from ovsnet.lab.proc import LabError, run

PING_INTERVAL = "0.2"


class ContainerHost(Protocol):
    """What a container needs of the lab host it runs on (`ovsnet.lab.host.LabHost`)."""

    @property
    def name(self) -> str: ...

    @property
    def layout(self) -> HostLayout: ...

    def docker(
        self, *args: str, check: bool = True, timeout: float = 60, input: str | None = None
    ) -> subprocess.CompletedProcess: ...

    def forget(self, container: LabContainer) -> None: ...


class LabContainer:
    """A real Docker container on a lab host (busybox image, restart policy `always`)."""

    def __init__(self, host: ContainerHost, name: str):
        self.host = host
        self.name = name
        self.id = ""
        self.pid = 0
        self.ip = ""
        self.mac = ""

    def __repr__(self) -> str:
        return f"<LabContainer {self.host.name}/{self.name} {self.ip}>"

    def inspect(self) -> dict:
        return dockerd.containers_json(self.host.layout, self.name)[0]

    def refresh(self, timeout: float = 30.0) -> LabContainer:
        """Wait until running, re-read PID and address, switch tx checksum offload off again.

        Needed after a dockerd restart: the container comes back (restart policy) with a new
        veth, whose offload is on again.
        """
        deadline = time.monotonic() + timeout
        while True:
            info = self.inspect()
            if info["State"].get("Running") and info["State"].get("Pid") and _ip_of(info):
                break
            if time.monotonic() > deadline:
                raise LabError(
                    f"container {self.name} on {self.host.name} is not running",
                    f"state: {info['State'].get('Status')}",
                )
            time.sleep(0.1)
        self._apply(info)
        self.disable_tx_offload()
        return self

    def _apply(self, info: dict) -> LabContainer:
        self.id, self.pid = info["Id"], info["State"].get("Pid", 0)
        self.ip, self.mac = _ip_of(info), _mac_of(info)
        return self

    def _in_netns(self, argv: Sequence[str], check: bool = True) -> subprocess.CompletedProcess:
        return run(["nsenter", "-t", str(self.pid), "-n", *argv], check=check, timeout=30)

    def disable_tx_offload(self) -> None:
        """Userspace datapath requirement: without it, TCP between containers stalls."""
        self._in_netns(["ethtool", "-K", "eth0", "tx", "off"])

    def tx_offload(self) -> bool:
        """Whether transmit checksum offload is on (it should be off)."""
        out = self._in_netns(["ethtool", "-k", "eth0"]).stdout
        return "tx-checksumming: on" in out

    def exec(
        self,
        argv: Sequence[str],
        check: bool = False,
        timeout: float = 60,
        input: str | None = None,
    ) -> subprocess.CompletedProcess:
        flags = ["-i"] if input is not None else []
        return self.host.docker(
            "exec", *flags, self.name, *argv, check=check, timeout=timeout, input=input
        )

    def ping(self, ip: str, count: int = 3, timeout: float = 5.0) -> bool:
        """True when every one of `count` echo requests is answered within `timeout` s.

        ping itself exits 0 when a single reply arrives: a path that loses packets must not pass.
        """
        argv = [
            "ping",
            "-c",
            str(count),
            "-i",
            PING_INTERVAL,
            "-W",
            str(int(max(1, timeout))),
            str(ip),
        ]
        done = self.exec(argv, timeout=timeout + count + 10)
        return done.returncode == 0 and answered(done.stdout) == count

    def remove(self) -> None:
        self.host.docker("rm", "-f", self.name, check=False)
        self.host.forget(self)


_PING_SUMMARY = re.compile(r"(\d+) packets transmitted, (\d+) (?:packets )?received")


def answered(ping_output: str) -> int:
    """Echo replies counted in ping's summary line (busybox and iputils word it alike)."""
    match = _PING_SUMMARY.search(ping_output)
    return int(match.group(2)) if match else 0


def _ip_of(info: dict) -> str:
    settings = info.get("NetworkSettings") or {}
    if settings.get("IPAddress"):
        return settings["IPAddress"]
    for network in (settings.get("Networks") or {}).values():
        if network.get("IPAddress"):
            return network["IPAddress"]
    return ""


def _mac_of(info: dict) -> str:
    settings = info.get("NetworkSettings") or {}
    if settings.get("MacAddress"):
        return settings["MacAddress"]
    return next((n.get("MacAddress", "") for n in (settings.get("Networks") or {}).values()), "")
