"""Changing a PKI that exists: migrating an older ovsnet's all-purpose CA to per-purpose CAs,
rotating one purpose's CA, renewing one certificate, revoking one (its CA's CRL signed anew).

Place: docs/architecture.md, "Layers": facade layer.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

from ovsnet.errors import InvalidInput
from ovsnet.pki.builders import build_ca, generate_key
from ovsnet.pki.cas import CaOptions, check_ca_home, ensure_cas, ensure_one_ca
from ovsnet.pki.crl import SignedCrl, crl_number, load_crl, revoked_serials, sign_crl
from ovsnet.pki.issue import IssueOptions, ensure_leaf, key_type_of, leaf_request
from ovsnet.pki.profile import PURPOSES, check_days, utcnow
from ovsnet.pki.reading import summarize
from ovsnet.pki.store import (
    CA_CERT,
    CA_KEY,
    Issued,
    ca_dir,
    crl_path,
    key_store,
    legacy_ca,
    load_ca,
    read_cert,
    refuse_legacy,
)


def migrate(directory: Path, options: CaOptions = CaOptions()) -> list[Issued]:
    """Retire an older ovsnet's all-purpose CA (moved to legacy-ca/, 0700) and create the
    per-purpose CAs. Leaf files stay where they are; `pki issue` replaces each on its next run
    because it no longer chains to its purpose's CA."""
    with key_store(directory):
        if legacy_ca(directory) is None:
            return ensure_cas(directory, options)
        check_ca_home(directory)
        retired = directory / "legacy-ca"
        if retired.exists():
            raise InvalidInput(
                f"{retired} exists already", "move it away (keep it offline) and run migrate again"
            )
        moved = []
        if (directory / CA_CERT).exists():
            old = summarize(read_cert(directory / CA_CERT))
            moved.append(
                Issued("legacy-ca", "legacy", retired / CA_CERT, retired / CA_KEY, old, True)
            )
        if not options.dry_run:
            retired.mkdir(mode=0o700)
            for name in (CA_CERT, CA_KEY):
                if (directory / name).exists():
                    os.replace(directory / name, retired / name)
        # In a dry run the legacy files are still in place: build the new CAs without the check.
        return moved + [ensure_one_ca(directory, p, options) for p in PURPOSES]


def rotate_ca(directory: Path, purpose: str, options: CaOptions = CaOptions()) -> list[Issued]:
    """Replace one purpose's CA: the old one moves to ca/PURPOSE.retired-STAMP, a new one is
    made. Every certificate of that purpose must then be reissued and its CA file redeployed;
    until a consumer trusts the new CA it refuses the new certificates (fail closed)."""
    now = options.now or utcnow()
    folder = ca_dir(directory, purpose)
    with key_store(directory):
        refuse_legacy(directory)
        check_ca_home(directory)
        old = []
        if folder.exists():
            target = folder.with_name(f"{purpose}.retired-{now:%Y%m%dT%H%M%SZ}")
            if (folder / CA_CERT).exists():
                summary = summarize(read_cert(folder / CA_CERT))
                old.append(
                    Issued("retired-ca", purpose, target / CA_CERT, target / CA_KEY, summary, True)
                )
            if not options.dry_run:
                os.replace(folder, target)
        if options.dry_run:
            new = build_ca(generate_key(options.rsa), purpose, now, check_days(options.days))
            return old + [
                Issued("ca", purpose, folder / CA_CERT, folder / CA_KEY, summarize(new), True)
            ]
        return old + [ensure_one_ca(directory, purpose, options)]


def renew(
    directory: Path, purpose: str, name: str, options: IssueOptions = IssueOptions()
) -> Issued:
    """A new certificate for NAME's existing one of `purpose`: same subject, SANs and key type
    (and the same key with keep_key)."""
    probe = leaf_request(directory, purpose, name)
    with key_store(directory):
        if not probe.cert_path.exists():
            raise InvalidInput(
                f"no {purpose} certificate for {name} in {directory}",
                f"issue one with `ovsnet pki issue {name} --purpose {purpose}`",
            )
        summary = summarize(read_cert(probe.cert_path))
        key_type = key_type_of(read_cert(probe.cert_path).public_key())
    dns = [n for n in summary.dns_names if purpose.endswith("-client") or n != name]
    request = leaf_request(
        directory, purpose, name, summary.ip_addresses, dns, key_type, summary.common_name
    )
    return ensure_leaf(
        directory,
        request,
        IssueOptions(True, options.dry_run, options.days, options.now, options.keep_key),
    )


def revoke(
    directory: Path, purpose: str, name: str, dry_run: bool = False, now: dt.datetime | None = None
) -> SignedCrl:
    """Add NAME's current certificate of `purpose` to its CA's CRL and sign the CRL anew.

    The files stay; `pki issue NAME` replaces a revoked certificate. strongSwan and etcd read
    the CRL (`ovsnet ipsec crl FILE`, etcd --client-crl-file); dockerd cannot, see the notes.
    """
    now = now or utcnow()
    cert_path = leaf_request(directory, purpose, name).cert_path
    with key_store(directory):
        if not cert_path.exists():
            raise InvalidInput(
                f"no {purpose} certificate for {name} in {directory}", "see `ovsnet pki list`"
            )
        cert = read_cert(cert_path)
    ca_cert, _ = load_ca(directory, purpose)
    try:
        cert.verify_directly_issued_by(ca_cert)
    except Exception:  # noqa: BLE001 - InvalidSignature, ValueError, TypeError: not ours
        raise InvalidInput(
            f"{cert_path} was not issued by the current {purpose} CA; its CRL cannot revoke it",
            "a certificate of a retired CA dies with that CA: remove the CA from the consumers",
        ) from None
    if cert.serial_number in revoked_serials(directory, purpose):
        crl = load_crl(crl_path(directory, purpose))
        return SignedCrl(
            purpose,
            crl_path(directory, purpose),
            crl_number(crl),
            len(list(crl)),
            crl.next_update_utc,
            None,
            False,
        )
    return sign_crl(directory, purpose, (cert.serial_number,), now, dry_run)
