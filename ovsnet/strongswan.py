"""strongSwan and the kernel's IPsec state: repair one peer, or restart the IKE daemon clean.

A negotiation that fails half way (e.g. ovs-monitor-ipsec loading a connection before its key,
so the peer's first attempt gets "no shared key found") can leave SAs or policies in the kernel
that charon no longer owns; they keep steering a peer's tunnel packets into SAs the peer does
not have, and "configured but not established" never clears (seen in the real-kernel lab).
strongSwan's `ipsec` command and iproute2's `ip xfrm` are the interfaces here: pyroute2 has no
complete xfrm support. Only protocols and peer addresses appear on these command lines, never a key.

Place: docs/architecture.md, "Layers": facade layer.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path

from ovsnet.errors import NotReady, OperationFailed
from ovsnet.ipsec.xfrm_states import KernelSa, parse_esp_states
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
        raise OperationFailed(f"{what} failed: {_failure(done)}")


def _failure(done: subprocess.CompletedProcess) -> str:
    """A failed command's stderr on one line (or its exit code), for an error message."""
    return " ".join(done.stderr.split())[:200] or f"exit {done.returncode}"


def peer_policy_selectors(peer: IPv4Address, udp_ports: Iterable[int] = (), gre: bool = False):
    """`ip xfrm policy deleteall` filters for one peer's tunnel traffic, both directions (pure).

    Exact to the tunnel protocol ovs-monitor-ipsec's connections select (GRE; UDP to or from
    the VXLAN/Geneve port), so a policy for other traffic to the same address is never touched.
    One filter per `ip` process: iproute2 keeps a deleteall filter across `-batch` lines.
    """
    selectors = []
    for side in ("dst", "src"):
        if gre:
            selectors.append([side, f"{peer}/32", "proto", "gre"])
        for port in sorted(set(udp_ports)):
            for which in ("dport", "sport"):
                selectors.append([side, f"{peer}/32", "proto", "udp", which, str(port)])
    return selectors


def policy_selectors(guard: Guard) -> list[list[str]]:
    """The filters for every guarded peer (pure); see peer_policy_selectors."""
    selectors = []
    for peer in sorted(guard.peers):
        ports = [port for address, port in guard.udp if address == peer]
        selectors += peer_policy_selectors(peer, ports, gre=peer in guard.gre)
    return selectors


def state_deletions(listing: str, peers: Iterable[IPv4Address]) -> list[list[str]]:
    """`ip` arguments deleting every ESP SA to or from these peers, one exact SA each (pure).
    Not `deleteall` filters: iproute2 keeps the first line's filter for the lines after it in a
    batch, so `deleteall src P` then `deleteall dst P` deleted only the inbound SAs (measured on
    the VMs' iproute2 6.1), and a repair left the stale outbound SAs to the peer in place."""
    wanted = {str(peer) for peer in peers}
    return [
        sa.delete_line().split()
        for sa in parse_esp_states(listing)
        # Not the kernel's larval acquire states (SPI 0): a delete by SPI 0 is looked up by
        # address and may hit another SA; the SA charon installs next replaces them anyway.
        if {sa.src, sa.dst} & wanted and sa.keyed
    ]


def esp_listing() -> str:
    """`ip xfrm state list proto esp nokeys`: SPIs and addresses, never the keying material."""
    argv = [_tool("ip", "iproute2"), "xfrm", "state", "list", "proto", "esp", "nokeys"]
    listing = _call(argv, "listing the ESP SAs")
    if listing.returncode != 0:
        raise NotReady(
            f"listing the kernel's ESP SAs failed: {listing.stderr.strip()[:200]}",
            "run ovsnet as root (reading IPsec state needs CAP_NET_ADMIN)",
        )
    return listing.stdout


def esp_states() -> list[KernelSa]:
    return parse_esp_states(esp_listing())


def _delete_kernel_state(selectors: list[list[str]], peers: Iterable[IPv4Address]) -> None:
    ip = _tool("ip", "iproute2")
    for selector in selectors:
        _run([ip, "xfrm", "policy", "deleteall", *selector], "deleting stale IPsec policies")
    delete_sas(state_deletions(esp_listing(), peers))


SA_GONE = "No such process"  # ESRCH: the SA expired, or charon deleted it, since the listing


def delete_sas(deletions: list[list[str]]) -> None:
    """Delete these SAs (state_deletions), one `ip` process each; an SA already gone is fine.

    NOTE: not one `ip -force -batch`: `ip xfrm state delete` exits the whole process on the
    first kernel error, `-force` or not (iproute2 6.1), so an SA that vanished since the
    listing failed every repair of that peer before its re-initiation (a CI run: three failed
    repairs in a row, the pair down for 240 s).
    """
    ip = _tool("ip", "iproute2")
    for deletion in deletions:
        done = _call([ip, *deletion], "deleting a peer's SA")
        if done.returncode != 0 and SA_GONE not in done.stderr:
            raise OperationFailed(f"deleting the peers' SAs failed: {_failure(done)}")


