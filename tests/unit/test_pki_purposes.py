"""Trust per purpose: each certificate works only for what it was issued for.

The X.509 profile (key usage, EKU, basic constraints, lifetimes) checked with `cryptography`;
which consumer accepts what checked with `openssl verify -purpose` against the CA file each
consumer is given. Revocation, renewal, CA rotation, migration from the single CA of older
versions, and the key store's OS errors through the CLI.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509

from ovsnet.cli import main
from ovsnet.errors import InvalidInput
from ovsnet.pki import builders as pki_builders
from ovsnet.pki import cas as pki_cas
from ovsnet.pki import checks as pki_checks
from ovsnet.pki import contents as pki_contents
from ovsnet.pki import crl as pki_crl
from ovsnet.pki import issue as pki_issue
from ovsnet.pki import lifecycle as pki_lifecycle
from ovsnet.pki import profile as pki_profile
from ovsnet.pki import reading as pki_reading
from ovsnet.pki import store as pki_store
from ovsnet.services.ipsec_crl import CrlRequest, install_ike_crl

SERVER_AUTH, CLIENT_AUTH = pki_profile.EKU_SERVER_AUTH, pki_profile.EKU_CLIENT_AUTH
IKE_EKUS = {pki_profile.EKU_IPSEC_IKE, pki_profile.EKU_IKE_INTERMEDIATE}


@pytest.fixture(scope="module")
def fleet(tmp_path_factory) -> tuple[Path, dict[str, Path]]:
    """One PKI with a certificate of every purpose: purpose -> certificate file."""
    directory = tmp_path_factory.mktemp("fleet") / "pki"
    pki_cas.ensure_cas(directory)
    certs = {"ike": pki_issue.ensure_host_cert(directory, "h1", ["198.51.100.1"]).cert_path}
    server, client = pki_issue.ensure_docker_certs(directory, "h1", ["127.0.0.1"])
    certs["docker-server"], certs["docker-client"] = server.cert_path, client.cert_path
    for purpose, name in (("etcd-server", "etcd1"), ("etcd-client", "h1")):
        request = pki_issue.leaf_request(directory, purpose, name, ["127.0.0.1"])
        certs[purpose] = pki_issue.ensure_leaf(directory, request).cert_path
    return directory, certs


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _ekus(cert: x509.Certificate) -> set[str]:
    return set(pki_reading.leaf_ekus(cert) or ())


def _verify(ca: Path, cert: Path, *options: str) -> bool:
    done = subprocess.run(
        ["openssl", "verify", *options, "-CAfile", str(ca), str(cert)],
        capture_output=True,
        text=True,
    )
    return done.returncode == 0


# --- the profile ----------------------------------------------------------------------------


@pytest.mark.parametrize("purpose", pki_profile.PURPOSES)
def test_each_ca_signs_leaves_only_and_lives_five_years(fleet, purpose):
    directory, _ = fleet
    ca = _cert(pki_store.ca_cert_path(directory, purpose))
    constraints = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca and constraints.value.path_length == 0
    usage = ca.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.key_cert_sign and usage.crl_sign and not usage.digital_signature
    lifetime = ca.not_valid_after_utc - ca.not_valid_before_utc
    assert dt.timedelta(days=1824) < lifetime <= dt.timedelta(days=1826)
    # A TLS CA is itself bound to its usage (Go and OpenSSL check it along the chain).
    expected = set() if purpose == "ike" else set(pki_profile.PURPOSE[purpose].ekus)
    assert _ekus(ca) == expected


@pytest.mark.parametrize(
    ("purpose", "ekus"),
    [
        ("ike", IKE_EKUS),
        ("docker-server", {SERVER_AUTH}),
        ("docker-client", {CLIENT_AUTH}),
        ("etcd-server", {SERVER_AUTH}),
        ("etcd-client", {CLIENT_AUTH}),
    ],
)
def test_each_leaf_has_only_its_purposes_usages_and_lives_90_days(fleet, purpose, ekus):
    directory, certs = fleet
    cert = _cert(certs[purpose])
    assert _ekus(cert) == ekus
    constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and not constraints.value.ca
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and not usage.key_cert_sign and not usage.crl_sign
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert dt.timedelta(days=89) < lifetime <= dt.timedelta(days=91)
    assert cert.issuer == _cert(pki_store.ca_cert_path(directory, purpose)).subject
    pki_checks.check_purpose(cert, purpose)


def test_ike_leaves_have_neither_server_nor_client_auth(fleet):
    _, certs = fleet
    assert not _ekus(_cert(certs["ike"])) & {SERVER_AUTH, CLIENT_AUTH}


# Consumer -> (the CA file it is given, the openssl purpose it checks, the purpose it accepts).
CONSUMERS = {
    "dockerd (clients)": ("docker-client", "sslclient", "docker-client"),
    "docker client (server)": ("docker-server", "sslserver", "docker-server"),
    "etcd (clients)": ("etcd-client", "sslclient", "etcd-client"),
    "etcd client (server)": ("etcd-server", "sslserver", "etcd-server"),
}


@pytest.mark.parametrize("consumer", sorted(CONSUMERS))
def test_openssl_as_each_tls_consumer_accepts_only_its_purpose(fleet, consumer):
    directory, certs = fleet
    ca_purpose, check, accepted = CONSUMERS[consumer]
    ca = pki_store.ca_cert_path(directory, ca_purpose)
    verdicts = {p: _verify(ca, certs[p], "-purpose", check) for p in pki_profile.PURPOSES}
    assert verdicts == {p: p == accepted for p in pki_profile.PURPOSES}


def test_ike_trust_accepts_only_ike_certificates(fleet):
    directory, certs = fleet
    ca = pki_store.ca_cert_path(directory, "ike")
    assert {p: _verify(ca, certs[p]) for p in pki_profile.PURPOSES} == {
        p: p == "ike" for p in pki_profile.PURPOSES
    }


def test_even_trusting_every_ca_the_eku_alone_refuses_ike_certificates_for_tls(fleet, tmp_path):
    # Belt and braces: a consumer misconfigured with all CAs still refuses by key usage.
    directory, certs = fleet
    bundle = tmp_path / "all.pem"
    bundle.write_bytes(
        b"".join(pki_store.ca_cert_path(directory, p).read_bytes() for p in pki_profile.PURPOSES)
    )
    assert not _verify(bundle, certs["ike"], "-purpose", "sslclient")
    assert not _verify(bundle, certs["ike"], "-purpose", "sslserver")
    assert not _verify(bundle, certs["docker-server"], "-purpose", "sslclient")
    assert not _verify(bundle, certs["docker-client"], "-purpose", "sslserver")


def test_every_tls_folder_holds_the_ca_its_holder_trusts(fleet):
    directory, certs = fleet
    for purpose in pki_profile.PURPOSES[1:]:
        trusted = certs[purpose].with_name("ca.pem").read_bytes()
        other = pki_profile.PURPOSE[purpose].trusts
        assert trusted == pki_store.ca_cert_path(directory, other).read_bytes()


def test_no_ca_key_lies_outside_the_ca_folders(fleet):
    directory, _ = fleet
    ca_keys = {p.read_bytes() for p in (directory / "ca").glob("*/ca-key.pem")}
    for path in directory.rglob("*.pem"):
        if path.parent.parent != directory / "ca":
            assert path.read_bytes() not in ca_keys, path


def test_check_purpose_names_what_a_certificate_is(fleet):
    _, certs = fleet
    with pytest.raises(InvalidInput, match="Docker API server certificate, not a IPsec IKE"):
        pki_checks.check_purpose(_cert(certs["docker-server"]), "ike")


# --- revocation -----------------------------------------------------------------------------


@pytest.fixture
def pki_dir(tmp_path) -> Path:
    directory = tmp_path / "pki"
    pki_cas.ensure_cas(directory)
    return directory


def _crl(directory: Path, purpose: str = "ike") -> x509.CertificateRevocationList:
    return x509.load_pem_x509_crl(pki_store.crl_path(directory, purpose).read_bytes())


def test_revoke_lists_the_serial_in_a_crl_signed_by_the_ca_that_openssl_enforces(pki_dir):
    host = pki_issue.ensure_host_cert(pki_dir, "h2", options=pki_issue.IssueOptions())
    other = pki_issue.ensure_host_cert(pki_dir, "h3")
    ca = pki_store.ca_cert_path(pki_dir, "ike")
    crl = pki_store.crl_path(pki_dir, "ike")
    assert _verify(ca, host.cert_path, "-crl_check", "-CRLfile", str(crl))
    result = pki_lifecycle.revoke(pki_dir, "ike", "h2")
    assert result.changed and result.number == 2 and result.revoked == 1
    listed = _crl(pki_dir)
    assert listed.is_signature_valid(_cert(ca).public_key())
    assert [e.serial_number for e in listed] == [host.summary.serial]
    assert not _verify(ca, host.cert_path, "-crl_check", "-CRLfile", str(crl))
    assert _verify(ca, other.cert_path, "-crl_check", "-CRLfile", str(crl))
    again = pki_lifecycle.revoke(pki_dir, "ike", "h2")
    assert not again.changed and pki_crl.crl_number(_crl(pki_dir)) == 2


def test_issue_replaces_a_revoked_certificate_and_list_flags_it(pki_dir, capsys):
    first = pki_issue.ensure_host_cert(pki_dir, "h2")
    pki_lifecycle.revoke(pki_dir, "ike", "h2")
    listed = {i.name: i for i in pki_contents.list_certificates(pki_dir) if i.kind == "ike"}
    assert listed["h2"].revoked
    replaced = pki_issue.ensure_host_cert(pki_dir, "h2")
    assert replaced.changed and replaced.summary.serial != first.summary.serial
    assert main(["--json", "pki", "list", "--dir", str(pki_dir)]) == 0
    doc = json.loads(capsys.readouterr().out)
    (h2,) = [c for c in doc["certificates"] if c["name"] == "h2"]
    assert not h2["revoked"] and h2["purpose"] == "ike"


def test_revoking_an_etcd_client_keeps_other_purposes_crls_empty(pki_dir):
    pki_issue.ensure_leaf(pki_dir, pki_issue.leaf_request(pki_dir, "etcd-client", "h1"))
    pki_lifecycle.revoke(pki_dir, "etcd-client", "h1")
    assert len(list(_crl(pki_dir, "etcd-client"))) == 1
    assert len(list(_crl(pki_dir, "ike"))) == 0


def test_cli_revoke_of_an_unknown_name_is_exit_2_one_line(pki_dir, capsys):
    code = main(["pki", "revoke", "nobody", "--dir", str(pki_dir)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "no ike certificate for nobody" in err


def test_serials_print_as_whole_bytes_like_openssl_and_go():
    assert pki_reading.serial_hex(0x7FD4) == "7fd4"
    assert pki_reading.serial_hex(0x7FD4B) == "07fd4b"


def test_crl_refresh_keeps_entries_and_moves_next_update(pki_dir):
    pki_issue.ensure_host_cert(pki_dir, "h2")
    pki_lifecycle.revoke(pki_dir, "ike", "h2")
    later = pki_profile.utcnow() + dt.timedelta(days=200)
    result = pki_crl.refresh_crl(pki_dir, "ike", now=later)
    assert result.revoked == 1 and result.number == 3
    assert _crl(pki_dir).next_update_utc > later + dt.timedelta(days=364)


def test_ipsec_crl_refuses_a_crl_of_another_ca_before_installing(pki_dir, tmp_path):
    other = tmp_path / "other"
    pki_cas.ensure_cas(other)
    crls = tmp_path / "crls"
    crls.mkdir()
    request = CrlRequest(
        crl=pki_store.crl_path(other, "ike"), ca=pki_store.ca_cert_path(pki_dir, "ike"), crls=crls
    )
    with pytest.raises(InvalidInput, match="not issued by the CA"):
        install_ike_crl(request)
    docker_ca = CrlRequest(
        crl=pki_store.crl_path(pki_dir, "docker-client"),
        ca=pki_store.ca_cert_path(pki_dir, "docker-client"),
        crls=crls,
    )
    with pytest.raises(InvalidInput, match="not a IPsec IKE CA"):
        install_ike_crl(docker_ca)
    assert list(crls.iterdir()) == []


# --- renewal and rotation -------------------------------------------------------------------


def test_renew_keeps_subject_and_sans_and_optionally_the_key(pki_dir):
    first, _ = pki_issue.ensure_docker_certs(pki_dir, "h1", ["127.0.0.1"], ["h1.example"])
    key_before = first.key_path.read_bytes()
    same_key = pki_lifecycle.renew(
        pki_dir, "docker-server", "h1", pki_issue.IssueOptions(keep_key=True)
    )
    assert same_key.changed and same_key.key_path.read_bytes() == key_before
    assert same_key.summary.dns_names == ("h1", "h1.example")
    assert same_key.summary.ip_addresses == ("127.0.0.1",)
    assert same_key.summary.serial != first.summary.serial
    new_key = pki_lifecycle.renew(pki_dir, "docker-server", "h1", pki_issue.IssueOptions(days=30))
    assert new_key.key_path.read_bytes() != key_before
    assert stat.S_IMODE(new_key.key_path.stat().st_mode) == 0o600
    assert new_key.summary.days_left(pki_profile.utcnow()) in (29, 30)
    assert not [p for p in pki_dir.rglob("*") if p.name.endswith(".tmp")]


def test_cli_renew_of_a_missing_certificate_is_exit_2(pki_dir, capsys):
    code = main(["pki", "renew", "h9", "--purpose", "etcd-client", "--dir", str(pki_dir)])
    err = capsys.readouterr().err
    assert code == 2 and "pki issue h9 --purpose etcd-client" in err


def test_rotate_ca_replaces_one_purpose_and_issue_follows(pki_dir):
    server, client = pki_issue.ensure_docker_certs(pki_dir, "h1")
    ike_before = pki_store.ca_cert_path(pki_dir, "ike").read_bytes()
    old_client_ca = pki_store.ca_cert_path(pki_dir, "docker-client").read_bytes()
    rotated = pki_lifecycle.rotate_ca(pki_dir, "docker-client")
    assert [i.kind for i in rotated] == ["retired-ca", "ca"]
    assert rotated[0].cert_path.read_bytes() == old_client_ca
    assert pki_store.ca_cert_path(pki_dir, "docker-client").read_bytes() != old_client_ca
    assert pki_store.ca_cert_path(pki_dir, "ike").read_bytes() == ike_before
    server2, client2 = pki_issue.ensure_docker_certs(pki_dir, "h1")
    assert client2.changed  # no longer chains to its CA
    assert not server2.changed  # still valid, but dockerd must now trust the new client CA:
    new_ca = pki_store.ca_cert_path(pki_dir, "docker-client").read_bytes()
    assert (server2.cert_path.parent / "ca.pem").read_bytes() == new_ca


# --- migration from the single CA of older versions -----------------------------------------


def _legacy_pki(directory: Path) -> None:
    """What `ovsnet pki init` + `pki issue h1` wrote before purposes existed."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    key = pki_builders.generate_key()
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "ovsnet"),
            x509.NameAttribute(NameOID.COMMON_NAME, "ovsnet CA"),
        ]
    )
    now = pki_profile.utcnow()
    ca = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(mode=0o700)
    pki_store.write_private_key(directory / pki_store.CA_KEY, key)
    pki_store.write_certificate(directory / pki_store.CA_CERT, ca)
    (directory / "hosts").mkdir(mode=0o700)
    leaf_key = pki_builders.generate_key()
    leaf = pki_builders.build_leaf(ca, key, leaf_key.public_key(), "h1", ["h1"])
    cert, key_path = pki_store.host_paths(directory, "h1")
    pki_store.write_private_key(key_path, leaf_key)
    pki_store.write_certificate(cert, leaf)


