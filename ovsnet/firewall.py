"""The one iptables rule ovsnet needs (docs/facts.md, "br_netfilter").

Docker sets net.bridge.bridge-nf-call-iptables=1, so frames that docker0 bridges toward its OVS
port traverse iptables, where Docker's FORWARD rules drop them. Rather than flip the sysctl for
the whole host, ovsnet adds the narrowest accept rule to Docker's DOCKER-USER chain (which
Docker keeps across restarts and never flushes). iptables has no netlink API that pyroute2
speaks, so this module runs the iptables command, with a fixed argument list and no secrets.

Place: docs/architecture.md, "Layers": facade layer (the iptables command).
"""

from __future__ import annotations

import shutil
import subprocess

from ovsnet.errors import NotReady, OperationFailed

CHAIN = "DOCKER-USER"
COMMENT = "ovsnet: docker bridge to OVS"
TIMEOUT = 30  # iptables itself waits at most 5 s for the xtables lock (-w 5)


def _rules(docker_bridge: str) -> list[list[str]]:
    match = ["-m", "physdev", "--physdev-is-bridged", "-m", "comment", "--comment", COMMENT]
    return [
        ["-i", docker_bridge, *match, "-j", "ACCEPT"],
        ["-o", docker_bridge, *match, "-j", "ACCEPT"],
    ]


def _iptables(*args: str) -> subprocess.CompletedProcess:
    argv = ["iptables", "-w", "5", *args]
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        raise OperationFailed(
            f"`iptables {' '.join(args)}` did not finish within {TIMEOUT} s"
        ) from None
    except FileNotFoundError:
        raise NotReady("iptables is gone", "install iptables") from None
    except PermissionError:
        raise NotReady("no permission to run iptables", "run as root") from None


def _available() -> bool:
    return shutil.which("iptables") is not None and _iptables("-n", "-L", CHAIN).returncode == 0


def _missing(docker_bridge: str) -> list[list[str]]:
    return [r for r in _rules(docker_bridge) if _iptables("-C", CHAIN, *r).returncode != 0]


def plan_accept(docker_bridge: str) -> list[str]:
    if not _available() or not _missing(docker_bridge):
        return []
    return [f"accept bridged traffic of {docker_bridge} in iptables {CHAIN}"]


def ensure_accept(docker_bridge: str) -> None:
    for rule in _missing(docker_bridge):
        result = _iptables("-I", CHAIN, "1", *rule)
        if result.returncode != 0:
            raise OperationFailed(f"could not add iptables rule: {result.stderr.strip()}")


def plan_remove(docker_bridge: str) -> list[str]:
    if not _available() or len(_missing(docker_bridge)) == len(_rules(docker_bridge)):
        return []
    return [f"remove ovsnet's accept rules from iptables {CHAIN}"]


def remove_accept(docker_bridge: str) -> None:
    """Delete every copy of ovsnet's rules (a rule added twice by hand is there twice)."""
    for rule in _rules(docker_bridge):
        while _iptables("-C", CHAIN, *rule).returncode == 0:
            result = _iptables("-D", CHAIN, *rule)
            # A failing -D leaves the rule in place: checking again would loop for ever.
            if result.returncode != 0:
                raise OperationFailed(f"could not remove iptables rule: {result.stderr.strip()}")


def accept_present(docker_bridge: str) -> bool | None:
    """For `doctor`: are ovsnet's accept rules in place? None when there is no DOCKER-USER."""
    if not _available():
        return None
    return not _missing(docker_bridge)


def forward_policy() -> str | None:
    """The policy of iptables' FORWARD chain (Docker sets DROP), None when unknown."""
    if shutil.which("iptables") is None:
        return None
    listed = _iptables("-S", "FORWARD")
    for line in listed.stdout.splitlines() if listed.returncode == 0 else []:
        if line.startswith("-P FORWARD "):
            return line.split()[2]
    return None