def forget_peers(gone: Guard) -> None:
    """After the tunnels to these peers are gone: delete the kernel's IPsec policies for their
    tunnel traffic and their ESP SAs, which nothing else ever would.

    NOTE: ovs-monitor-ipsec only asks charon to terminate the removed connection's IKE SAs. A
    duplicate IKE SA left by both sides initiating at once survives that (seen in the VM lab:
    `terminate 'gre-...[7]'` three times, no `deleting IKE_SA`), keeping its SAs and policies in
    the kernel, and a later tunnel to the same peer then sent ESP on a stale outbound SA the
    peer could not decrypt. Exact selectors (see peer_policy_selectors): other traffic to the
    same address keeps its policies.
    """
    _delete_kernel_state(policy_selectors(gone), gone.peers)


def restart_clean(guard: Guard) -> None:
    """Stop charon, delete what the kernel still holds for the guarded peers, start charon.

    charon loads ovs-monitor-ipsec's connections from ipsec.conf when it starts, so the monitor
    needs no restart. Only the guarded (ovsnet's) peers' policies and SAs are deleted.
    """
    ipsec = _tool("ipsec", "strongswan")
    _call([ipsec, "stop"], "stopping strongSwan (`ipsec stop`)")  # not running: fine
    _delete_kernel_state(policy_selectors(guard), guard.peers)
    _run([ipsec, "start"], "starting strongSwan (`ipsec start`)")


@dataclass(frozen=True)
class PeerConnections:
    """What one peer's repair touches: its strongSwan connections and its tunnel selectors."""

    peer: IPv4Address
    connections: tuple[str, ...]
    selectors: tuple[tuple[str, ...], ...]


def repair_peer(target: PeerConnections) -> None:
    """Re-negotiate one peer from a clean kernel state, leaving every other peer alone.

    Stroke, not vici: Debian's strongswan-charon loads no vici plugin by default. The order
    keeps charon's view and the kernel's in step: charon drops the peer's SAs and trap policies
    itself (down, unroute), then whatever it no longer owned is deleted from the kernel, then
    charon routes the connection again and initiates it without waiting (up-nb: with
    keyingtries=%forever a blocking `up` to a dead peer would never return). Meanwhile the
    plaintext guard drops the peer's tunnel traffic.
    """
    ipsec = _tool("ipsec", "strongswan")
    for conn in target.connections:
        # Not established or not routed: nothing to take down, fine.
        _call([ipsec, "stroke", "down-nb", conn], "releasing the peer's connection")
        _call([ipsec, "unroute", conn], "releasing the peer's connection")
    _delete_kernel_state([list(s) for s in target.selectors], [target.peer])
    for conn in target.connections:
        _run([ipsec, "route", conn], f"routing the strongSwan connection {conn}")
        _run([ipsec, "stroke", "up-nb", conn], f"initiating the strongSwan connection {conn}")


def initiate(connections: Iterable[str]) -> None:
    """Have charon initiate these connections now, tearing nothing down (up-nb: no waiting
    for a peer that may be away; keyingtries=%forever keeps it trying).

    NOTE: ovs-monitor-ipsec's connections are `auto=route`: charon initiates on the kernel's
    acquire for the first packet. A host back from a restart raised its acquires (BFD's first
    packets) while the monitor was still loading the connections; charon dropped them, and the
    kernel raises no new acquire while the larval state lives (the VM lab's reboots: "0 up,
    0 connecting" for over a minute, while the peers sat in retransmission backoff).
    """
    ipsec = _tool("ipsec", "strongswan")
    for conn in connections:
        _run([ipsec, "stroke", "up-nb", conn], f"initiating the strongSwan connection {conn}")


# ovs-monitor-ipsec's catch-all connections (`prevent_unencrypted_gre`, `..._vxlan`, ...): drop
# shunts for tunnel traffic without an SA. strongSwan also takes them as responder configs.
SHUNT_PREFIX = "prevent_unencrypted_"
_IKE_SA = re.compile(
    r"^\s*(?P<conn>[^\s\[{]+)\[\d+\]: ESTABLISHED\b.*?"
    r"(?P<local>[0-9.]+)\[[^\]]*\]\.\.\.(?P<remote>[0-9.]+)\["
)


