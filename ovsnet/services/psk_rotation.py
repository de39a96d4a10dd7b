"""`ovsnet ipsec rotate-psk --stage accept|switch|finish --psk-file F`: one stage of a fleet's
PSK change (the sequence and why: ovsnet.ipsec.rotation).

Order within a stage: keys are loaded into charon before OVSDB changes (a re-created
connection must already accept the peer's key), and forgotten only after. The tunnels stay
IPsec tunnels, so the plaintext guard does not change; the OVSDB write still goes through
`guarded` like every tunnel change.

Place: docs/architecture.md, "Packages and what they own": the services layer.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ovsnet import vici_keys
from ovsnet.ipsec import rotation
from ovsnet.model import Changes
from ovsnet.ovsdb.client import OvsDb
from ovsnet.report import ChangeReport
from ovsnet.services.guard import guarded, plan_guard
from ovsnet.services.ipsec import read_psk_file
from ovsnet.services.observed import observe_host


@dataclass
class RotationRequest:
    stage: str
    psk_file: Path
    dry_run: bool = False
    vici_socket: str = vici_keys.VICI_SOCKET


def rotate_psk(db: OvsDb, request: RotationRequest) -> ChangeReport:
    path = str(Path(request.psk_file).absolute())
    secret = read_psk_file(path)
    host = observe_host(db)
    loaded = vici_keys.loaded_key_ids(request.vici_socket)
    plan = rotation.plan_psk_rotation(request.stage, secret.psk, path, host, loaded)
    if not request.dry_run:
        for key in plan.load:
            vici_keys.load_key(key.key_id, key.psk, [key.remote_ip], request.vici_socket)
        changes = Changes(
            tunnel_options={port: {"psk": psk.value} for port, psk in plan.tunnel_psks.items()},
            other_config=dict(plan.other_config),
        )
        if changes:
            with guarded(plan_guard(host, changes), db):
                db.apply(changes)
        for key_id in plan.unload:
            vici_keys.unload_key(key_id, request.vici_socket)
    return ChangeReport(
        command=f"ipsec rotate-psk --stage {request.stage}",
        steps=list(plan.steps),
        dry_run=request.dry_run,
        details=plan.as_json(),
    )
