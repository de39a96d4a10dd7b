"""Reading PSK files and checking certificate files for `ovsnet ipsec ...` (no OVSDB needed:
files are checked before OVSDB is asked, so these run the CLI against an unreachable --db)."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest

from ovsnet.cli import main
from ovsnet.errors import InvalidInput
from ovsnet.files import write_atomically
from ovsnet.pki import builders as pki_builders
from ovsnet.pki import cas as pki_cas
from ovsnet.pki import issue as pki_issue
from ovsnet.pki import profile as pki_profile
from ovsnet.pki import store as pki_store
from ovsnet.services.ipsec import check_certificate_files, read_psk_file

PSK = "Zr8v0Kq2xP4mW6yT1bN9cF3hJ5lD7gS0"  # 32 characters
NO_DB = "unix:/nonexistent/ovsnet-test-db.sock"


def _write(path: Path, text: str, mode: int) -> Path:
    path.write_text(text)
    os.chmod(path, mode)
    return path


def test_psk_file_trailing_newline_is_stripped(tmp_path):
    assert read_psk_file(_write(tmp_path / "psk", PSK + "\n", 0o600)).psk.value == PSK


def test_world_readable_psk_file_is_refused(tmp_path):
    with pytest.raises(InvalidInput) as raised:
        read_psk_file(_write(tmp_path / "psk", PSK, 0o644))
    assert "chmod 600" in raised.value.one_line() and PSK not in raised.value.one_line()
    assert "mode 0644" in raised.value.one_line()


def test_group_readable_psk_file_is_refused_like_every_other_secret_file(tmp_path):
    with pytest.raises(InvalidInput, match="open to its group or to others"):
        read_psk_file(_write(tmp_path / "psk", PSK, 0o640))


def test_short_psk_file_is_refused(tmp_path):
    with pytest.raises(InvalidInput, match="at least 32"):
        read_psk_file(_write(tmp_path / "psk", "short\n", 0o600))


def test_missing_psk_file_and_directory_are_usage_errors(tmp_path):
    with pytest.raises(InvalidInput):
        read_psk_file(tmp_path / "none")
    with pytest.raises(InvalidInput, match="regular file"):
        read_psk_file(tmp_path)


@pytest.fixture
def ca_dir(tmp_path) -> Path:
    directory = tmp_path / "pki"
    pki_cas.ensure_cas(directory)
    return directory


def _files(issued: pki_store.Issued, ca_dir: Path) -> tuple[str, str, str]:
    return str(issued.cert_path), str(issued.key_path), str(pki_store.ca_cert_path(ca_dir, "ike"))


def test_good_host_certificate_passes_with_absolute_paths_and_identity(ca_dir, monkeypatch):
    issued = pki_issue.ensure_host_cert(ca_dir, "node1")
    monkeypatch.chdir(ca_dir)
    checked = check_certificate_files(
        "hosts/node1-cert.pem", "hosts/node1-key.pem", "ca/ike/ca-cert.pem"
    )
    assert checked.identity == "node1"
    assert checked.paths.certificate == str(issued.cert_path)
    assert Path(checked.paths.private_key).is_absolute()


def test_certificate_of_another_ca_is_refused(ca_dir, tmp_path):
    other = tmp_path / "other"
    pki_cas.ensure_cas(other)
    foreign = pki_issue.ensure_host_cert(other, "node1")
    with pytest.raises(InvalidInput, match="not issued by the CA"):
        check_certificate_files(*_files(foreign, ca_dir))


def test_expired_certificate_is_refused(ca_dir):
    issued = pki_issue.ensure_host_cert(ca_dir, "node1")
    later = pki_profile.utcnow() + dt.timedelta(days=900)
    with pytest.raises(InvalidInput, match="not valid now"):
        check_certificate_files(*_files(issued, ca_dir), now=later)


def test_key_of_another_certificate_is_refused(ca_dir):
    one = pki_issue.ensure_host_cert(ca_dir, "node1")
    two = pki_issue.ensure_host_cert(ca_dir, "node2")
    with pytest.raises(InvalidInput, match="does not belong"):
        check_certificate_files(
            str(one.cert_path), str(two.key_path), str(pki_store.ca_cert_path(ca_dir, "ike"))
        )


def test_a_docker_server_certificate_is_refused_as_an_ike_identity(ca_dir):
    # Same host name, RSA key, its own CA given as --ca: still not an IKE certificate.
    request = pki_issue.leaf_request(ca_dir, "docker-server", "node1", key_type="rsa")
    issued = pki_issue.ensure_leaf(ca_dir, request)
    server_ca = str(pki_store.ca_cert_path(ca_dir, "docker-server"))
    with pytest.raises(InvalidInput, match="Docker API server CA, not a IPsec IKE CA"):
        check_certificate_files(str(issued.cert_path), str(issued.key_path), server_ca)
    ike_ca = str(pki_store.ca_cert_path(ca_dir, "ike"))
    with pytest.raises(InvalidInput, match="not issued by the CA"):
        check_certificate_files(str(issued.cert_path), str(issued.key_path), ike_ca)


def test_a_certificate_of_an_older_all_purpose_ca_passes_with_a_warning(tmp_path):
    old_key = pki_builders.generate_key()
    old_ca = _legacy_ca(old_key)
    host_key = pki_builders.generate_key(rsa=True)
    cert = pki_builders.build_leaf(old_ca, old_key, host_key.public_key(), "node1", ["node1"])
    for path, data, mode in (
        (tmp_path / "ca.pem", pki_store.pem_certificate(old_ca), 0o644),
        (tmp_path / "cert.pem", pki_store.pem_certificate(cert), 0o644),
    ):
        write_atomically(path, data, mode)
    pki_store.write_private_key(tmp_path / "key.pem", host_key)
    checked = check_certificate_files(
        *(str(tmp_path / n) for n in ("cert.pem", "key.pem", "ca.pem"))
    )
    assert any("pki migrate" in w for w in checked.warnings)


def _legacy_ca(key):
    """A CA as ovsnet made before purposes existed: O=ovsnet, CN=ovsnet CA, no OU."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "ovsnet"),
            x509.NameAttribute(NameOID.COMMON_NAME, "ovsnet CA"),
        ]
    )
    now = pki_profile.utcnow()
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(key, hashes.SHA256())
    )


