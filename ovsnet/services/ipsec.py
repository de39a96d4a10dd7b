"""`ovsnet ipsec ...`: the host's IPsec settings (PSK, certificates, plaintext policy).

Reads what OVSDB and the files hold, lets the pure `ovsnet.ipsec` decide, writes the result in
one OVSDB transaction. Also what `peer add --ipsec` needs: `read_psk_file`.

Place: docs/architecture.md, "Packages and what they own": the services layer.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ovsnet.errors import InvalidInput
from ovsnet.ipsec import compat as ipsec_compat
from ovsnet.ipsec import credentials as ipsec_credentials
from ovsnet.ipsec import keys as ipsec_keys
from ovsnet.ipsec import plan as ipsec_plan
from ovsnet.model import Changes
from ovsnet.ovsdb.client import OvsDb
from ovsnet.report import ChangeReport
from ovsnet.secrets import read_secret_file
from ovsnet.services.guard import guarded, plan_guard, restore_guard
from ovsnet.services.observed import observe_host

# Debian 12's ovs-monitor-ipsec writes the CA as a `ca` section without `auto=add`, which
# strongSwan never loads; a CA certificate in this directory is always loaded.
STRONGSWAN_CACERTS = Path("/etc/ipsec.d/cacerts")
STRONGSWAN_CA_NAME = "ovsnet-ca.pem"
MAX_PSK_FILE = 4096


# --- reading secrets and certificates ---------------------------------------------------------


@dataclass(frozen=True)
class SecretFile:
    psk: ipsec_credentials.Psk
    warnings: tuple[str, ...] = ()


def read_psk_file(path: str | os.PathLike) -> SecretFile:
    """The PSK in FILE (one line, trailing newline stripped), under the secret-file rule."""
    data = read_secret_file(path, "PSK file", limit=MAX_PSK_FILE)
    return SecretFile(ipsec_credentials.psk_from_file_bytes(data, str(path)))


@dataclass(frozen=True)
class CheckedCertificate:
    paths: ipsec_plan.CertificatePaths
    identity: str
    not_after: str
    warnings: tuple[str, ...] = ()
    serial: int = 0


def check_certificate_files(cert: str, key: str, ca: str, now=None) -> CheckedCertificate:
    """Refuse what would fail later in IKE: foreign CA, expired, wrong key, unusable subject."""
    from ovsnet.pki import checks as pki_checks
    from ovsnet.pki import issue as pki_issue
    from ovsnet.pki import profile as pki_profile
    from ovsnet.pki import reading as pki_reading

    cert_path, key_path, ca_path = (Path(p).absolute() for p in (cert, key, ca))
    for what, path in (("certificate", cert_path), ("CA certificate", ca_path)):
        if not path.is_file():
            raise InvalidInput(f"{what} {path} does not exist", "give the file's path")
    certificate = pki_reading.load_certificate(cert_path.read_bytes(), str(cert_path))
    ca_cert = pki_reading.load_certificate(ca_path.read_bytes(), str(ca_path))
    summary = pki_checks.verify_chain(certificate, ca_cert, now)
    identity = pki_checks.ike_identity(summary)
    purpose_warnings = pki_checks.check_ike_trust(certificate, ca_cert)
    key_data = read_secret_file(key_path, "private key")
    private_key = pki_reading.load_private_key(key_data, str(key_path))
    pki_checks.check_key_matches(certificate, private_key)
    if pki_issue.key_type_of(certificate.public_key()) != "rsa":
        # ovs-monitor-ipsec writes `: RSA <key>` into ipsec.secrets; strongSwan then fails to
        # load any other key type and every IKE authentication fails.
        raise InvalidInput(
            f"{cert_path} has a {pki_issue.key_type_of(certificate.public_key())} key; "
            "ovs-monitor-ipsec only hands RSA keys to strongSwan",
            "issue an RSA host certificate with `ovsnet pki issue HOST --key-type rsa`",
        )
    paths = ipsec_plan.CertificatePaths(str(cert_path), str(key_path), str(ca_path))
    warnings = list(purpose_warnings)
    if summary.expires_soon(now or pki_profile.utcnow()):
        warnings.append(f"{cert_path} expires on {summary.not_after:%Y-%m-%d}")
    return CheckedCertificate(
        paths, identity, f"{summary.not_after:%Y-%m-%d}", tuple(warnings), certificate.serial_number
    )


# --- observing and writing OVSDB ----------------------------------------------------------------


def _apply(
    db: OvsDb, command: str, updates: dict, steps: list[str], dry_run: bool, details: dict
) -> ChangeReport:
    if updates and not dry_run:
        db.apply(Changes(other_config=updates))
    return ChangeReport(command=command, steps=steps, dry_run=dry_run, details=details)


def _describe(updates: dict) -> list[str]:
    steps = []
    for key, value in sorted(updates.items()):
        if value is None:
            steps.append(f"remove Open_vSwitch other_config:{key}")
        elif key == ipsec_keys.PSK_FILE_KEY:
            steps.append(f"use the PSK in {value} for peers added with --ipsec alone")
        else:
            steps.append(f"set Open_vSwitch other_config:{key}={value}")
    return steps


def _warnings(details: dict, warnings) -> dict:
    if warnings:
        details["warnings"] = "; ".join(warnings)
    return details


@dataclass
class PskRequest:
    file: Path | None  # None: unset
    dry_run: bool = False


def set_host_psk(db: OvsDb, request: PskRequest) -> ChangeReport:
    """`ovsnet ipsec psk set --file F` / `psk unset`: the PSK file `peer add --ipsec` uses by
    default. OVSDB keeps its path only; the key itself goes on each tunnel, as OVS needs."""
    path = str(Path(request.file).absolute()) if request.file else None
    secret = read_psk_file(path) if path else None  # refused now, not at the next peer add
    host = observe_host(db)
    if secret is not None:
        ipsec_compat.port_type(
            host.ovs_version, "gre", ipsec_keys.METHOD_PSK
        )  # refuses OVS 2.7 to 2.10
    updates = ipsec_plan.plan_host_psk(path, host)
    command = "ipsec psk set" if secret else "ipsec psk unset"
    details = _warnings({}, secret.warnings if secret else ())
    return _apply(db, command, updates, _describe(updates), request.dry_run, details)


@dataclass
class CertRequest:
    cert: str | None = None
    key: str | None = None
    ca: str | None = None
    unset: bool = False
    strongswan_cacerts: Path | None = STRONGSWAN_CACERTS
    dry_run: bool = False


def set_host_certificate(db: OvsDb, request: CertRequest) -> ChangeReport:
    """`ovsnet ipsec cert --cert C --key K --ca CA` (or `--unset`)."""
    if request.unset:
        updates = ipsec_plan.plan_host_certificate(None, observe_host(db))
        return _apply(db, "ipsec cert --unset", updates, _describe(updates), request.dry_run, {})
    if not (request.cert and request.key and request.ca):
        raise InvalidInput("ipsec cert needs --cert, --key and --ca", "or --unset")
    # The files first: a bad certificate is refused before OVSDB is even asked.
    checked = check_certificate_files(request.cert, request.key, request.ca)
    host = observe_host(db)
    ipsec_compat.port_type(host.ovs_version, "gre", ipsec_keys.METHOD_CERT)  # needs OVS >= 2.11
    updates = ipsec_plan.plan_host_certificate(checked.paths, host)
    steps = _describe(updates)
    ca_copy = _strongswan_ca_copy(request.strongswan_cacerts, Path(checked.paths.ca_cert))
    warnings = list(checked.warnings)
    if ca_copy is not None:
        steps.append(f"copy the CA certificate to {ca_copy} and have strongSwan reread it")
        if not request.dry_run:
            warnings += _install_ca(Path(checked.paths.ca_cert), ca_copy)
    renewed = not updates and _renewed_in_place(checked.serial)
    if renewed:
        steps.append("have strongSwan present the renewed certificate from the next IKE_AUTH on "
                     "(ipsec rereadsecrets, ipsec reload: established SAs stay up)")  # fmt: skip
    details = _warnings({"identity": checked.identity, "expires": checked.not_after}, warnings)
    report = _apply(db, "ipsec cert", updates, steps, request.dry_run, details)
    if renewed and not request.dry_run:
        from ovsnet.strongswan import reload_certificate

        reload_certificate()
    return report


def _renewed_in_place(serial: int) -> bool:
    """The configured files hold a certificate charon does not authenticate with yet: renewed
    at the same path, which ovs-monitor-ipsec cannot notice (it compares paths)."""
    from ovsnet.strongswan import own_certificate_serials

    loaded = own_certificate_serials()
    return bool(loaded) and serial not in (loaded or set())


def _strongswan_ca_copy(cacerts: Path | None, ca: Path) -> Path | None:
    """Where the CA must be copied for strongSwan, or None if not wanted or already there."""
    if cacerts is None or not cacerts.is_dir():
        return None
    target = cacerts / STRONGSWAN_CA_NAME
    if target.exists() and target.read_bytes() == ca.read_bytes():
        return None
    return target


def _install_ca(ca: Path, target: Path) -> list[str]:
    """Copy the CA where strongSwan loads it and make a running strongSwan reread it."""
    from ovsnet.files import write_atomically
    from ovsnet.strongswan import reread_strongswan_cacerts

    write_atomically(target, ca.read_bytes(), 0o644)
    problem = reread_strongswan_cacerts()
    return (
        [f"{problem}: run `ipsec rereadcacerts` before certificate tunnels come up"]
        if problem
        else []
    )


@dataclass
class PlaintextRequest:
    allow: bool
    dry_run: bool = False


def set_plaintext_policy(db: OvsDb, request: PlaintextRequest) -> ChangeReport:
    """`ovsnet ipsec plaintext drop|allow`: other_config:ipsec_skb_mark."""
    host = observe_host(db)
    changes = Changes(other_config=ipsec_plan.plan_plaintext_policy(request.allow, host))
    guard_change = plan_guard(host, changes)
    steps = _describe(changes.other_config) + (guard_change.steps if guard_change else [])
    if changes and not request.dry_run:
        with guarded(guard_change, db):
            db.apply(changes)
    command = "ipsec plaintext " + ("allow" if request.allow else "drop")
    return ChangeReport(command=command, steps=steps, dry_run=request.dry_run, details={})


@dataclass
class RestoreRequest:
    dry_run: bool = False


def restore_plaintext_guard(db: OvsDb, request: RestoreRequest) -> ChangeReport:
    """`ovsnet ipsec plaintext restore`: the guard back from OVSDB alone, e.g. at boot before
    ovs-vswitchd re-creates the IPsec tunnels (the kernel forgets the guard at reboot)."""
    steps = restore_guard(db, dry_run=request.dry_run)
    return ChangeReport(
        command="ipsec plaintext restore", steps=steps, dry_run=request.dry_run, details={}
    )


@dataclass
class IpsecShowResult:
    """`ovsnet ipsec show`: ovs-monitor-ipsec's view, PSKs removed."""

    tunnels: list = field(default_factory=list)

    def as_json(self) -> list[dict]:
        return [t.as_json() for t in self.tunnels]

    def render(self, console) -> None:
        if not self.tunnels:
            console.print("ovs-monitor-ipsec: no tunnels configured with IPsec")
        for tunnel in self.tunnels:
            console.print(f"{tunnel.name}: {tunnel.summary()}", markup=False)


def show_monitor(run_dir: str | None = None) -> IpsecShowResult:
    from ovsnet.ipsec_monitor import monitor_tunnels

    return IpsecShowResult(monitor_tunnels(run_dir))
