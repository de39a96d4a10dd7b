"""ovsnet's private CA: certificates as IKE and TLS need them, keys kept secret."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import stat
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier
from hypothesis import given, settings
from hypothesis import strategies as st

from ovsnet.cli import main
from ovsnet.errors import InvalidInput, NotReady
from ovsnet.pki import builders as pki_builders
from ovsnet.pki import cas as pki_cas
from ovsnet.pki import checks as pki_checks
from ovsnet.pki import contents as pki_contents
from ovsnet.pki import issue as pki_issue
from ovsnet.pki import profile as pki_profile
from ovsnet.pki import reading as pki_reading
from ovsnet.pki import store as pki_store

IKE_EKU = ObjectIdentifier("1.3.6.1.5.5.8.2.2")
IPSEC_IKE_EKU = ObjectIdentifier("1.3.6.1.5.5.7.3.17")


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _openssl_verify(ca: Path, cert: Path, *options: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["openssl", "verify", *options, "-CAfile", str(ca), str(cert)],
        capture_output=True,
        text=True,
    )


def _ike_ca(directory: Path) -> Path:
    return pki_store.ca_cert_path(directory, "ike")


@pytest.fixture
def pki_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "pki"
    pki_cas.ensure_cas(directory)
    return directory


def test_init_creates_one_ecdsa_ca_per_purpose_with_0600_keys_even_under_a_permissive_umask(
    tmp_path,
):
    old = os.umask(0)
    try:
        issued = pki_cas.ensure_cas(tmp_path / "pki")
    finally:
        os.umask(old)
    assert [i.name for i in issued] == list(pki_profile.PURPOSES)
    assert _mode(tmp_path / "pki") == 0o700
    for item in issued:
        assert item.changed
        assert _mode(item.key_path) == 0o600
        assert _mode(item.key_path.parent) == 0o700
        ca = _cert(item.cert_path)
        assert isinstance(ca.public_key(), ec.EllipticCurvePublicKey)
        assert ca.public_key().curve.name == "secp256r1"
        assert ca.subject.rfc4514_string() == f"CN=ovsnet {item.name} CA,OU={item.name},O=ovsnet"
        assert (item.cert_path.parent / "crl.pem").exists()


def test_init_twice_keeps_the_existing_cas(pki_dir):
    files = sorted((pki_dir / "ca").rglob("*.pem"))
    before = [f.read_bytes() for f in files]
    again = pki_cas.ensure_cas(pki_dir, pki_cas.CaOptions(rsa=True))
    assert not any(i.changed for i in again)
    assert [f.read_bytes() for f in files] == before


def test_rsa_ca_issues_rsa_3072_keys_for_hosts_and_docker(tmp_path):
    directory = tmp_path / "pki"
    cas = pki_cas.ensure_cas(directory, pki_cas.CaOptions(rsa=True))
    host = pki_issue.ensure_host_cert(directory, "node1")
    server, client = pki_issue.ensure_docker_certs(directory, "node1")
    for issued in (*cas, host, server, client):
        key = _cert(issued.cert_path).public_key()
        assert isinstance(key, rsa.RSAPublicKey)
        assert key.key_size == 3072
    assert _openssl_verify(_ike_ca(directory), host.cert_path).returncode == 0


def test_ecdsa_ca_issues_rsa_host_keys_for_strongswan_and_ecdsa_docker_keys(pki_dir):
    # ovs-monitor-ipsec hands strongSwan the host key as `: RSA <file>`.
    host = pki_issue.ensure_host_cert(pki_dir, "node1")
    assert isinstance(_cert(host.cert_path).public_key(), rsa.RSAPublicKey)
    assert b"RSA PRIVATE KEY" in host.key_path.read_bytes()
    server, _ = pki_issue.ensure_docker_certs(pki_dir, "node1")
    assert isinstance(_cert(server.cert_path).public_key(), ec.EllipticCurvePublicKey)
    result = _openssl_verify(_ike_ca(pki_dir), host.cert_path)
    assert result.returncode == 0, result.stderr


def test_host_key_type_can_be_ecdsa_and_a_type_change_reissues(pki_dir):
    rsa_cert = pki_issue.ensure_host_cert(pki_dir, "node1")
    ecdsa = pki_issue.ensure_host_cert(pki_dir, "node1", key_type="ecdsa")
    assert ecdsa.changed
    assert isinstance(_cert(ecdsa.cert_path).public_key(), ec.EllipticCurvePublicKey)
    assert ecdsa.summary.fingerprint_sha256 != rsa_cert.summary.fingerprint_sha256
    with pytest.raises(InvalidInput):
        pki_issue.ensure_host_cert(pki_dir, "node1", key_type="dsa")


def test_host_certificate_has_subject_san_and_only_ike_usages(pki_dir):
    issued = pki_issue.ensure_host_cert(pki_dir, "node-1.example", ["198.51.100.2", "2001:db8::2"])
    cert = _cert(issued.cert_path)
    assert cert.version == x509.Version.v3
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "ovsnet"
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "node-1.example"
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["node-1.example"]
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == [
        "198.51.100.2",
        "2001:db8::2",
    ]
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(eku) == {IPSEC_IKE_EKU, IKE_EKU}  # neither serverAuth nor clientAuth
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert _mode(issued.key_path) == 0o600


def test_host_certificate_chain_verifies_with_openssl(pki_dir):
    issued = pki_issue.ensure_host_cert(pki_dir, "node1")
    result = _openssl_verify(_ike_ca(pki_dir), issued.cert_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith(": OK")


def test_openssl_rejects_a_host_certificate_against_a_foreign_ca(pki_dir, tmp_path):
    pki_cas.ensure_cas(tmp_path / "other")
    issued = pki_issue.ensure_host_cert(pki_dir, "node1")
    assert _openssl_verify(_ike_ca(tmp_path / "other"), issued.cert_path).returncode != 0


def test_ovs_monitor_ipsec_extracts_the_host_name_from_the_subject(pki_dir):
    # ovs-monitor-ipsec's _get_cn_from_cert: openssl -nameopt RFC2253, then `CN=(.+?),`.
    issued = pki_issue.ensure_host_cert(pki_dir, "node1")
    out = subprocess.run(
        [
            "openssl",
            "x509",
            "-noout",
            "-subject",
            "-nameopt",
            "RFC2253",
            "-in",
            str(issued.cert_path),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert re.search(r"CN=(.+?),", out).group(1) == "node1"
    assert pki_checks.ike_identity(issued.summary) == "node1"


_LABELS = st.from_regex(r"[A-Za-z0-9]([A-Za-z0-9-]{0,10}[A-Za-z0-9])?", fullmatch=True)
_HOSTS = st.lists(_LABELS, min_size=1, max_size=4).map(".".join).filter(lambda h: len(h) <= 64)


@settings(max_examples=40, deadline=None)
@given(_HOSTS)
def test_every_generated_host_name_survives_as_cn_and_san(host):
    summary = pki_reading.summarize(
        pki_builders.build_leaf(_CA_CERT, _CA_KEY, _CA_KEY.public_key(), host, [host])
    )
    assert pki_profile.check_host_name(host) == host
    assert pki_checks.ike_identity(summary) == host
    assert re.search(r"CN=(.+?),", summary.subject).group(1) == host


@settings(max_examples=200)
@given(st.text(max_size=70))
def test_any_accepted_text_needs_no_escaping_in_rfc2253(text):
    try:
        pki_profile.check_host_name(text)
    except InvalidInput:
        return
    assert re.fullmatch(r"[A-Za-z0-9.-]{1,64}", text)


_CA_KEY = pki_builders.generate_key()
_CA_CERT = pki_builders.build_ca(_CA_KEY)


@pytest.mark.parametrize(
    "host",
    ["", "-node", "node-", "a,b", "CN=x", "node 1", "nöde", "a" * 65, "a..b", "node/1", "node\n"],
)
def test_unusable_host_names_are_rejected(host):
    with pytest.raises(InvalidInput):
        pki_profile.check_host_name(host)


def test_bare_cn_certificate_is_not_an_ike_identity():
    key = pki_builders.generate_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "node1")])
    now = pki_profile.utcnow()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(_CA_CERT.subject)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(_CA_KEY, hashes.SHA256())
    )
    with pytest.raises(InvalidInput, match="bare CN"):
        pki_checks.ike_identity(pki_reading.summarize(cert))


def test_issue_again_keeps_the_certificate_and_renew_replaces_it(pki_dir):
    first = pki_issue.ensure_host_cert(pki_dir, "node1", ["198.51.100.2"])
    again = pki_issue.ensure_host_cert(pki_dir, "node1", ["198.51.100.2"])
    assert first.changed and not again.changed
    assert again.summary.fingerprint_sha256 == first.summary.fingerprint_sha256
    renewed = pki_issue.ensure_host_cert(
        pki_dir, "node1", ["198.51.100.2"], pki_issue.IssueOptions(renew=True)
    )
    assert renewed.changed
    assert renewed.summary.fingerprint_sha256 != first.summary.fingerprint_sha256


def test_issue_with_other_addresses_reissues(pki_dir):
    first = pki_issue.ensure_host_cert(pki_dir, "node1", ["198.51.100.2"])
    moved = pki_issue.ensure_host_cert(pki_dir, "node1", ["198.51.100.3"])
    assert moved.changed
    assert moved.summary.ip_addresses == ("198.51.100.3",)
    assert moved.summary.fingerprint_sha256 != first.summary.fingerprint_sha256


def test_issue_reissues_a_certificate_close_to_expiry(pki_dir):
    short = pki_issue.ensure_host_cert(pki_dir, "node1", options=pki_issue.IssueOptions(days=10))
    assert short.summary.expires_soon(pki_profile.utcnow())
    assert pki_issue.ensure_host_cert(pki_dir, "node1").changed


def test_dry_run_writes_nothing(tmp_path):
    directory = tmp_path / "pki"
    issued = pki_cas.ensure_cas(directory, pki_cas.CaOptions(dry_run=True))
    assert all(i.changed for i in issued)
    assert not directory.exists()
    pki_cas.ensure_cas(directory)
    host = pki_issue.ensure_host_cert(
        directory, "node1", options=pki_issue.IssueOptions(dry_run=True)
    )
    assert host.changed and not (directory / "hosts").exists()


def test_issue_without_a_ca_is_not_ready(tmp_path):
    with pytest.raises(NotReady) as raised:
        pki_issue.ensure_host_cert(tmp_path / "none", "node1")
    assert "ovsnet pki init" in raised.value.one_line()


def test_no_temporary_files_are_left_behind(pki_dir):
    pki_issue.ensure_host_cert(pki_dir, "node1")
    pki_issue.ensure_docker_certs(pki_dir, "node1", ["127.0.0.1"])
    assert not [p for p in pki_dir.rglob("*") if p.name.endswith(".tmp")]


def test_docker_certificates_have_server_and_client_usages_and_trust_the_other_side(pki_dir):
    server, client = pki_issue.ensure_docker_certs(
        pki_dir, "node1", ["127.0.0.1", "198.51.100.2"], ["node1.example"]
    )
    for issued in (server, client):
        directory = issued.cert_path.parent
        assert {p.name for p in directory.iterdir()} == {"ca.pem", "cert.pem", "key.pem"}
        assert _mode(directory / "key.pem") == 0o600
        # ca.pem is the CA of the other side, never the certificate's own issuer.
        assert _openssl_verify(directory / "ca.pem", directory / "cert.pem").returncode != 0
    assert _cert(server.cert_path.parent / "ca.pem") == _cert(
        pki_store.ca_cert_path(pki_dir, "docker-client")
    )
    assert _cert(client.cert_path.parent / "ca.pem") == _cert(
        pki_store.ca_cert_path(pki_dir, "docker-server")
    )
    server_cert = _cert(server.cert_path)
    san = server_cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["node1", "node1.example"]
    assert [str(i) for i in san.get_values_for_type(x509.IPAddress)] == [
        "127.0.0.1",
        "198.51.100.2",
    ]
    eku = server_cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    eku = _cert(client.cert_path).extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]


def test_verify_chain_accepts_a_current_certificate_of_the_ca(pki_dir):
    issued = pki_issue.ensure_host_cert(pki_dir, "node1")
    summary = pki_checks.verify_chain(_cert(issued.cert_path), _cert(_ike_ca(pki_dir)))
    assert summary.common_name == "node1"


def test_verify_chain_rejects_a_certificate_from_another_ca(pki_dir, tmp_path):
    other = tmp_path / "other"
    pki_cas.ensure_cas(other)
    foreign = pki_issue.ensure_host_cert(other, "node1")
    with pytest.raises(InvalidInput, match="not issued by the CA"):
        pki_checks.verify_chain(_cert(foreign.cert_path), _cert(_ike_ca(pki_dir)))


def test_verify_chain_rejects_an_expired_and_a_not_yet_valid_certificate(pki_dir):
    ca_cert, ca_key = pki_store.load_ca(pki_dir, "ike")
    key = pki_builders.generate_key()
    past = pki_profile.utcnow() - dt.timedelta(days=100)
    expired = pki_builders.build_leaf(
        ca_cert, ca_key, key.public_key(), "node1", ["node1"], now=past, days=30
    )
    with pytest.raises(InvalidInput, match="not valid now"):
        pki_checks.verify_chain(expired, ca_cert)
    future = pki_builders.build_leaf(
        ca_cert,
        ca_key,
        key.public_key(),
        "node1",
        ["node1"],
        now=pki_profile.utcnow() + dt.timedelta(days=10),
    )
    with pytest.raises(InvalidInput, match="not valid now"):
        pki_checks.verify_chain(future, ca_cert)


def test_verify_chain_rejects_a_leaf_given_as_ca(pki_dir):
    issued = pki_issue.ensure_host_cert(pki_dir, "node1")
    leaf = _cert(issued.cert_path)
    with pytest.raises(InvalidInput, match="not a CA"):
        pki_checks.verify_chain(leaf, leaf)


def test_key_must_match_certificate(pki_dir):
    issued = pki_issue.ensure_host_cert(pki_dir, "node1")
    cert = _cert(issued.cert_path)
    pki_checks.check_key_matches(cert, pki_reading.load_private_key(issued.key_path.read_bytes()))
    with pytest.raises(InvalidInput, match="does not belong"):
        pki_checks.check_key_matches(cert, pki_builders.generate_key())


def test_list_flags_certificates_expiring_within_30_days(pki_dir):
    pki_issue.ensure_host_cert(pki_dir, "soon", options=pki_issue.IssueOptions(days=20))
    pki_issue.ensure_host_cert(pki_dir, "later", options=pki_issue.IssueOptions(days=200))
    now = pki_profile.utcnow()
    listed = {i.name: i for i in pki_contents.list_certificates(pki_dir)}
    assert set(listed) == {*pki_profile.PURPOSES, "soon", "later"}
    assert listed["soon"].summary.expires_soon(now)
    assert not listed["later"].summary.expires_soon(now)
    assert not listed["ike"].summary.expires_soon(now)


# --- through the CLI ------------------------------------------------------------------------


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_init_issue_list_json_holds_no_key_material(tmp_path, capsys):
    directory = str(tmp_path / "pki")
    code, out, _ = _run(capsys, "--json", "pki", "init", "--dir", directory)
    assert code == 0 and json.loads(out)["changed"] is True
    code, out, _ = _run(
        capsys, "--json", "pki", "issue", "node1", "--ip", "198.51.100.2", "--dir", directory
    )
    assert code == 0
    doc = json.loads(out)
    assert doc["certificates"][0]["common_name"] == "node1"
    code, out, _ = _run(
        capsys, "--json", "pki", "issue-docker", "node1", "--ip", "127.0.0.1", "--dir", directory
    )
    assert code == 0 and len(json.loads(out)["certificates"]) == 2
    code, out, _ = _run(capsys, "--json", "pki", "list", "--dir", directory)
    assert code == 0
    kinds = sorted(c["kind"] for c in json.loads(out)["certificates"])
    assert kinds == ["ca"] * 5 + ["docker-client", "docker-server", "ike"]
    assert "PRIVATE KEY" not in out
    for key in Path(directory).rglob("*key.pem"):
        body = key.read_text().splitlines()[1]
        assert body not in out


def test_cli_issue_twice_says_unchanged(tmp_path, capsys):
    directory = str(tmp_path / "pki")
    _run(capsys, "pki", "init", "--dir", directory)
    _run(capsys, "pki", "issue", "node1", "--dir", directory)
    code, out, _ = _run(capsys, "pki", "issue", "node1", "--dir", directory)
    assert code == 0 and out.startswith("unchanged:")


def test_cli_issue_without_ca_exits_3_with_one_line(tmp_path, capsys):
    code, out, err = _run(capsys, "pki", "issue", "node1", "--dir", str(tmp_path / "none"))
    assert code == 3
    assert err.count("\n") == 1 and "pki init" in err and "Traceback" not in err


def test_cli_bad_host_or_ip_exits_2_and_writes_nothing(tmp_path, capsys):
    directory = tmp_path / "pki"
    _run(capsys, "pki", "init", "--dir", str(directory))
    code, _, err = _run(capsys, "pki", "issue", "a,b", "--dir", str(directory))
    assert code == 2 and err.count("\n") == 1
    code, _, err = _run(
        capsys, "pki", "issue", "node1", "--ip", "300.1.1.1", "--dir", str(directory)
    )
    assert code == 2 and "300.1.1.1" in err
    assert not (directory / "hosts").exists()


def test_cli_uses_ovsnet_pki_dir_from_the_environment(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("OVSNET_PKI_DIR", str(tmp_path / "envpki"))
    code, _, _ = _run(capsys, "pki", "init")
    assert code == 0 and _ike_ca(tmp_path / "envpki").exists()
