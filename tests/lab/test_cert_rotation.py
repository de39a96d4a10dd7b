"""Certificate renewal and IKE CA rotation on two netns lab hosts (real strongSwan, IKE only).

- Renewal in place (`pki renew` writes the same paths): `ovsnet ipsec cert` with the same files
  notices that charon authenticates with an older certificate and reloads it; the established
  IKE SA stays up, and the next IKE_AUTH presents the new certificate (the old one is revoked
  on the peer, so an IKE SA with it would be refused).
- CA rotation, the procedure of docs/security.md "IKE CA rotation" run once: trust the new CA
  beside the old one everywhere, switch each host to its new certificate, then drop the old CA;
  IKE establishes after every step.

The plaintext guard is not touched by either (the tunnels stay IPsec tunnels); the PSK rotation
test samples it during the change (test_psk_rotation.py).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from ovsnet.pki import cas as pki_cas
from ovsnet.pki import issue as pki_issue
from ovsnet.pki import lifecycle as pki_lifecycle
from ovsnet.pki import store as pki_store
from tests.lab.ipsec_harness import describe, ike_pair
from tests.lab.test_ike_netns import add_ipsec_tunnel, install_crl, port_name
from tests.lab.test_psk_rotation import bring_up, current_conn, reestablish

pytestmark = [pytest.mark.lab, pytest.mark.slow]

CACERTS = "/etc/ipsec.d/cacerts"


@pytest.fixture(scope="module")
def lab(lab_factory_module):
    return lab_factory_module(hosts=2, docker=False)


@pytest.fixture
def hosts(lab):
    try:
        with ike_pair(lab) as pair:
            yield pair
    finally:
        for host in lab.hosts:  # what `ipsec cert` adds beside OVSDB: the plaintext guard
            host.run(["nft", "delete", "table", "inet", "ovsnet"], check=False)


@pytest.fixture
def pki(tmp_path) -> Path:
    directory = tmp_path / "pki"
    pki_cas.ensure_cas(directory)
    for name in ("h1", "h2"):
        pki_issue.ensure_host_cert(directory, name)
    return directory


def deploy(ike, pki: Path, name: str, target: Path) -> dict:
    """Copy NAME's certificate, key and the IKE CA to target (as an admin deploys them) and
    run `ovsnet ipsec cert` with those files; its JSON report."""
    target.mkdir(parents=True, exist_ok=True)
    cert, key = pki_store.host_paths(pki, name)
    shutil.copyfile(cert, target / "cert.pem")
    shutil.copyfile(pki_store.ca_cert_path(pki, "ike"), target / "ca.pem")
    fd = os.open(target / "key.pem", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.write(fd, key.read_bytes())
    os.close(fd)
    done = ike.ovsnet("--json", "ipsec", "cert", "--cert", str(target / "cert.pem"), "--key",
                      str(target / "key.pem"), "--ca", str(target / "ca.pem"))  # fmt: skip
    assert done.returncode == 0, done.stderr + describe(ike)
    return json.loads(done.stdout)


def mesh(hosts, pki: Path, tmp_path: Path) -> tuple[str, str]:
    (lab1, ike1), (lab2, ike2) = hosts
    deploy(ike1, pki, "h1", tmp_path / "h1")
    deploy(ike2, pki, "h2", tmp_path / "h2")
    port1 = add_ipsec_tunnel(ike1, lab2, "--remote-name", "h2")
    port2 = add_ipsec_tunnel(ike2, lab1, "--remote-name", "h1")
    ike1.wait_for_connection(port1, "public key")
    ike2.wait_for_connection(port2, "public key")
    bring_up(ike1, port1)
    return port1, port2


def test_a_certificate_renewed_in_place_is_presented_without_dropping_the_sa(hosts, pki, tmp_path):
    (_, ike1), (_, ike2) = hosts
    port1, _ = mesh(hosts, pki, tmp_path)
    conn, _ = current_conn(ike1, port1)
    (sa_before,) = [sa.split(":")[0] for sa in ike1.ike_sas() if "ESTABLISHED" in sa]

    # The admin revokes h2's certificate and renews it; the new files replace the deployed
    # ones at the same paths. h1 loads the CRL: the old certificate is no longer good.
    pki_lifecycle.revoke(pki, "ike", "h2")
    pki_lifecycle.renew(pki, "ike", "h2")
    install_crl(ike1, pki)
    started = time.monotonic()
    report = deploy(ike2, pki, "h2", tmp_path / "h2")
    reload_s = time.monotonic() - started
    assert any("renewed certificate" in step for step in report["steps"]), report
    # Established SAs are not torn down by the reload.
    assert ike1.established(conn), describe(ike1)
    assert [sa.split(":")[0] for sa in ike1.ike_sas() if "ESTABLISHED" in sa] == [sa_before]
    assert deploy(ike2, pki, "h2", tmp_path / "h2")["steps"] == []  # idempotent

    # A new IKE SA: h2 now presents the renewed certificate, which h1's CRL does not list.
    started = time.monotonic()
    reestablish(ike1, port1)
    ike_s = time.monotonic() - started
    print(f"certificate renewal in place: ipsec cert {reload_s:.2f} s (SA kept), "
          f"new IKE SA with the renewed certificate {ike_s:.2f} s")  # fmt: skip
    assert "certificate was revoked" not in ike1.charon_log(), describe(ike1)


def cacerts(ike, *shell: str) -> None:
    done = ike.run(["sh", "-c", " && ".join(shell)])
    assert done.returncode == 0, done.stderr


def test_ike_ca_rotation_procedure_keeps_every_step_authenticated(hosts, pki, tmp_path):
    (_, ike1), (_, ike2) = hosts
    port1, port2 = mesh(hosts, pki, tmp_path)
    old_ca = pki_store.ca_cert_path(pki, "ike").read_bytes()
    pki_lifecycle.rotate_ca(pki, "ike")
    for name in ("h1", "h2"):
        pki_issue.ensure_host_cert(pki, name)  # reissued: the old ones do not chain any more
    new_ca = tmp_path / "new-ca.pem"
    shutil.copyfile(pki_store.ca_cert_path(pki, "ike"), new_ca)
    assert new_ca.read_bytes() != old_ca

    # Stage 1, every host: trust the new CA as well.
    for ike in (ike1, ike2):
        cacerts(ike, f"cp {new_ca} {CACERTS}/ovsnet-ca-next.pem", "ipsec rereadcacerts")
    reestablish(ike1, port1)

    # Stage 2, host by host: keep the old CA as "previous", then switch to the new
    # certificate and CA. Between the two hosts, one presents an old-CA certificate, the
    # other a new-CA one: both are trusted.
    for ike, name, port in ((ike2, "h2", port2), (ike1, "h1", port1)):
        _, version = current_conn(ike, port)
        cacerts(ike, f"cp {CACERTS}/ovsnet-ca.pem {CACERTS}/ovsnet-ca-previous.pem")
        deploy(ike, pki, name, tmp_path / f"{name}-new")
        deadline = time.monotonic() + 30
        while current_conn(ike, port)[1] == version:  # new paths: the monitor re-adds it
            assert time.monotonic() < deadline, describe(ike)
            time.sleep(0.1)
        reestablish(ike1, port1)

    # Stage 3, every host: forget the old CA. Everyone presents new-CA certificates now.
    for ike in (ike1, ike2):
        cacerts(ike, f"rm {CACERTS}/ovsnet-ca-previous.pem {CACERTS}/ovsnet-ca-next.pem",
                "ipsec rereadcacerts")  # fmt: skip
        listed = ike.ipsec("listcacerts").stdout
        assert listed.count('subject:  "O=ovsnet, OU=ike, CN=ovsnet ike CA"') == 1, listed
    reestablish(ike1, port1)
    reestablish(ike2, port2)


def test_a_responder_that_took_the_shunt_connection_is_repaired_at_once_ike_only(
    hosts, pki, tmp_path
):
    """The race of a fleet switching to certificates at once (docs/decisions.md): h2 initiates
    before h1 has its tunnel to h2, so h1 as responder matches ovs-monitor-ipsec's catch-all
    `prevent_unencrypted_gre`; once h1 adds the tunnel, its own connection stays routed beside
    that IKE SA and nothing re-negotiates. The healer repairs it when it sees it, not after its
    grace (600 s here)."""
    import sys

    (lab1, ike1), (lab2, ike2) = hosts
    deploy(ike1, pki, "h1", tmp_path / "h1")
    deploy(ike2, pki, "h2", tmp_path / "h2")
    # h1 already has a tunnel to a third host (so ovs-monitor-ipsec has loaded its connections,
    # the shunts among them), not yet the one to h2.
    other = ike1.ovsnet("peer", "add", "--ipsec", "--remote-name", "h3", "198.51.100.99")
    assert other.returncode == 0, other.stderr
    ike1.wait_for_connection(port_name(IPv4Address("198.51.100.99")), "public key")
    port2 = add_ipsec_tunnel(ike2, lab1, "--remote-name", "h1")
    ike2.wait_for_connection(port2, "public key")
    conn2, _ = current_conn(ike2, port2)
    ike2.up(conn2, timeout=15)
    shunted = [sa for sa in ike1.ike_sas() if sa.startswith("prevent_unencrypted_gre[")]
    assert any("ESTABLISHED" in sa for sa in shunted), describe(ike1)
    port1 = add_ipsec_tunnel(ike1, lab2, "--remote-name", "h2")
    ike1.wait_for_connection(port1, "public key")
    heal = ike1.run(["env", f"OVS_RUNDIR={ike1.workdir / 'lab'}", sys.executable, "-m", "ovsnet",
                     "--db", ike1.db, "--json", "ipsec", "heal", "--ike-only", "--grace", "600"],
                    timeout=120)  # fmt: skip
    assert heal.returncode == 0, heal.stderr
    tick = json.loads(heal.stdout)
    assert [r["peer"] for r in tick["repaired"]] == [lab2.underlay_ip], (tick, describe(ike1))
    assert "shunt connection" in tick["repaired"][0]["reason"] and not tick["repaired"][0]["error"]
    conn1, _ = current_conn(ike1, port1)
    deadline = time.monotonic() + 30
    while not ike1.established(conn1):
        assert time.monotonic() < deadline, describe(ike1)
        time.sleep(0.3)
