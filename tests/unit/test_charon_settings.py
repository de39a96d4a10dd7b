"""The strongSwan settings ovsnet gives charon: a silent peer is asked again within 10 s."""

from __future__ import annotations

import re
import stat

from ovsnet import charon_settings


def test_no_wait_between_retransmissions_exceeds_the_limit():
    waits = charon_settings.retransmit_waits()
    assert max(waits) == charon_settings.RETRANSMIT_LIMIT_S == 10.0
    # Not hammering a slow responder (IKE takes seconds in an emulated VM) ...
    assert waits[0] >= 3.0
    # ... and a failed attempt ends, so keyingtries=%forever starts the next, within a minute.
    assert sum(waits) < 60


def test_strongswan_defaults_would_leave_a_returning_peer_waiting_42_s():
    """The case the settings exist for: strongswan.conf(5)'s defaults (4 s, 1.8, no limit, 5)."""
    defaults = charon_settings.retransmit_waits(timeout=4.0, base=1.8, limit=float("inf"), tries=5)
    assert round(max(waits := defaults[:-1])) == 42 and round(sum(defaults)) == 165, waits


def test_the_file_says_what_the_constants_say():
    text = charon_settings.settings_text()
    values = dict(re.findall(r"^\s+(retransmit_\w+) = (\S+)$", text, re.MULTILINE))
    assert values == {
        "retransmit_timeout": "3.0",
        "retransmit_base": "1.5",
        "retransmit_limit": "10.0",
        "retransmit_tries": "5",
    }
    assert text.count("{") == text.count("}") == 1 and "charon {" in text


def test_install_writes_once_world_readable(tmp_path):
    target = tmp_path / "strongswan.d" / "ovsnet.conf"
    assert charon_settings.install(target) is True
    assert target.read_text() == charon_settings.settings_text()
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert charon_settings.install(target) is False
    target.write_text("charon {}\n")
    assert charon_settings.install(target) is True
