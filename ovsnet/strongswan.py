"""strongSwan and the kernel's IPsec state: restart the IKE daemon on a clean slate.

A negotiation that fails half way (e.g. ovs-monitor-ipsec loading a connection before its key,
so the peer's first attempt gets "no shared key found") can leave SAs or policies in the kernel
that charon no longer owns; they keep steering a peer's tunnel packets into SAs the peer does
not have, and "configured but not established" never clears (seen in the real-kernel lab).
strongSwan's `ipsec` command and iproute2's `ip xfrm` are the interfaces here: pyroute2 has no
complete xfrm support. Only protocols and peer addresses appear on these command lines, never a key.

Place: docs/architecture.md, "Layers": facade layer.
"""

from __future__ import annotations

import shutil
import subprocess

from ovsnet.errors import NotReady, OperationFailed
from ovsnet.plaintext_guard import Guard

TIMEOUT = 60


def _tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise NotReady(f"`{name}` not found", f"install {package}")
    return path


def _call(argv: list[str], what: str, input: str | None = None) -> subprocess.CompletedProcess:
    """Run one command; a hang, a vanished binary or a refused exec become ovsnet's errors."""
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT, input=input)
    except subprocess.TimeoutExpired:
        raise OperationFailed(f"{what} did not finish within {TIMEOUT} s") from None
    except FileNotFoundError:
        raise NotReady(f"{what}: {argv[0]} cannot be executed") from None
    except PermissionError:
        raise NotReady(f"{what}: no permission to run {argv[0]}", "run as root") from None


def _run(argv: list[str], what: str, input: str | None = None) -> None:
    done = _call(argv, what, input)
    if done.returncode != 0:
        detail = " ".join(done.stderr.split())[:200] or f"exit {done.returncode}"
        raise OperationFailed(f"{what} failed: {detail}")


def policy_selectors(guard: Guard) -> list[list[str]]:
    """`ip xfrm policy deleteall` selectors for the guarded tunnels' protocols (pure).

    By protocol, not by peer: iproute2 keeps a deleteall filter across `-batch` lines, so
    per-peer policy deletes would need a process each. With charon stopped, every policy left
    for these protocols is stale.
    """
    selectors = [["proto", "gre"]] if guard.gre else []
    ports = sorted({port for _, port in guard.udp})
    selectors += [["proto", "udp", "dport", str(port)] for port in ports]
    return selectors


def state_batch(guard: Guard) -> str:
    """`ip -batch` lines deleting every SA to or from a guarded peer (pure)."""
    lines = []
    for peer in sorted(guard.peers):
        lines += [f"xfrm state deleteall src {peer}", f"xfrm state deleteall dst {peer}"]
    return "\n".join(lines) + "\n"


def restart_clean(guard: Guard) -> None:
    """Stop charon, delete what the kernel still holds for the guarded peers, start charon.

    charon loads ovs-monitor-ipsec's connections from ipsec.conf when it starts, so the monitor
    needs no restart.
    """
    ipsec = _tool("ipsec", "strongswan")
    ip = _tool("ip", "iproute2")
    _call([ipsec, "stop"], "stopping strongSwan (`ipsec stop`)")  # not running: fine
    for selector in policy_selectors(guard):
        _run([ip, "xfrm", "policy", "deleteall", *selector], "deleting stale IPsec policies")
    # `-force`: a peer with nothing left to delete is not an error.
    _run([ip, "-force", "-batch", "-"], "deleting the peers' SAs", state_batch(guard))
    _run([ipsec, "start"], "starting strongSwan (`ipsec start`)")
