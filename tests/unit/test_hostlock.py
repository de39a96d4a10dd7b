"""The host lock (ovsnet.hostlock): one writer per OVSDB target, a bounded wait that names the
holder, released by the kernel when the holder dies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from ovsnet.errors import NotReady
from ovsnet.hostlock import Holder, host_lock, lock_path, read_holder


def test_lock_file_sits_beside_a_unix_socket_and_differs_per_target(tmp_path):
    assert lock_path(f"unix:{tmp_path}/db.sock", lock_dir="") == tmp_path / "ovsnet-db.sock.lock"
    one = lock_path("unix:/tmp/lab/h1/db.sock", lock_dir=tmp_path)
    two = lock_path("unix:/tmp/lab/h2/db.sock", lock_dir=tmp_path)
    assert one.parent == two.parent == tmp_path and one != two
    tcp = lock_path("tcp:192.0.2.1:6640", lock_dir="")
    assert tcp.parent == Path("/run/ovsnet") and "192.0.2.1-6640" in tcp.name


def test_holder_is_written_while_held_and_cleared_after(tmp_path):
    db = f"unix:{tmp_path}/db.sock"
    with host_lock(db, holder="ovsnet peer add", wait=1) as path:
        holder = read_holder(path)
        assert holder.pid == os.getpid() and holder.what == "ovsnet peer add"
        with host_lock(db, holder="nested", wait=0):  # re-entrant in one thread
            pass
        assert read_holder(path).what == "ovsnet peer add"
    assert read_holder(path) is None


def test_second_process_gives_up_after_the_bound_naming_the_holder(tmp_path):
    db = f"unix:{tmp_path}/db.sock"
    holder = _hold_in_child(db, tmp_path)
    try:
        started = time.monotonic()
        with pytest.raises(NotReady) as caught, host_lock(db, holder="ovsnet init", wait=0.5):
            pass
        waited = time.monotonic() - started
        assert 0.5 <= waited < 2.0
        message = caught.value.one_line()
        assert f"pid {holder.pid} (ovsnet peer add" in message and "after 0.5 s" in message
        assert "\n" not in message and caught.value.exit_code == 3
    finally:
        holder.kill()
        holder.wait()


def test_sigkilled_holder_releases_the_lock(tmp_path):
    db = f"unix:{tmp_path}/db.sock"
    holder = _hold_in_child(db, tmp_path)
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    with host_lock(db, holder="ovsnet init", wait=2):
        pass


def test_threads_of_one_process_take_turns(tmp_path):
    db = f"unix:{tmp_path}/db.sock"
    inside, most = [0], [0]

    def work():
        for _ in range(20):
            with host_lock(db, holder="t", wait=10):
                inside[0] += 1
                most[0] = max(most[0], inside[0])
                time.sleep(0.001)
                inside[0] -= 1

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert most[0] == 1


def test_holder_line_parses_back_and_tolerates_garbage():
    holder = Holder(42, "ovsnet reset", 1000.0)
    assert Holder.parse(holder.line()) == holder
    assert Holder.parse("") is None and Holder.parse("{not json") is None


def test_missing_ovs_run_directory_is_not_created(tmp_path):
    """No OVS run directory, no OVSDB to change: the command goes on and reports that itself."""
    with host_lock(f"unix:{tmp_path}/nowhere/db.sock", holder="x", wait=0):
        pass
    assert not (tmp_path / "nowhere").exists()


def _hold_in_child(db: str, tmp_path: Path) -> subprocess.Popen:
    ready = tmp_path / "ready"
    code = (
        "import sys, time, pathlib\n"
        "from ovsnet.hostlock import host_lock\n"
        "with host_lock(sys.argv[1], holder='ovsnet peer add', wait=5):\n"
        "    pathlib.Path(sys.argv[2]).touch()\n"
        "    time.sleep(60)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code, db, str(ready)])
    deadline = time.monotonic() + 20
    while not ready.exists():
        assert child.poll() is None and time.monotonic() < deadline, "holder did not start"
        time.sleep(0.02)
    return child


def test_lock_wait_from_the_environment(monkeypatch):
    from ovsnet.errors import InvalidInput
    from ovsnet.hostlock import DEFAULT_WAIT, wait_from_env

    monkeypatch.delenv("OVSNET_LOCK_WAIT", raising=False)
    assert wait_from_env() == DEFAULT_WAIT
    monkeypatch.setenv("OVSNET_LOCK_WAIT", "2.5")
    assert wait_from_env() == 2.5
    for bad in ("-1", "soon", "nan"):
        monkeypatch.setenv("OVSNET_LOCK_WAIT", bad)
        with pytest.raises(InvalidInput):
            wait_from_env()
