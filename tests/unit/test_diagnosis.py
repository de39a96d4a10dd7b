"""`ovsnet doctor`'s pure judgements and the ICMP probe's packet format."""

from __future__ import annotations

import datetime as dt
import struct

from ovsnet import diagnosis, probe
from ovsnet.diagnosis import BridgeFilter, MtuProbe


def test_userspace_datapath_needs_no_module_but_ipsec_needs_esp():
    assert diagnosis.needed_modules("netdev", {"gre"}, ipsec=False) == {}
    assert list(diagnosis.needed_modules("netdev", {"gre"}, ipsec=True)) == ["esp4"]
    assert list(diagnosis.needed_modules("system", {"gre", "vxlan"}, ipsec=False)) == [
        "openvswitch", "ip_gre", "vxlan"]  # fmt: skip


def test_missing_module_fails_with_modprobe():
    needed = diagnosis.needed_modules("system", {"gre"}, ipsec=False)
    check = diagnosis.judge_modules(needed, {"ip_gre"}, "system")
    assert check.result == "fail" and "openvswitch" in check.detail
    assert check.fix.startswith("modprobe openvswitch")
    assert diagnosis.judge_modules(needed, {"ip_gre", "openvswitch"}, "system").result == "ok"
    assert diagnosis.judge_modules({}, set(), "netdev").result == "ok"


def test_br_netfilter_judgement():
    judge = diagnosis.judge_bridge_filter
    assert judge(BridgeFilter(None, None, None), "docker0").result == "ok"
    assert judge(BridgeFilter("0", None, "DROP"), "docker0").result == "ok"
    assert judge(BridgeFilter("1", True, "DROP"), "docker0").result == "ok"
    dropped = judge(BridgeFilter("1", False, "DROP"), "docker0")
    assert dropped.result == "fail" and "ovsnet init" in dropped.fix
    assert judge(BridgeFilter("1", None, "ACCEPT"), "docker0").result == "warn"


def test_docker_judgement():
    assert diagnosis.judge_docker([], "", None).result == "ok"
    hint = "start Docker with --mtu=1462"
    wrong = diagnosis.judge_docker(["mtu is 1500 (wants 1462)"], hint, None)
    assert wrong.result == "fail" and wrong.fix.endswith("--mtu=1462")
    assert diagnosis.judge_docker(None, "", "no Docker socket").result == "warn"


def test_guard_judgement():
    judge = diagnosis.judge_guard
    in_place = {"peers": 1, "in_place": True, "dropped_packets": 0}
    assert judge(0, False, None, None).result == "ok"
    assert judge(1, True, in_place, None).result == "ok"
    assert judge(1, True, {**in_place, "in_place": False}, None).result == "fail"
    assert judge(1, True, None, None).result == "fail"
    assert judge(1, True, None, "nft failed").result == "fail"
    assert judge(1, False, None, None).result == "warn"  # --allow-plaintext


def test_ike_and_bfd_per_peer():
    peer = {"remote_ip": "198.51.100.2", "state": "up", "bfd_state": "up", "error": None}
    assert diagnosis.judge_ike({**peer, "ipsec_state": "established"}).result == "ok"
    assert diagnosis.judge_ike({**peer, "ipsec_state": "connecting"}).result == "fail"
    assert diagnosis.judge_bfd(peer).result == "ok"
    assert diagnosis.judge_bfd({**peer, "state": "down"}).result == "fail"
    assert diagnosis.judge_bfd({**peer, "state": "pending"}).result == "warn"


def test_mtu_judgement():
    ok = diagnosis.judge_mtu(MtuProbe("198.51.100.2", 1500, True, True), 1462)
    assert ok.result == "ok" and ok.check == "path MTU 198.51.100.2"
    hole = diagnosis.judge_mtu(MtuProbe("198.51.100.2", 1500, True, False), 1462)
    assert hole.result == "fail" and "black hole" in hole.detail
    assert diagnosis.judge_mtu(MtuProbe("198.51.100.2", 1500, False, False), 1462).result == "warn"
    local = diagnosis.judge_mtu(MtuProbe("198.51.100.2", 1500, True, False, "too big"), 1462)
    assert local.result == "fail" and "cannot leave" in local.detail


def test_clock_against_the_certificate():
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    end = dt.datetime(2027, 1, 1, tzinfo=dt.UTC)
    judge = diagnosis.judge_certificate_clock
    assert judge("host.pem", dt.datetime(2026, 6, 1, tzinfo=dt.UTC), start, end).result == "ok"
    early = judge("host.pem", dt.datetime(2025, 12, 31, tzinfo=dt.UTC), start, end)
    assert early.result == "fail" and "before" in early.detail
    assert judge("host.pem", dt.datetime(2027, 2, 1, tzinfo=dt.UTC), start, end).result == "fail"
    assert diagnosis.judge_clock_sync(False).result == "warn"


def test_report_json_and_failed():
    report = diagnosis.DoctorResult([diagnosis.Check("a", "ok", "fine"),
                                     diagnosis.Check("b", "fail", "broken", "fix it")])  # fmt: skip
    assert [c.check for c in report.failed] == ["b"]
    doc = report.as_json()
    assert doc["ok"] is False
    assert doc["checks"][1] == {"check": "b", "result": "fail", "detail": "broken", "fix": "fix it"}


def test_echo_request_has_the_asked_size_and_a_valid_checksum():
    packet = probe.echo_request(ident=0x1234, seq=7, ip_size=1500)
    assert len(packet) == 1500 - 20
    assert probe._checksum(packet) == 0  # a correct checksum sums to zero
    kind, code, _, ident, seq = struct.unpack("!BBHHH", packet[:8])
    assert (kind, code, ident, seq) == (8, 0, 0x1234, 7)


def test_parse_reply_skips_the_ip_header():
    ip_header = bytes([0x45]) + bytes(19)
    reply = struct.pack("!BBHHH", 0, 0, 0, 0x1234, 9)
    assert probe.parse_reply(ip_header + reply) == (0x1234, 9)
    assert probe.parse_reply(ip_header + struct.pack("!BBHHH", 8, 0, 0, 1, 1)) is None
    assert probe.parse_reply(b"") is None


def test_probe_on_loopback_gets_both_replies():
    # Loopback answers itself: the real socket path (DF, raw ICMP) end to end.
    seen = probe.probe_df(["127.0.0.1"], 1500, timeout=1.0)["127.0.0.1"]
    assert seen.small_reply and seen.big_reply and seen.local_error is None


def test_docker_check_of_a_bridge_without_ovsnet_addressing_says_run_init():
    """A bridge ovsnet did not set up has no subnet, supernet or MTU to compare Docker with:
    the check says so instead of failing on the missing values (and never asks Docker)."""
    from ovsnet.services.doctor import DoctorRequest, _docker_check
    from ovsnet.services.status import StatusResult

    check = _docker_check(StatusResult(bridge="br0", exists=True), DoctorRequest())
    assert (check.check, check.result) == ("docker options", diagnosis.WARN), check
    assert "br0 has no ovsnet subnet" in check.detail and "ovsnet init" in check.fix
