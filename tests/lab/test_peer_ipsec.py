"""`peer add --ipsec` on a real OVSDB: the OVSDB state of each
mode as ovs-vswitchd.conf.db(5) documents it, fail-closed by default, one method per host, and
the PSK nowhere but in OVSDB: not on any command line, not in any output."""

from __future__ import annotations

import contextlib
import json
import os
import threading
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from ovsnet.pki import cas as pki_cas
from ovsnet.pki import issue as pki_issue
from ovsnet.pki import store as pki_store
from ovsnet.tunnels import port_name

pytestmark = pytest.mark.lab

PSK = "k8Vq2Lm5Xz7Rb3Tn9Wc4Yd6Hf1Gj0Pa2"
PEER_A, PEER_B = "198.51.100.71", "198.51.100.72"


@pytest.fixture(scope="module")
def host(lab_factory_module):
    lab = lab_factory_module(hosts=1)
    host = lab.hosts[0]
    host.ovsnet("init", "--prefix", host.prefix, "--datapath", "netdev", check=True)
    return host


@pytest.fixture
def clean(host):
    """Each test starts and ends with no tunnels and no IPsec settings."""
    yield host
    listed = json.loads(host.ovsnet("--json", "peer", "list", check=True).stdout)
    if listed:
        host.ovsnet("peer", "remove", *[p["remote_ip"] for p in listed], check=True)
    for key in ("certificate", "private_key", "ca_cert", "ipsec_skb_mark", "ovsnet-ipsec-psk",
                "ovsnet-ipsec-psk-file"):  # fmt: skip
        host.vsctl("remove", "Open_vSwitch", ".", "other_config", key)


@pytest.fixture
def psk_file(tmp_path) -> Path:
    path = tmp_path / "psk"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, (PSK + "\n").encode())
    os.close(fd)
    return path


def other_config(host) -> dict[str, str]:
    out = host.vsctl("--format=json", "--columns=other_config", "list", "Open_vSwitch").stdout
    ((cell,),) = json.loads(out)["data"]
    return dict(cell[1])


def option(host, port: str, key: str) -> str | None:
    done = host.vsctl("--if-exists", "get", "Interface", port, f"options:{key}", check=False)
    return done.stdout.strip().strip('"') or None


def test_psk_tunnel_fails_closed_and_never_prints_the_psk(clean, psk_file):
    host = clean
    done = host.ovsnet("--json", "peer", "add", PEER_A, "--ipsec", "--psk-file", str(psk_file))
    assert done.returncode == 0, done.stderr
    assert PSK not in done.stdout + done.stderr
    assert json.loads(done.stdout)["changed"] is True
    (listed,) = json.loads(host.ovsnet("--json", "peer", "list", check=True).stdout)
    port = listed["port"]
    assert port == port_name(IPv4Address(PEER_A))
    assert host.vsctl("get", "Interface", port, "type").stdout.strip() == "gre"
    assert option(host, port, "psk") == PSK
    assert option(host, port, "remote_ip") == PEER_A
    assert other_config(host).get("ipsec_skb_mark") == "0/1"
    assert listed["ipsec"] is True
    assert PSK not in host.ovsnet("--json", "peer", "list", check=True).stdout
    status = host.ovsnet("--json", "status", check=True).stdout
    assert PSK not in status
    again = host.ovsnet("--json", "peer", "add", PEER_A, "--ipsec", "--psk-file", str(psk_file))
    assert json.loads(again.stdout)["changed"] is False


def test_removing_the_last_ipsec_peer_lifts_the_plaintext_drop(clean, psk_file):
    host = clean
    host.ovsnet("peer", "add", PEER_A, "--ipsec", "--psk-file", str(psk_file), check=True)
    refused = host.ovsnet("peer", "add", PEER_B)
    assert refused.returncode == 2 and "drops unencrypted" in refused.stderr
    host.ovsnet("peer", "remove", PEER_A, check=True)
    assert "ipsec_skb_mark" not in other_config(host)
    assert host.ovsnet("peer", "add", PEER_B).returncode == 0


def test_allow_plaintext_leaves_no_skb_mark(clean, psk_file):
    host = clean
    done = host.ovsnet(
        "peer", "add", PEER_A, "--ipsec", "--psk-file", str(psk_file), "--allow-plaintext"
    )
    assert done.returncode == 0, done.stderr
    assert "ipsec_skb_mark" not in other_config(host)