def test_init_refuses_a_directory_of_the_older_single_ca_with_a_hint(tmp_path, capsys):
    directory = tmp_path / "pki"
    _legacy_pki(directory)
    code = main(["pki", "init", "--dir", str(directory)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "ovsnet pki migrate" in err
    assert not (directory / "ca").exists()
    code = main(["pki", "issue", "h1", "--dir", str(directory)])
    assert code == 2 and "ovsnet pki migrate" in capsys.readouterr().err


def test_migrate_retires_the_old_ca_and_issue_replaces_the_old_certificates(tmp_path, capsys):
    directory = tmp_path / "pki"
    _legacy_pki(directory)
    old_key = (directory / pki_store.CA_KEY).read_bytes()
    old_leaf = pki_store.host_paths(directory, "h1")[0].read_bytes()
    assert main(["--json", "pki", "migrate", "--dir", str(directory)]) == 0
    kinds = [c["kind"] for c in json.loads(capsys.readouterr().out)["certificates"]]
    assert kinds == ["legacy-ca"] + ["ca"] * 5
    assert not (directory / pki_store.CA_CERT).exists()
    assert (directory / "legacy-ca" / pki_store.CA_KEY).read_bytes() == old_key
    assert stat.S_IMODE((directory / "legacy-ca").stat().st_mode) == 0o700
    issued = pki_issue.ensure_host_cert(directory, "h1")
    assert issued.changed and issued.cert_path.read_bytes() != old_leaf
    pki_checks.check_purpose(_cert(issued.cert_path), "ike")
    assert main(["pki", "migrate", "--dir", str(directory)]) == 0  # nothing left: init
    assert capsys.readouterr().out.count("unchanged") == 5


def test_a_legacy_certificate_has_no_purpose(tmp_path):
    _legacy_pki(tmp_path / "pki")
    cert = _cert(pki_store.host_paths(tmp_path / "pki", "h1")[0])
    with pytest.raises(InvalidInput, match="older ovsnet"):
        pki_checks.check_purpose(cert, "ike")


# --- the key store's errors -----------------------------------------------------------------


def test_cli_init_under_a_file_is_exit_2_one_line(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code = main(["pki", "init", "--dir", str(blocker / "pki")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert str(blocker) in err


def test_cli_as_another_user_on_roots_pki_is_exit_3_one_line(tmp_path):
    directory = tmp_path / "pki"
    pki_cas.ensure_cas(directory)
    os.chmod(tmp_path, 0o755)
    nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    for argv in (["pki", "init"], ["pki", "issue", "h1"], ["pki", "list"]):
        done = subprocess.run(
            [*nobody, sys.executable, "-m", "ovsnet", *argv, "--dir", str(directory)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 3, (argv, done.stderr)
        assert done.stderr.count("\n") == 1 and "permission denied" in done.stderr
    assert not (directory / "hosts").exists()


def test_a_ca_folder_with_only_one_file_is_an_operation_failure(pki_dir):
    shutil.copy(pki_store.ca_cert_path(pki_dir, "ike"), pki_dir / "spare.pem")
    (pki_store.ca_dir(pki_dir, "ike") / pki_store.CA_KEY).unlink()
    with pytest.raises(Exception, match="holds only one of"):
        pki_cas.ensure_cas(pki_dir)


# --- what reaches a host --------------------------------------------------------------------


def test_export_writes_what_a_host_needs_and_no_ca_key(pki_dir, tmp_path, capsys):
    pki_issue.ensure_host_cert(pki_dir, "h1")
    target = tmp_path / "etc-ovsnet" / "ipsec"
    argv = ["--json", "pki", "export", "h1", "--to", str(target), "--dir", str(pki_dir)]
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out)["changed"]
    assert sorted(p.name for p in target.iterdir()) == ["ca.pem", "cert.pem", "crl.pem", "key.pem"]
    assert stat.S_IMODE((target / "key.pem").stat().st_mode) == 0o600
    assert stat.S_IMODE(target.stat().st_mode) == 0o700
    assert (target / "ca.pem").read_bytes() == pki_store.ca_cert_path(pki_dir, "ike").read_bytes()
    ca_keys = {p.read_bytes() for p in (pki_dir / "ca").glob("*/ca-key.pem")}
    assert not ca_keys & {p.read_bytes() for p in target.iterdir()}
    assert main(argv) == 0
    assert not json.loads(capsys.readouterr().out)["changed"]


def test_the_default_pki_is_outside_what_the_companion_mounts():
    from ovsnet.render.host_layout import IPSEC_CONFIG_DIR

    assert Path(IPSEC_CONFIG_DIR) == pki_store.COMPANION_MOUNT
    assert not pki_store.DEFAULT_PKI_DIR.is_relative_to(IPSEC_CONFIG_DIR)


def test_no_ca_is_made_where_the_companion_would_mount_it(tmp_path):
    mount = tmp_path / "etc-ovsnet"
    with pytest.raises(InvalidInput, match="mounted into the companion"):
        pki_cas.check_ca_home(mount / "pki", mount)
    pki_cas.check_ca_home(tmp_path / "elsewhere", mount)
    code = main(["pki", "init", "--dir", "/etc/ovsnet/pki-test-never-made"])
    assert code == 2 and not Path("/etc/ovsnet/pki-test-never-made").exists()


def test_a_pki_at_the_old_default_is_not_used_silently(tmp_path, monkeypatch):
    monkeypatch.delenv("OVSNET_PKI_DIR", raising=False)
    monkeypatch.setattr(pki_store, "DEFAULT_PKI_DIR", tmp_path / "new")
    old = tmp_path / "old"
    old.mkdir()
    with pytest.raises(InvalidInput, match="companion container mounts"):
        pki_store.pki_dir(None, old_default=old)
    assert pki_store.pki_dir(str(old), old_default=old) == old
    (tmp_path / "new").mkdir()
    assert pki_store.pki_dir(None, old_default=old) == tmp_path / "new"


def test_ipsec_crl_without_an_installed_ike_ca_is_not_ready(pki_dir, tmp_path):
    from ovsnet.errors import NotReady

    request = CrlRequest(crl=pki_store.crl_path(pki_dir, "ike"), cacerts=tmp_path, crls=tmp_path)
    with pytest.raises(NotReady, match="no ovsnet CA in") as raised:
        install_ike_crl(request)
    assert "run `ovsnet ipsec cert` first" in raised.value.one_line()


def test_cli_revoke_crl_and_rotate_ca_report_json(pki_dir, capsys):
    pki_issue.ensure_leaf(pki_dir, pki_issue.leaf_request(pki_dir, "etcd-client", "h1"))
    base = ["--json", "pki"]
    where = ["--dir", str(pki_dir)]
    assert main([*base, "revoke", "h1", "--purpose", "etcd-client", *where]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["changed"] and doc["revoked_count"] == 1 and doc["crl_number"] == 2
    assert main([*base, "crl", "--purpose", "etcd-client", *where]) == 0
    assert json.loads(capsys.readouterr().out)["crl_number"] == 3
    assert main([*base, "rotate-ca", "etcd-client", "--dry-run", *where]) == 0
    assert [c["kind"] for c in json.loads(capsys.readouterr().out)["certificates"]] == [
        "retired-ca",
        "ca",
    ]
    assert not list((pki_dir / "ca").glob("etcd-client.retired-*"))
    assert main([*base, "rotate-ca", "etcd-client", *where]) == 0
    capsys.readouterr()
    assert len(list((pki_dir / "ca").glob("etcd-client.retired-*"))) == 1
    assert main(["pki", "rotate-ca", "nonsense", *where]) == 2