def test_world_readable_key_is_refused(ca_dir):
    issued = pki_issue.ensure_host_cert(ca_dir, "node1")
    os.chmod(issued.key_path, 0o644)
    with pytest.raises(InvalidInput, match="open to its group or to others"):
        check_certificate_files(*_files(issued, ca_dir))


def test_ecdsa_host_key_is_refused_for_strongswan(ca_dir):
    issued = pki_issue.ensure_host_cert(ca_dir, "node1", key_type="ecdsa")
    with pytest.raises(InvalidInput) as raised:
        check_certificate_files(*_files(issued, ca_dir))
    assert "--key-type rsa" in raised.value.one_line()


def _cli(capsys, *argv) -> tuple[int, str, str]:
    code = main(["--db", NO_DB, *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_ipsec_cert_rejects_a_foreign_certificate_before_touching_ovsdb(
    ca_dir, tmp_path, capsys
):
    other = tmp_path / "other"
    pki_cas.ensure_cas(other)
    cert, key, _ = _files(pki_issue.ensure_host_cert(other, "node1"), other)
    code, out, err = _cli(
        capsys,
        "ipsec",
        "cert",
        "--cert",
        cert,
        "--key",
        key,
        "--ca",
        str(pki_store.ca_cert_path(ca_dir, "ike")),
        "--no-strongswan-cacerts",
    )
    assert code == 2 and out == ""
    assert "not issued by the CA" in err and err.count("\n") == 1


def test_cli_ipsec_psk_set_refuses_a_world_readable_file(tmp_path, capsys):
    path = _write(tmp_path / "psk", PSK, 0o644)
    code, out, err = _cli(capsys, "ipsec", "psk", "set", "--file", str(path))
    assert code == 2 and PSK not in out + err
    assert "open to its group or to others" in err
