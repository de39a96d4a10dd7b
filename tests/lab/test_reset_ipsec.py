"""`ovsnet reset` on a real OVSDB and nftables leaves no IPsec setting of ovsnet's behind (the
PSK file path, ipsec_skb_mark, certificate paths) and no plaintext guard."""

from __future__ import annotations

import json
import os

import pytest

from tests.lab.crash_harness import initialised

pytestmark = pytest.mark.lab

PSK = "Zq8Vw2Lm5Xc7Rb3Tn9Wk4Yd6Hf1Gj0Ps"
PEER = "198.51.100.97"


@pytest.fixture
def host(lab_factory):
    lab = lab_factory(hosts=1, docker=False)
    host = initialised(lab.hosts[0])
    yield host
    host.run(["nft", "delete", "table", "inet", "ovsnet"], check=False)


def other_config(host) -> dict[str, str]:
    out = host.vsctl("--format=json", "--columns=other_config", "list", "Open_vSwitch").stdout
    ((cell,),) = json.loads(out)["data"]
    return dict(cell[1])


def test_reset_removes_ipsec_settings_and_the_guard(host, tmp_path):
    psk = tmp_path / "psk"
    fd = os.open(psk, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, PSK.encode())
    os.close(fd)
    host.ovsnet("ipsec", "psk", "set", "--file", str(psk), check=True)
    host.ovsnet("peer", "add", PEER, "--ipsec", check=True)
    assert {"ipsec_skb_mark", "ovsnet-ipsec-psk-file"} <= set(other_config(host))
    assert host.run(["nft", "list", "table", "inet", "ovsnet"], check=False).returncode == 0
    done = host.ovsnet("--json", "reset", check=True)
    steps = json.loads(done.stdout)["steps"]
    assert any("remove ovsnet's IPsec settings" in step for step in steps), steps
    left = other_config(host)
    assert not {"ipsec_skb_mark", "ovsnet-ipsec-psk-file", "ovsnet-ipsec-psk"} & set(left), left
    assert host.run(["nft", "list", "table", "inet", "ovsnet"], check=False).returncode != 0
    again = json.loads(host.ovsnet("--json", "reset", check=True).stdout)
    assert again["changed"] is False, again


def test_reset_after_the_bridge_is_gone_still_removes_leftover_settings(host):
    host.vsctl("set", "Open_vSwitch", ".", "other_config:ipsec_skb_mark=0/1",
               "other_config:certificate=/etc/ovsnet/h1-cert.pem")  # fmt: skip
    host.ovsnet("reset", check=True)
    host.vsctl("set", "Open_vSwitch", ".", "other_config:ipsec_skb_mark=0/1")  # left by hand
    done = host.ovsnet("--json", "reset", check=True)
    assert json.loads(done.stdout)["changed"] is True
    assert "ipsec_skb_mark" not in other_config(host)
