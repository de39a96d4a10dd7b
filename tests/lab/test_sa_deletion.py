"""Deleting a peer's SAs on the real kernel: an SA that is gone by the time ovsnet deletes it
(expired, or deleted by charon since the listing) must not fail the repair. A CI run saw three
repairs of one peer fail on "RTNETLINK answers: No such process", before their re-initiation."""

from __future__ import annotations

import subprocess
import sys
import uuid

import pytest

pytestmark = pytest.mark.lab

GONE = [
    ["xfrm", "state", "delete", "src", "192.0.2.1", "dst", "192.0.2.2", "proto", "esp",
     "spi", "0x00001234"],
    ["xfrm", "state", "delete", "src", "192.0.2.2", "dst", "192.0.2.1", "proto", "esp",
     "spi", "0x00005678", "mark", "0x1", "mask", "0x1"],
]  # fmt: skip


@pytest.fixture
def netns():
    name = f"ovsnet-sa-{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def _in_netns(netns: str, code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["ip", "netns", "exec", netns, sys.executable, "-c", code],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_sas_already_gone_are_no_error_for_a_repair(netns):
    # The kernel's own answer for these: iproute2 exits 2 with ESRCH, and in a batch it
    # stops there, `-force` or not, leaving the SAs after it in place.
    batch = "".join(" ".join(line) + "\n" for line in GONE)
    done = subprocess.run(["ip", "-n", netns, "-force", "-batch", "-"], input=batch,
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode != 0 and "No such process" in done.stderr, done
    done = _in_netns(netns, f"from ovsnet import strongswan; strongswan.delete_sas({GONE!r})")
    assert done.returncode == 0, done.stderr


def test_a_marked_sa_is_named_as_iproute2_takes_it(netns):
    """ovs-monitor-ipsec's inbound SAs carry the skb mark; `ip xfrm state` lists it as
    "mark 0x1/0x1", which `ip xfrm state delete` refuses: the repair must name it its way."""
    from ovsnet.ipsec.xfrm_states import KernelSa

    line = KernelSa("192.0.2.2", "192.0.2.1", "0x00005678", "0x1/0x1").delete_line().split()
    done = subprocess.run(["ip", "-n", netns, *line], capture_output=True, text=True)
    assert "No such process" in done.stderr, done.stderr  # parsed, looked up, not there


def test_any_other_failure_to_delete_an_sa_is_still_an_error(netns):
    bad = [["xfrm", "state", "delete", "src", "192.0.2.1", "dst", "192.0.2.2", "proto", "esp",
            "spi", "not-a-spi"]]  # fmt: skip
    code = (
        "from ovsnet import strongswan\n"
        "from ovsnet.errors import OperationFailed\n"
        f"try:\n    strongswan.delete_sas({bad!r})\n"
        "except OperationFailed as exc:\n    print(exc.one_line())\n    raise SystemExit(3)\n"
    )
    done = _in_netns(netns, code)
    assert done.returncode == 3, (done.stdout, done.stderr)
    assert "deleting the peers' SAs failed" in done.stdout, done.stdout
