"""Failures reach the user as one line on stderr with the right exit code and no traceback;
with --json, also as one JSON error document on stdout. Each case runs the real `ovsnet`
command in a subprocess (the lab tier drives nft and strongSwan the same way:
tests/lab/test_adapter_errors.py)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

from ovsnet import firewall
from ovsnet.errors import OperationFailed


def ovsnet(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ovsnet", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


def assert_one_line(done: subprocess.CompletedProcess, code: int, fragment: str) -> None:
    assert done.returncode == code, (done.returncode, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ovsnet: error: "), done.stderr
    assert fragment in lines[0]
    assert "Traceback" not in done.stderr + done.stdout


def error_document(done: subprocess.CompletedProcess) -> dict:
    document = json.loads(done.stdout)
    assert set(document) == {"error"}
    assert set(document["error"]) == {"code", "message", "hint"}
    assert document["error"]["code"] == done.returncode
    return document["error"]


@pytest.fixture
def dead_socket(tmp_path):
    """A unix socket file nobody listens on: an ovsdb-server that died without cleaning up."""
    path = tmp_path / "db.sock"
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(path))
    yield path
    sock.close()


def test_ovsdb_socket_absent_is_exit_3(tmp_path):
    done = ovsnet("--db", f"unix:{tmp_path}/db.sock", "status")
    assert_one_line(done, 3, "No such file or directory")
    assert done.stdout == ""


def test_ovsdb_daemon_gone_is_exit_3_for_reads_and_writes(dead_socket):
    for args in (["status"], ["peer", "add", "198.51.100.7"]):
        done = ovsnet("--db", f"unix:{dead_socket}", *args)
        assert_one_line(done, 3, "cannot reach OVSDB")


def test_ovsdb_tcp_refused_is_exit_3():
    assert_one_line(ovsnet("--db", "tcp:127.0.0.1:1", "peer", "list"), 3, "Connection refused")


def test_json_failure_prints_one_error_document(dead_socket):
    done = ovsnet("--json", "--db", f"unix:{dead_socket}", "peer", "list")
    assert_one_line(done, 3, "cannot reach OVSDB")
    error = error_document(done)
    assert "cannot reach OVSDB" in error["message"]
    assert "ovsdb-server" in error["hint"]


def test_json_usage_error_prints_one_error_document():
    done = ovsnet("--json", "peer", "bogus")
    assert_one_line(done, 2, "No such command")
    error = error_document(done)
    assert error["hint"] == "see `ovsnet peer --help`"


def test_json_bad_input_prints_one_error_document(tmp_path):
    done = ovsnet("--db", f"unix:{tmp_path}/db.sock", "--json", "init", "--prefix", "10.0")
    assert_one_line(done, 2, "malformed")
    assert "malformed" in error_document(done)["message"]


def test_an_option_named_json_after_the_command_is_not_the_global_one(tmp_path):
    done = ovsnet("--db", f"unix:{tmp_path}/db.sock", "status", "--json")
    assert_one_line(done, 2, "No such option")
    assert done.stdout == ""


def test_fake_iptables_whose_delete_fails_ends_the_removal_loop(tmp_path, monkeypatch):
    """-C keeps matching and -D keeps failing: the loop used to spin for ever."""
    fake = tmp_path / "iptables"
    fake.write_text(
        "#!/bin/sh\n"
        'for arg in "$@"; do\n'
        '  case "$arg" in -D) echo "iptables: Bad rule (fake)" >&2; exit 1;; esac\n'
        "done\n"
        "exit 0\n"
    )
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    with pytest.raises(OperationFailed, match="could not remove iptables rule: iptables: Bad"):
        firewall.remove_accept("docker0")


def test_fake_iptables_that_cannot_be_executed_is_not_ready(tmp_path, monkeypatch):
    fake = tmp_path / "iptables"
    fake.write_text("#!/nonexistent/interpreter\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(firewall.NotReady, match="iptables"):
        firewall.ensure_accept("docker0")


def test_ovsdb_socket_without_permission_is_exit_3(tmp_path):
    """A user who may not open root's socket (as `nobody`, through setpriv)."""
    path = tmp_path / "db.sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    server.listen(1)
    path.chmod(0o600)
    try:
        as_nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
        command = [sys.executable, "-m", "ovsnet", "--json", "--db", f"unix:{path}", "status"]
        done = subprocess.run(
            [*as_nobody, *command],
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        server.close()
    assert_one_line(done, 3, "Permission denied")
    assert "Permission denied" in error_document(done)["message"]


def test_a_command_that_reported_then_failed_keeps_stdout_one_json_document(capsys):
    """`--json doctor` / `--json status --check`: the report is the document; the failure
    adds its line on stderr only (a second document would break every JSON reader)."""
    from ovsnet.cli import _fail, output
    from ovsnet.cli.output import Settings, emit

    class Report:
        def as_json(self):
            return {"ok": False}

        def render(self, console):
            raise AssertionError("not in --json mode")

    output.json_written = False
    emit(Settings(db="unix:/nowhere", json=True), Report())
    assert _fail(["--json", "doctor"], 1, "2 checks failed") == 1
    captured = capsys.readouterr()
    assert json.loads(captured.out) == {"ok": False}
    assert captured.err.strip() == "ovsnet: error: 2 checks failed"


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["198.51.100.2", "198.51.100.3", "--subnet", "10.0.2.0/24"], "1 --subnet for 2 peers"),
        (["198.51.100.2", "--subnet", "10.0.2.0/24", "--subnet", "10.0.3.0/24"],
         "2 --subnet for 1 peers"),
        (["198.51.100.2", "--subnet", "10.0.2.1"], "is not an IPv4 network"),
    ],
)  # fmt: skip
def test_peer_subnets_are_one_per_peer_checked_before_ovsdb(tmp_path, args, fragment):
    """Checked before anything is read: no OVSDB is needed to refuse them."""
    done = ovsnet("--db", f"unix:{tmp_path}/db.sock", "peer", "add", *args)
    assert_one_line(done, 2, fragment)
