"""strongSwan settings ovsnet gives charon: how often it retries a peer that stopped answering.

When a host goes away (reboot, Docker or the companion restarted), its charon deletes its SAs
and tells the peers so. Their tunnels' traffic then hits the trap policy (ovs-monitor-ipsec's
`auto=route`) and they start a new IKE_SA_INIT towards a host that is not there. strongSwan's
defaults retransmit it after 4, 7, 13, 23 and 42 s and give up after 165 s, so when the host is
back the survivors' next packet may still be a minute away: measured in the real-kernel lab,
the survivors sat "configured, negotiating" until the healer's grace ran out (60 s) and needed
one or two repairs per pair. With the retransmissions capped at 10 s a returning host is
answered within 10 s, with no repair (docs/decisions.md, "Survivors of a restart").

The file goes in strongswan.d, which Debian's /etc/strongswan.conf includes; ovs-monitor-ipsec
writes its own ovs.conf there and leaves other files alone. charon reads it when it starts.

Place: docs/architecture.md, "Layers": facade layer (the file; the schedule itself is pure).
"""

from __future__ import annotations

from pathlib import Path

CHARON_SETTINGS = Path("/etc/strongswan.d/ovsnet.conf")

# strongSwan's charon.retransmit_* keys (strongswan.conf(5)): the n-th retransmission waits
# timeout * base**n seconds, at most `limit`; after `tries` of them the attempt fails and
# keyingtries=%forever (ovs-monitor-ipsec's) starts a new one at once.
RETRANSMIT_TIMEOUT_S = 3.0
RETRANSMIT_BASE = 1.5
RETRANSMIT_LIMIT_S = 10.0
RETRANSMIT_TRIES = 5


def retransmit_waits(
    timeout: float = RETRANSMIT_TIMEOUT_S,
    base: float = RETRANSMIT_BASE,
    limit: float = RETRANSMIT_LIMIT_S,
    tries: int = RETRANSMIT_TRIES,
) -> list[float]:
    """The waits of one IKE attempt: before each retransmission, then before giving up."""
    return [min(timeout * base**n, limit) for n in range(tries + 1)]


def settings_text() -> str:
    return (
        "# Written by ovsnet (ovsnet/charon_settings.py): a peer that stopped answering is\n"
        f"# asked again at least every {RETRANSMIT_LIMIT_S:g} s, so a host back from a restart\n"
        "# is answered within seconds (strongSwan's default backoff reaches 42 s, 165 s in all).\n"
        "charon {\n"
        f"    retransmit_timeout = {RETRANSMIT_TIMEOUT_S}\n"
        f"    retransmit_base = {RETRANSMIT_BASE}\n"
        f"    retransmit_limit = {RETRANSMIT_LIMIT_S}\n"
        f"    retransmit_tries = {RETRANSMIT_TRIES}\n"
        "}\n"
    )


def install(path: Path = CHARON_SETTINGS) -> bool:
    """Write the settings where charon reads them at start; True when the file changed."""
    from ovsnet.files import write_atomically

    text = settings_text()
    try:
        if path.read_text() == text:
            return False
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, text.encode(), 0o644)
    return True
