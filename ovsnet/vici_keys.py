"""Shared keys held by charon itself, over its vici socket (strongSwan's control protocol).

ovs-monitor-ipsec owns ipsec.secrets and rewrites it on every change, one key per tunnel; keys
loaded over vici live in another credential set, which `ipsec rereadsecrets` leaves alone and
a charon restart forgets. The key travels over the local socket only: never on a command line,
never in a file. Debian ships charon's vici plugin in strongswan-swanctl.

Place: docs/architecture.md, "Layers": facade layer.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from ovsnet.errors import NotReady, OperationFailed
from ovsnet.ipsec.credentials import Psk

VICI_SOCKET = "/var/run/charon.vici"
TIMEOUT = 30.0
_HINT = (
    "install strongswan-swanctl (charon's vici plugin) and restart strongSwan "
    "(`systemctl restart openvswitch-ipsec`)"
)


@contextmanager
def _session(path: str) -> Iterator:
    import vici

    sock = socket.socket(socket.AF_UNIX)
    sock.settimeout(TIMEOUT)
    try:
        sock.connect(path)
    except (FileNotFoundError, ConnectionRefusedError):
        sock.close()
        raise NotReady(f"strongSwan's vici socket {path} does not answer", _HINT) from None
    except PermissionError:
        sock.close()
        raise NotReady(f"no permission to use {path}", "run as root") from None
    try:
        yield vici.Session(sock)
    except (vici.exception.SessionException, vici.exception.CommandException) as exc:
        # charon's messages name the command and the id, never the key.
        raise OperationFailed(f"strongSwan refused a vici command: {exc}") from None
    except (OSError, TimeoutError) as exc:
        raise OperationFailed(f"talking to strongSwan over {path} failed: {exc}") from None
    finally:
        sock.close()


def loaded_key_ids(path: str = VICI_SOCKET) -> list[str]:
    """Ids of the shared keys loaded over vici (by anyone)."""
    with _session(path) as session:
        reply = session.get_shared()
    return sorted(_text(k) for k in reply.get("keys", []))


def load_key(key_id: str, psk: Psk, owners: Sequence[str], path: str = VICI_SOCKET) -> None:
    """Load (or replace) an IKE shared key under key_id for the given identities."""
    message = {"id": key_id, "type": "IKE", "data": psk.value, "owners": list(owners)}
    with _session(path) as session:
        session.load_shared(message)


def unload_key(key_id: str, path: str = VICI_SOCKET) -> None:
    with _session(path) as session:
        session.unload_shared({"id": key_id})


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
