"""`ovsnet ipsec crl FILE`: give strongSwan the IKE CA's revocation list.

The CRL is checked against the IKE CA this host trusts (the copy `ovsnet ipsec cert` put in
strongSwan's cacerts, or --ca), so a CRL of another CA, which strongSwan would silently ignore,
is refused.

Place: docs/architecture.md, "Packages and what they own": the services layer.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ovsnet.errors import InvalidInput, NotReady
from ovsnet.report import ChangeReport


@dataclass
class CrlRequest:
    crl: Path
    ca: Path | None = None  # default: the IKE CA in strongSwan's cacerts
    cacerts: Path = Path("/etc/ipsec.d/cacerts")
    crls: Path = Path("/etc/ipsec.d/crls")
    dry_run: bool = False


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InvalidInput(f"cannot read {what} {path}: {exc.strerror}") from None


def install_ike_crl(request: CrlRequest) -> ChangeReport:
    from ovsnet import strongswan
    from ovsnet.pki import checks as pki_checks
    from ovsnet.pki import crl as pki_crl
    from ovsnet.pki import reading as pki_reading
    from ovsnet.pki import store as pki_store
    from ovsnet.services.ipsec import STRONGSWAN_CA_NAME

    crl_data = _read(request.crl, "the CRL")
    ca_path = request.ca or request.cacerts / STRONGSWAN_CA_NAME
    if request.ca is None and not ca_path.exists():
        raise NotReady(
            f"no ovsnet CA in {request.cacerts}", "run `ovsnet ipsec cert` first, or give --ca"
        )
    ca = pki_reading.load_certificate(_read(ca_path, "the CA"), str(ca_path))
    pki_checks.check_purpose(ca, "ike", f"the CA {ca_path}")
    try:
        from cryptography import x509

        crl = x509.load_pem_x509_crl(crl_data)
    except ValueError:
        raise InvalidInput(f"{request.crl} is not a PEM certificate revocation list") from None
    pki_crl.verify_crl(crl, ca, str(request.crl))
    target = request.crls / strongswan.CRL_NAME
    details = {
        "crl": str(target),
        "revoked_count": len(list(crl)),
        "crl_number": pki_crl.crl_number(crl),
    }
    if target.exists() and target.read_bytes() == crl_data:
        return ChangeReport("ipsec crl", [], request.dry_run, details)
    if not request.crls.is_dir():
        raise NotReady(f"{request.crls} does not exist", "install strongSwan (strongswan-starter)")
    steps = [f"copy the CRL to {target} and have strongSwan reread it"]
    if not request.dry_run:
        with pki_store.key_store(target):
            problem = strongswan.install_crl(crl_data, request.crls)
        if problem:
            details["warnings"] = f"{problem}: run `ipsec rereadcrls`"
    return ChangeReport("ipsec crl", steps, request.dry_run, details)
