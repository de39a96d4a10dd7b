"""Changing the PSK of tunnels in use without an outage per pair longer than one IKE exchange.

IKEv2 signs each direction with the signer's own key, and strongSwan's PSK verifier tries every
shared key that matches the peer's identity (psk_authenticator.c: "tried N shared keys").
ovs-monitor-ipsec writes one key per tunnel into ipsec.secrets, so a second, accepted-only key
is loaded into charon over vici, scoped to the peer's address. The signer's key stays the
tunnel's options:psk: ovsnet's extra keys own only the peer's identity (no local owner), which
ranks below ovs-monitor-ipsec's `%any PEER` entry when charon picks the key to sign with.

The fleet runs three stages, each on every host before the next stage starts anywhere:
- accept: also accept the new key from each peer (and, already, the current one as an extra
  key). Nothing is torn down.
- switch: options:psk of every PSK tunnel becomes the new key (ovs-monitor-ipsec re-creates
  the connection: one IKE exchange per pair), and the old key is accepted from each peer
  until it switches too.
- finish: forget the extra keys; only the new one authenticates.
Traffic never leaves unencrypted: the tunnels stay IPsec tunnels throughout (the plaintext
guard and ipsec_skb_mark are untouched), a pair between its SAs drops, it does not leak.

Nothing here does I/O: the caller reads OVSDB, the key file and the ids of the keys charon
holds, and applies the plan.

Place: docs/architecture.md, "Layers": pure layer.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ovsnet.errors import InvalidInput
from ovsnet.ipsec.checks import shown_ports
from ovsnet.ipsec.credentials import Psk
from ovsnet.ipsec.keys import LEGACY_PSK_KEY, METHOD_CERT, METHOD_PSK, PSK_FILE_KEY
from ovsnet.ipsec.observed import ObservedHost

STAGE_ACCEPT = "accept"
STAGE_SWITCH = "switch"
STAGE_FINISH = "finish"
STAGES = (STAGE_ACCEPT, STAGE_SWITCH, STAGE_FINISH)
# Every shared key ovsnet loads into charon has an id starting with this; nothing else does.
KEY_ID_PREFIX = "ovsnet-psk-"
ROLE_NEXT = "next"  # the key peers will switch to (accept stage)
ROLE_PREVIOUS = "previous"  # the key peers that have not switched yet still sign with


def key_fingerprint(psk: Psk) -> str:
    """A short, one-way name of a key, so a rerun knows which key charon holds under an id.
    A key has at least 32 random characters: 48 bits of its SHA-256 reveal nothing usable."""
    return hashlib.sha256(b"ovsnet accepted psk\0" + psk.value.encode()).hexdigest()[:12]


def key_id(role: str, remote_ip: str, psk: Psk) -> str:
    return f"{KEY_ID_PREFIX}{role}-{remote_ip}-{key_fingerprint(psk)}"


def _role_and_peer(loaded_id: str) -> tuple[str, str] | None:
    parts = loaded_id[len(KEY_ID_PREFIX) :].split("-")
    return (parts[0], parts[1]) if len(parts) == 3 else None


@dataclass(frozen=True)
class AcceptedKey:
    """One key charon accepts (never signs with) from one peer."""

    key_id: str
    remote_ip: str
    psk: Psk  # its repr hides the value


@dataclass(frozen=True)
class PskTunnel:
    port: str
    remote_ip: str
    psk: Psk


@dataclass(frozen=True, repr=False)
class RotationPlan:
    stage: str
    tunnel_psks: Mapping[str, Psk] = field(default_factory=dict)  # port -> key to write
    other_config: Mapping[str, str | None] = field(default_factory=dict)
    load: tuple[AcceptedKey, ...] = ()
    unload: tuple[str, ...] = ()
    steps: tuple[str, ...] = ()
    tunnels: int = 0

    def __repr__(self) -> str:
        return f"RotationPlan({self.stage!r}, steps={list(self.steps)!r})"

    def as_json(self) -> dict[str, Any]:
        """Safe to print: ports, addresses and counts, never a key."""
        return {
            "stage": self.stage,
            "psk_tunnels": self.tunnels,
            "tunnels_switched": sorted(self.tunnel_psks),
            "keys_loaded": len(self.load),
            "keys_forgotten": len(self.unload),
        }


def psk_tunnels(host: ObservedHost) -> list[PskTunnel]:
    """The host's PSK tunnels; refuses a host whose tunnels use certificates."""
    by_method = host.ports_by_method()
    if by_method.get(METHOD_CERT):
        raise InvalidInput(
            f"tunnels {shown_ports(by_method[METHOD_CERT])} authenticate with certificates, "
            "not a pre-shared key",
            "renew certificates with `ovsnet pki renew` and `ovsnet ipsec cert` instead",
        )
    found = []
    for tunnel in host.tunnels:
        if tunnel.method == METHOD_PSK:
            remote = tunnel.options.get("remote_ip", "")
            found.append(PskTunnel(tunnel.port, remote, Psk(tunnel.options["psk"])))
    return sorted(found, key=lambda t: t.port)


