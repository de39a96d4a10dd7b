"""One rule for every secret file (PSK files, private keys, the etcd client key): a regular
file owned by root or the current user, no group or other permission bits; the same refusal."""

from __future__ import annotations

import os
import stat

import pytest

from ovsnet.errors import InvalidInput
from ovsnet.etcd.config import EtcdConfig
from ovsnet.secrets import file_problem, read_secret_file
from ovsnet.services.ipsec import check_certificate_files, read_psk_file

ME = os.geteuid()
PSK = "Zr8v0Kq2xP4mW6yT1bN9cF3hJ5lD7gS0"


@pytest.mark.parametrize(
    "mode, owner, problem",
    [
        (0o600, ME, None),
        (0o400, ME, None),
        (0o600, 0, None),
        (0o640, ME, "group"),
        (0o604, ME, "others"),
        (0o620, ME, "group"),  # group-writable: someone else's key may replace ours
        (0o644, ME, "mode 0644"),
        (0o600, 4242, "uid 4242"),
    ],
)
def test_file_problem(mode, owner, problem):
    found = file_problem(stat.S_IFREG | mode, owner, ME)
    assert (found is None) if problem is None else (problem in found), found


def test_a_directory_is_not_a_secret_file():
    assert "regular file" in file_problem(stat.S_IFDIR | 0o700, ME, ME)


def _loose(tmp_path, name: str, data: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(data)
    os.chmod(path, 0o640)
    return str(path)


def test_every_secret_reader_refuses_a_loose_file_with_the_same_message(tmp_path):
    """PSK file, IPsec private key, etcd client key: one message shape, exit code 2."""
    from ovsnet.pki import cas as pki_cas
    from ovsnet.pki import issue as pki_issue
    from ovsnet.pki import store as pki_store

    ca = tmp_path / "pki"
    pki_cas.ensure_cas(ca)
    issued = pki_issue.ensure_host_cert(ca, "node1")
    key = _loose(tmp_path, "key.pem", issued.key_path.read_bytes())
    readers = {
        "PSK file": lambda: read_psk_file(_loose(tmp_path, "psk", PSK.encode())),
        "private key": lambda: check_certificate_files(
            str(issued.cert_path), key, str(pki_store.ca_cert_path(ca, "ike"))
        ),
        "etcd client key": lambda: EtcdConfig(
            "https://127.0.0.1:2379",
            cert=str(issued.cert_path),
            key=key,
            ca=str(pki_store.ca_cert_path(ca, "ike")),
        ).check(),
    }
    for what, read in readers.items():
        with pytest.raises(InvalidInput) as refused:
            read()
        message = refused.value.one_line()
        assert refused.value.exit_code == 2
        assert message.startswith(f"{what} ") and "is open to its group or to others" in message
        assert "mode 0640" in message and "chmod 600" in message, message


def test_a_tight_file_is_read(tmp_path):
    path = tmp_path / "secret"
    path.write_bytes(b"x")
    os.chmod(path, 0o600)
    assert read_secret_file(path, "secret") == b"x"