@pytest.mark.parametrize(
    "content, mode, fragment",
    [
        ("short-psk", 0o600, "32"),
        (PSK, 0o644, "chmod 600"),
    ],
)
def test_bad_psk_files_are_refused_without_change(clean, tmp_path, content, mode, fragment):
    host = clean
    path = tmp_path / "bad-psk"
    path.write_text(content + "\n")
    path.chmod(mode)
    columns = "--columns=name,type,options,external_ids"
    before = host.vsctl("--format=json", columns, "list", "Interface").stdout
    done = host.ovsnet("peer", "add", PEER_A, "--ipsec", "--psk-file", str(path))
    assert done.returncode == 2, done.stderr
    assert fragment in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert content not in done.stderr
    assert host.vsctl("--format=json", columns, "list", "Interface").stdout == before


def test_certificate_tunnel_sets_remote_name_and_methods_do_not_mix(clean, tmp_path, psk_file):
    host = clean
    directory = tmp_path / "pki"
    pki_cas.ensure_cas(directory)
    pki_issue.ensure_host_cert(directory, "h1", [host.underlay_ip])
    cert, key = pki_store.host_paths(directory, "h1")
    host.ovsnet(
        "ipsec",
        "cert",
        "--cert",
        str(cert),
        "--key",
        str(key),
        "--ca",
        str(pki_store.ca_cert_path(directory, "ike")),
        "--no-strongswan-cacerts",
        check=True,
    )
    done = host.ovsnet("peer", "add", PEER_A, "--ipsec", "--remote-name", "h2")
    assert done.returncode == 0, done.stderr
    assert option(host, "gre-c6336447", "remote_name") == "h2"
    assert option(host, "gre-c6336447", "psk") is None
    config = other_config(host)
    assert config["certificate"] == str(cert) and config["private_key"] == str(key)
    assert config["ipsec_skb_mark"] == "0/1"
    mixed = host.ovsnet("peer", "add", PEER_B, "--ipsec", "--psk-file", str(psk_file))
    assert mixed.returncode == 2 and "one" in mixed.stderr.lower()
    assert option(host, "gre-c6336448", "remote_ip") is None


def test_psk_appears_on_no_command_line_while_peer_add_runs(clean, psk_file):
    """Sample every process's command line while `peer add --ipsec` runs, and read the logs."""
    host = clean
    seen: set[str] = set()
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            for pid in os.listdir("/proc"):
                if pid.isdigit():
                    with contextlib.suppress(OSError):
                        seen.add(Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace"))

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        peers = [f"198.51.100.{n}" for n in range(100, 140)]
        done = host.ovsnet("peer", "add", *peers, "--ipsec", "--psk-file", str(psk_file))
    finally:
        stop.set()
        sampler.join()
    assert done.returncode == 0, done.stderr
    assert any("peer" in line and "--psk-file" in line for line in seen), "sampler saw nothing"
    assert not [line for line in seen if PSK in line]
    for log in host.rundir.glob("*.log"):
        assert PSK not in log.read_text(errors="replace"), log
    assert option(host, "gre-c6336464", "psk") == PSK


def test_status_explains_ipsec_state_and_a_certificate_about_to_expire(clean, tmp_path):
    """No ovs-monitor-ipsec runs on this host: status must say so per peer, not claim 'yes'."""
    host = clean
    directory = tmp_path / "pki"
    pki_cas.ensure_cas(directory)
    pki_issue.ensure_host_cert(directory, "h1", options=pki_issue.IssueOptions(days=10))
    cert, key = pki_store.host_paths(directory, "h1")
    ca = pki_store.ca_cert_path(directory, "ike")
    host.ovsnet(
        "ipsec",
        "cert",
        "--cert",
        str(cert),
        "--key",
        str(key),
        "--ca",
        str(ca),
        "--no-strongswan-cacerts",
        check=True,
    )
    host.ovsnet("peer", "add", PEER_A, "--ipsec", "--remote-name", "h2", check=True)
    status = json.loads(host.ovsnet("--json", "status", check=True).stdout)
    (peer,) = status["peers"]
    assert peer["ipsec"] is True
    assert peer["ipsec_state"] == "unknown (monitor not running)"
    # No IKE daemon side while IPsec peers are configured: this host is unhealthy.
    assert any("ovs-monitor-ipsec is not running" in p for p in status["problems"])
    assert "expires on" in " ".join(status["warnings"])
    text = host.ovsnet("status", check=True).stdout
    assert "unknown (monitor not running)" in text and "warning:" in text