def parse_shunt_ike_peers(statusall: str) -> set[str]:
    """Remote addresses with an IKE SA established under one of ovs-monitor-ipsec's shunt
    connections, from `ipsec statusall` (pure).

    A responder that has not loaded a tunnel's connection yet when its peer initiates matches
    the shunt connection instead (`selected peer config 'prevent_unencrypted_gre'`), answers
    without transport mode, and both sides keep that SA: nothing re-negotiates it.
    """
    peers = set()
    for line in statusall.splitlines():
        match = _IKE_SA.match(line)
        if match and match["conn"].startswith(SHUNT_PREFIX):
            peers.add(match["remote"])
    return peers


def shunt_ike_peers() -> set[str]:
    """parse_shunt_ike_peers of the running charon; empty when strongSwan is not running."""
    ipsec = shutil.which("ipsec")
    if ipsec is None:
        return set()
    done = _call([ipsec, "statusall"], "reading strongSwan's SAs (`ipsec statusall`)")
    return parse_shunt_ike_peers(done.stdout) if done.returncode == 0 else set()


# NOTE: strongSwan reads CRLs from this directory at start and on `ipsec rereadcrls`; of two
# CRLs of one CA it keeps the one with the higher CRL number (ovsnet increments it).
STRONGSWAN_CRLS = Path("/etc/ipsec.d/crls")
CRL_NAME = "ovsnet-ike-crl.pem"
IPSEC_NOT_RUNNING = 7  # `ipsec <command>` when charon is not running


def install_crl(data: bytes, crls: Path = STRONGSWAN_CRLS) -> str | None:
    """Put the IKE CA's CRL where strongSwan loads it and have a running charon reread it.

    Returns None when done (or when charon is not running: it loads the file when it starts),
    else what went wrong with the reread.
    """
    from ovsnet.files import write_atomically

    write_atomically(crls / CRL_NAME, data, 0o644)
    return _reread("rereadcrls")


def reread_strongswan_cacerts() -> str | None:
    """Make a running strongSwan load /etc/ipsec.d/cacerts again; None if it did, else why not.

    NOTE: strongSwan reads CA files only at start and on `ipsec rereadcacerts`; ovs-monitor-
    ipsec's own refresh (`ipsec update`, `rereadsecrets`) does not, so a CA copied there while
    charon runs would stay unknown and certificate authentication would fail (seen here).
    """
    return _reread("rereadcacerts")


def _reread(command: str) -> str | None:
    """`ipsec <command>` (rereadcrls, rereadcacerts): None if charon reread, or is not running
    (it loads the directory when it starts); else why not."""
    ipsec = shutil.which("ipsec")
    if ipsec is None:
        return "strongSwan's `ipsec` command is not installed"
    try:
        done = subprocess.run([ipsec, command], capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        return f"strongSwan did not answer `ipsec {command}`"
    if done.returncode not in (0, IPSEC_NOT_RUNNING):
        return f"`ipsec {command}` failed: {' '.join(done.stderr.split())[:200]}"
    return None


def parse_own_certificate_serials(listing: str) -> set[int]:
    """Serials of the end-entity certificates charon holds a private key for, from
    `ipsec listcerts` (pure). Certificates received from peers are listed too, without
    "has private key"; a certificate's block ends where the next `subject:` starts."""
    serials: set[int] = set()
    serial: int | None = None
    for line in listing.splitlines():
        words = line.split()
        if words[:1] == ["subject:"]:
            serial = None
        elif words[:1] == ["serial:"] and len(words) > 1:
            try:
                serial = int(words[1].replace(":", ""), 16)
            except ValueError:
                serial = None
        elif words[:1] == ["pubkey:"] and "has private key" in line and serial is not None:
            serials.add(serial)
    return serials


def own_certificate_serials() -> set[int] | None:
    """What charon authenticates with now; None if strongSwan is not installed or not running
    (it then loads the configured files when it starts)."""
    ipsec = shutil.which("ipsec")
    if ipsec is None:
        return None
    done = _call([ipsec, "listcerts"], "listing strongSwan's certificates")
    if done.returncode != 0:
        return None
    return parse_own_certificate_serials(done.stdout)


def reload_certificate() -> None:
    """Make a running charon use the certificate and key files anew.

    NOTE: charon loads a connection's certificate (ipsec.conf `leftcert`) when the connection
    is added, and the key on `rereadsecrets`. A certificate renewed in place keeps its path, so
    ovs-monitor-ipsec sees no change and charon keeps the old one until restarted. `ipsec
    reload` re-adds every connection (`update` only changed ones): established IKE and CHILD
    SAs stay up (seen in the lab), and the next IKE_AUTH presents the new certificate.
    """
    ipsec = _tool("ipsec", "strongswan")
    _run([ipsec, "rereadsecrets"], "reloading strongSwan's private keys (`ipsec rereadsecrets`)")
    _run([ipsec, "reload"], "reloading strongSwan's connections (`ipsec reload`)")