def plan_psk_rotation(
    stage: str,
    new: Psk,
    new_file: str,
    host: ObservedHost,
    loaded_ids: Iterable[str],
) -> RotationPlan:
    """What one stage of the rotation to `new` (read from `new_file`) does on this host.

    `loaded_ids`: the ids of the shared keys charon holds now (any, not only ovsnet's).
    Running a stage again once it is done plans nothing.
    """
    if stage not in STAGES:
        raise InvalidInput(f"unknown rotation stage {stage!r}", f"use one of {', '.join(STAGES)}")
    if not new_file.startswith("/"):
        raise InvalidInput(f"PSK file path {new_file!r} must be absolute")
    tunnels = psk_tunnels(host)
    ours = sorted(i for i in loaded_ids if i.startswith(KEY_ID_PREFIX))
    if stage == STAGE_ACCEPT:
        return _accept(new, tunnels, ours)
    if stage == STAGE_SWITCH:
        return _switch(new, new_file, host, tunnels, ours)
    return _finish(new, tunnels, ours)


def _accept(new: Psk, tunnels: list[PskTunnel], ours: list[str]) -> RotationPlan:
    waiting = [t for t in tunnels if t.psk.value != new.value]
    # The tunnel's current key is loaded as well, so the pair keeps authenticating even if
    # something other than `--stage switch` writes the new key to OVSDB first (an agent or
    # companion whose PSK file was replaced): the switch then has nothing left to load.
    wanted = [AcceptedKey(key_id(ROLE_NEXT, t.remote_ip, new), t.remote_ip, new) for t in waiting]
    wanted += [
        AcceptedKey(key_id(ROLE_PREVIOUS, t.remote_ip, t.psk), t.remote_ip, t.psk) for t in waiting
    ]
    wanted_ids = {k.key_id for k in wanted}
    load = tuple(k for k in wanted if k.key_id not in ours)
    # Keys of an abandoned rotation (another new key, an older current one) are not wanted.
    unload = tuple(i for i in ours if i not in wanted_ids)
    steps = [
        f"accept the {'new' if _is_role(k.key_id, ROLE_NEXT) else 'current'} PSK from "
        f"{k.remote_ip} as well (in strongSwan)"
        for k in load
    ]
    steps += [f"forget a PSK accepted from {_peer(i)} for an earlier rotation" for i in unload]
    return RotationPlan(STAGE_ACCEPT, load=load, unload=unload, steps=tuple(steps),
                        tunnels=len(tunnels))  # fmt: skip


def _switch(
    new: Psk, new_file: str, host: ObservedHost, tunnels: list[PskTunnel], ours: list[str]
) -> RotationPlan:
    waiting = [t for t in tunnels if t.psk.value != new.value]
    load = tuple(
        AcceptedKey(key_id(ROLE_PREVIOUS, t.remote_ip, t.psk), t.remote_ip, t.psk)
        for t in waiting
        if key_id(ROLE_PREVIOUS, t.remote_ip, t.psk) not in ours
    )
    wanted_config: dict[str, str | None] = {PSK_FILE_KEY: new_file, LEGACY_PSK_KEY: None}
    other_config = {k: v for k, v in wanted_config.items() if host.other_config.get(k) != v}
    steps = [f"keep accepting the previous PSK from {k.remote_ip} until `--stage finish`"
             for k in load]  # fmt: skip
    steps += [f"switch tunnel {t.port} ({t.remote_ip}) to the new PSK" for t in waiting]
    if PSK_FILE_KEY in other_config:
        steps.append(f"use the PSK in {new_file} for peers added with --ipsec alone")
    if LEGACY_PSK_KEY in other_config:
        steps.append("remove the PSK an older ovsnet stored in OVSDB")
    return RotationPlan(
        STAGE_SWITCH,
        tunnel_psks={t.port: new for t in waiting},
        other_config=other_config,
        load=load,
        steps=tuple(steps),
        tunnels=len(tunnels),
    )


def _finish(new: Psk, tunnels: list[PskTunnel], ours: list[str]) -> RotationPlan:
    behind = [t.port for t in tunnels if t.psk.value != new.value]
    if behind:
        raise InvalidInput(
            f"tunnels {shown_ports(behind)} do not use the new PSK yet",
            "run `ovsnet ipsec rotate-psk --stage switch` with the same file first",
        )
    steps = [f"forget the extra PSK accepted from {_peer(i)}" for i in ours]
    return RotationPlan(STAGE_FINISH, unload=tuple(ours), steps=tuple(steps),
                        tunnels=len(tunnels))  # fmt: skip


def _is_role(loaded_id: str, role: str) -> bool:
    parsed = _role_and_peer(loaded_id)
    return parsed is not None and parsed[0] == role


def _peer(loaded_id: str) -> str:
    parsed = _role_and_peer(loaded_id)
    return parsed[1] if parsed else "a peer"
