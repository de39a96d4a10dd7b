"""`ovsnet doctor` on a real 2-host mesh (userspace datapath, real dockerd, iptables, nftables):
passes on the healthy host, and finds each problem injected, one at a time, then passes again.
"""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from ovsnet.firewall import COMMENT

pytestmark = pytest.mark.lab

PSK = "Zq8Vw2Lm5Xc7Rb3Tn9Wk4Yd6Hf1Gj0Ps"
ABSENT_PEER = "198.51.100.200"  # nothing answers there


@pytest.fixture(scope="module")
def pair(lab_factory_module):
    lab = lab_factory_module(hosts=2)
    a, b = lab.hosts
    for host, other in ((a, b), (b, a)):
        host.ovsnet("init", "--prefix", host.prefix, "--datapath", "netdev", check=True)
        host.ovsnet("peer", "add", other.underlay_ip, check=True)
    _wait_for(lambda: _bfd_up(a, b.underlay_ip) and _bfd_up(b, a.underlay_ip), "BFD up")
    return lab, a, b


def _bfd_up(host, remote: str) -> bool:
    peers = json.loads(host.ovsnet("--json", "peer", "list", check=True).stdout)
    return any(p["remote_ip"] == remote and p["state"] == "up" for p in peers)


def _wait_for(predicate, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


def doctor(host) -> tuple[int, dict[str, dict]]:
    done = host.ovsnet("--json", "doctor", "--probe-timeout", "1")
    report = json.loads(done.stdout)
    assert report["ok"] is (done.returncode == 0), done.stderr
    return done.returncode, {c["check"]: c for c in report["checks"]}


def assert_healthy(host, peer) -> dict[str, dict]:
    code, checks = doctor(host)
    failed = {name: c for name, c in checks.items() if c["result"] == "fail"}
    assert code == 0 and not failed, failed
    for name in (
        "overlay bridge",
        "kernel modules",
        "br_netfilter",
        "docker options",
        "plaintext guard",
        f"BFD {peer.underlay_ip}",
        f"path MTU {peer.underlay_ip}",
    ):
        assert checks[name]["result"] == "ok", checks[name]  # fmt: skip
    return checks


def test_healthy_host_passes(pair):
    _, a, b = pair
    checks = assert_healthy(a, b)
    assert "netdev" in checks["kernel modules"]["detail"]  # no openvswitch module: userspace
    assert "1500-byte DF echo crosses" in checks[f"path MTU {b.underlay_ip}"]["detail"]
    human = a.ovsnet("doctor", "--probe-timeout", "1")
    assert human.returncode == 0 and "how to fix" in human.stdout, human.stdout


def test_mtu_black_hole_on_the_underlay(pair):
    lab, a, b = pair
    # The switch drops frames bigger than its port's MTU without an ICMP error: a black hole.
    port = b.layout.switch_port
    link = ["ip", "netns", "exec", lab.switch_netns, "ip", "link", "set", "dev", port]
    _switch(lab, link + ["mtu", "1400"])
    try:
        code, checks = doctor(a)
        probe = checks[f"path MTU {b.underlay_ip}"]
        assert code == 1 and probe["result"] == "fail", probe
        assert "MTU black hole" in probe["detail"] and "--underlay-mtu" in probe["fix"]
    finally:
        _switch(lab, link + ["mtu", "1500"])
    assert_healthy(a, b)


def _switch(lab, argv: list[str]) -> None:
    subprocess.run(argv, check=True, capture_output=True, timeout=30)


def test_br_netfilter_without_the_accept_rule(pair):
    _, a, b = pair
    assert a.run(["cat", "/proc/sys/net/bridge/bridge-nf-call-iptables"]).stdout.strip() == "1"
    match = ["-m", "physdev", "--physdev-is-bridged", "-m", "comment", "--comment", COMMENT]
    rule = ["DOCKER-USER", "-i", "docker0", *match, "-j", "ACCEPT"]
    a.run(["iptables", "-w", "5", "-D", *rule])
    try:
        code, checks = doctor(a)
        found = checks["br_netfilter"]
        assert code == 1 and found["result"] == "fail", found
        assert "FORWARD policy DROP" in found["detail"] and "ovsnet init" in found["fix"]
    finally:
        a.ovsnet("init", "--prefix", a.prefix, "--datapath", "netdev", check=True)
    assert_healthy(a, b)


def test_docker_option_mismatch(pair):
    _, a, b = pair
    # The bridge now asks for a smaller MTU than the one Docker runs with.
    a.ovsnet("init", "--prefix", a.prefix, "--datapath", "netdev", "--underlay-mtu", "1400",
             "--no-docker-check", check=True)  # fmt: skip
    try:
        code, checks = doctor(a)
        found = checks["docker options"]
        assert code == 1 and found["result"] == "fail", found
        assert "mtu is 1462 (wants 1362)" in found["detail"], found
        assert "--mtu=1362" in found["fix"]
    finally:
        a.ovsnet("init", "--prefix", a.prefix, "--datapath", "netdev", "--underlay-mtu", "1500",
                 check=True)  # fmt: skip
    assert_healthy(a, b)


def test_missing_plaintext_guard(pair, tmp_path):
    _, a, b = pair
    psk = tmp_path / "psk"
    psk.write_text(PSK)
    psk.chmod(0o600)
    # One authentication rule per host: the plain peer steps aside while an IPsec one exists.
    a.ovsnet("peer", "remove", b.underlay_ip, check=True)
    a.ovsnet("peer", "add", ABSENT_PEER, "--ipsec", "--psk-file", str(psk), check=True)
    try:
        _, checks = doctor(a)
        assert checks["plaintext guard"]["result"] == "ok", checks["plaintext guard"]
        assert checks[f"IKE {ABSENT_PEER}"]["result"] == "fail"  # no IKE daemon in this lab
        a.run(["nft", "delete", "table", "inet", "ovsnet"])  # as after a reboot or a flush
        code, checks = doctor(a)
        found = checks["plaintext guard"]
        assert code == 1 and found["result"] == "fail", found
        assert "ipsec plaintext restore" in found["fix"]
    finally:
        a.ovsnet("peer", "remove", ABSENT_PEER, check=True)
        a.vsctl("remove", "Open_vSwitch", ".", "other_config", "ipsec_skb_mark")
        a.run(["nft", "delete", "table", "inet", "ovsnet"], check=False)
        a.ovsnet("peer", "add", b.underlay_ip, check=True)
    _wait_for(lambda: _bfd_up(a, b.underlay_ip), "BFD up again")
    assert_healthy(a, b)
