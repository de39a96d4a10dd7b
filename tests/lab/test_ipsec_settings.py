"""`ovsnet ipsec ...` against a real ovsdb-server/ovs-vswitchd (one lab host), checked with
ovs-vsctl: the Open_vSwitch other_config keys the OVS documentation names for each mode, no
change on refusal, idempotence, and no PSK in any output."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ovsnet.pki import cas as pki_cas
from ovsnet.pki import issue as pki_issue
from ovsnet.pki import store as pki_store

pytestmark = pytest.mark.lab

PSK = "Ux3b9Qm7Ld2Rf6Kp1Wz8Tn4Yc5Hs0Gv2"


@pytest.fixture(scope="module")
def host(lab_factory_module):
    lab = lab_factory_module(hosts=1, docker=False)
    return lab.hosts[0]


@pytest.fixture(scope="module")
def ca(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("ipsec-pki") / "pki"
    pki_cas.ensure_cas(directory)
    pki_issue.ensure_host_cert(directory, "h1", ["198.51.100.11"])
    return directory


@pytest.fixture
def clean(host):
    """Each test starts and ends without IPsec settings or extra ports."""
    yield host
    for key in ("certificate", "private_key", "ca_cert", "ipsec_skb_mark", "ovsnet-ipsec-psk",
                "ovsnet-ipsec-psk-file"):  # fmt: skip
        host.vsctl("remove", "Open_vSwitch", ".", "other_config", key)
    host.vsctl("--if-exists", "del-br", "brx")


def other_config(host) -> dict[str, str]:
    out = host.vsctl("--format=json", "--columns=other_config", "list", "Open_vSwitch").stdout
    ((cell,),) = json.loads(out)["data"]
    return dict(cell[1])  # ["map", [[key, value], ...]]


def cert_args(ca: Path, host_name: str = "h1") -> list[str]:
    cert, key = pki_store.host_paths(ca, host_name)
    return ["--cert", str(cert), "--key", str(key), "--ca", str(pki_store.ca_cert_path(ca, "ike"))]


def test_ipsec_cert_sets_the_three_documented_keys_once(clean, ca):
    done = clean.ovsnet("ipsec", "cert", *cert_args(ca), "--no-strongswan-cacerts")
    assert done.returncode == 0, done.stderr
    config = other_config(clean)
    cert, key = pki_store.host_paths(ca, "h1")
    assert config["certificate"] == str(cert)
    assert config["private_key"] == str(key)
    assert config["ca_cert"] == str(pki_store.ca_cert_path(ca, "ike"))
    again = clean.ovsnet("--json", "ipsec", "cert", *cert_args(ca), "--no-strongswan-cacerts")
    assert again.returncode == 0 and json.loads(again.stdout)["changed"] is False


def test_ipsec_cert_copies_the_ca_where_strongswan_loads_it(clean, ca, tmp_path):
    cacerts = tmp_path / "cacerts"
    cacerts.mkdir()
    done = clean.ovsnet("ipsec", "cert", *cert_args(ca), "--strongswan-cacerts", str(cacerts))
    assert done.returncode == 0, done.stderr
    assert (cacerts / "ovsnet-ca.pem").read_bytes() == (
        pki_store.ca_cert_path(ca, "ike")
    ).read_bytes()


def test_ipsec_cert_refuses_a_foreign_certificate_and_changes_nothing(clean, ca, tmp_path):
    other = tmp_path / "other"
    pki_cas.ensure_cas(other)
    foreign_cert, foreign_key = pki_store.host_paths(other, "h1")
    pki_issue.ensure_host_cert(other, "h1")
    before = other_config(clean)
    done = clean.ovsnet(
        "ipsec",
        "cert",
        "--cert",
        str(foreign_cert),
        "--key",
        str(foreign_key),
        "--ca",
        str(pki_store.ca_cert_path(ca, "ike")),
        "--no-strongswan-cacerts",
    )
    assert done.returncode == 2
    assert "not issued by the CA" in done.stderr and "Traceback" not in done.stderr
    assert other_config(clean) == before


def test_ipsec_cert_refused_while_psk_tunnels_exist(clean, ca):
    clean.vsctl("add-br", "brx", "--", "set", "Bridge", "brx", "datapath_type=netdev")
    clean.vsctl(
        "add-port",
        "brx",
        "gre-x",
        "--",
        "set",
        "Interface",
        "gre-x",
        "type=gre",
        "options:remote_ip=198.51.100.99",
        f"options:psk={PSK}",
    )
    done = clean.ovsnet("ipsec", "cert", *cert_args(ca), "--no-strongswan-cacerts")
    assert done.returncode == 2 and "gre-x" in done.stderr and PSK not in done.stderr
    assert "certificate" not in other_config(clean)


def test_psk_set_stores_the_file_path_not_a_second_copy_of_the_psk(clean, tmp_path):
    path = tmp_path / "psk"
    path.write_text(PSK + "\n")
    os.chmod(path, 0o600)
    clean.vsctl("set", "Open_vSwitch", ".", f"other_config:ovsnet-ipsec-psk={PSK}")  # older ovsnet
    done = clean.ovsnet("--json", "ipsec", "psk", "set", "--file", str(path))
    assert done.returncode == 0, done.stderr
    assert PSK not in done.stdout + done.stderr
    assert json.loads(done.stdout)["changed"] is True
    assert other_config(clean)["ovsnet-ipsec-psk-file"] == str(path)
    dump = clean.vsctl("--format=json", "list", "Open_vSwitch").stdout
    assert PSK not in dump, "the PSK is kept only on the tunnels (options:psk), as OVS needs"
    clean.vsctl("add-br", "brx", "--", "set", "Bridge", "brx", "datapath_type=netdev")
    added = clean.ovsnet("peer", "add", "198.51.100.77", "--ipsec", "--bridge", "brx",
                         "--allow-plaintext")  # the host's PSK file  # fmt: skip
    assert added.returncode == 0, added.stderr
    tunnels = clean.vsctl("--format=json", "--columns=options", "list", "Interface").stdout
    assert tunnels.count(PSK) == 1
    again = clean.ovsnet("ipsec", "psk", "set", "--file", str(path))
    assert "nothing to do" in again.stdout
    unset = clean.ovsnet("ipsec", "psk", "unset")
    assert unset.returncode == 0 and "ovsnet-ipsec-psk-file" not in other_config(clean)


def test_psk_set_refused_on_a_host_with_certificates(clean, ca, tmp_path):
    assert clean.ovsnet("ipsec", "cert", *cert_args(ca), "--no-strongswan-cacerts").returncode == 0
    path = tmp_path / "psk"
    path.write_text(PSK)
    os.chmod(path, 0o600)
    done = clean.ovsnet("ipsec", "psk", "set", "--file", str(path))
    assert done.returncode == 2 and "cert --unset" in done.stderr
    assert "ovsnet-ipsec-psk-file" not in other_config(clean)


def test_plaintext_drop_sets_skb_mark_and_allow_removes_it(clean):
    dry = clean.ovsnet("ipsec", "plaintext", "drop", "--dry-run")
    assert dry.returncode == 0 and "ipsec_skb_mark" not in other_config(clean)
    assert clean.ovsnet("ipsec", "plaintext", "drop").returncode == 0
    assert other_config(clean)["ipsec_skb_mark"] == "0/1"
    assert clean.ovsnet("ipsec", "plaintext", "allow").returncode == 0
    assert "ipsec_skb_mark" not in other_config(clean)


def test_plaintext_drop_refused_while_a_plaintext_tunnel_exists(clean):
    clean.vsctl("add-br", "brx", "--", "set", "Bridge", "brx", "datapath_type=netdev")
    clean.vsctl(
        "add-port",
        "brx",
        "gre-y",
        "--",
        "set",
        "Interface",
        "gre-y",
        "type=gre",
        "options:remote_ip=198.51.100.98",
    )
    done = clean.ovsnet("ipsec", "plaintext", "drop")
    assert done.returncode == 2 and "gre-y" in done.stderr
    assert "ipsec_skb_mark" not in other_config(clean)
