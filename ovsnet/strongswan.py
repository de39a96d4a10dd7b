"""strongSwan and the kernel's IPsec state: restart the IKE daemon on a clean slate.

A negotiation that fails half way (e.g. ovs-monitor-ipsec loading a connection before its key,
so the peer's first attempt gets "no shared key found") can leave SAs or policies in the kernel
that charon no longer owns; they keep steering a peer's tunnel packets into SAs the peer does
not have, and "configured but not established" never clears (seen in the real-kernel lab).
strongSwan's `ipsec` command and iproute2's `ip xfrm` are the interfaces here: pyroute2 has no
complete xfrm support. Only protocols and peer addresses appear on these command lines, never a key.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from ovsnet.errors import NotReady, OperationFailed
from ovsnet.plaintext_guard import Guard

TIMEOUT = 60


def _tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise NotReady(f"`{name}` not found", f"install {package}")
    return path


def _run(argv: list[str], what: str, input: str | None = None) -> None:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT, input=input)
    except subprocess.TimeoutExpired:
        raise OperationFailed(f"{what} did not finish within {TIMEOUT} s") from None
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
    subprocess.run([ipsec, "stop"], capture_output=True, timeout=TIMEOUT)  # not running: fine
    for selector in policy_selectors(guard):
        _run([ip, "xfrm", "policy", "deleteall", *selector], "deleting stale IPsec policies")
    # `-force`: a peer with nothing left to delete is not an error.
    _run([ip, "-force", "-batch", "-"], "deleting the peers' SAs", state_batch(guard))
    _run([ipsec, "start"], "starting strongSwan (`ipsec start`)")


# NOTE: strongSwan reads CRLs from this directory at start and on `ipsec rereadcrls`; of two
# CRLs of one CA it keeps the one with the higher CRL number (ovsnet increments it).
STRONGSWAN_CRLS = Path("/etc/ipsec.d/crls")
CRL_NAME = "ovsnet-ike-crl.pem"


def install_crl(data: bytes, crls: Path = STRONGSWAN_CRLS) -> str | None:
    """Put the IKE CA's CRL where strongSwan loads it and have a running charon reread it.

    Returns None when done (or when charon is not running: it loads the file when it starts),
    else what went wrong with the reread.
    """
    from ovsnet.ipsec_monitor import IPSEC_NOT_RUNNING
    from ovsnet.pki import write_atomically

    write_atomically(crls / CRL_NAME, data, 0o644)
    ipsec = shutil.which("ipsec")
    if ipsec is None:
        return "strongSwan's `ipsec` command is not installed"
    try:
        done = subprocess.run([ipsec, "rereadcrls"], capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        return "strongSwan did not answer `ipsec rereadcrls`"
    if done.returncode not in (0, IPSEC_NOT_RUNNING):
        return f"`ipsec rereadcrls` failed: {' '.join(done.stderr.split())[:200]}"
    return None
