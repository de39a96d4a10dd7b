"""`--db` to a remote OVSDB: a PSK never crosses plain `tcp:`, and `ssl:` works end to end.

A real ovsdb-server listening on pssl: and ptcp: on the loopback of a lab host's namespace
(with its own ovs-vswitchd, so writes are confirmed), certificates made with openssl.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from ovsnet.lab import netns

pytestmark = pytest.mark.lab

PSK = "Zq8Vw2Lm5Xc7Rb3Tn9Wk4Yd6Hf1Gj0Ps"
PEER = "198.51.100.98"
SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema"


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_pki(directory: Path) -> None:
    """A CA, a server and a client certificate (RSA 2048, one day)."""
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key",
            "-out", "ca.pem", "-subj", "/O=ovsnet-test/CN=test-ca", "-days", "1",
            cwd=directory)  # fmt: skip
    for name in ("server", "client"):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out",
                f"{name}.csr", "-subj", f"/O=ovsnet-test/CN={name}", cwd=directory)  # fmt: skip
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                "-CAcreateserial", "-out", f"{name}.pem", "-days", "1", cwd=directory)  # fmt: skip
        os.chmod(directory / f"{name}.key", 0o600)


@pytest.fixture(scope="module")
def remote(lab_factory_module, tmp_path_factory):
    """(lab host, directory): ovsdb-server on pssl:6641 and ptcp:6642 at 127.0.0.1, plus its
    own ovs-vswitchd, both stopped by PID at the end."""
    lab = lab_factory_module(hosts=1, docker=False)
    host = lab.hosts[0]
    work = tmp_path_factory.mktemp("ovsdb-ssl")
    make_pki(work)
    subprocess.run(["ovsdb-tool", "create", str(work / "conf.db"), SCHEMA], check=True)
    sock = work / "db.sock"
    pids = []

    def daemon(name: str, *argv: str) -> None:
        pidfile = work / f"{name}.pid"
        host.run([name, *argv, f"--pidfile={pidfile}", f"--unixctl={work / name}.ctl",
                  f"--log-file={work / name}.log", "-vconsole:off", "--detach"])  # fmt: skip
        pids.append(int(pidfile.read_text()))

    try:
        daemon("ovsdb-server", str(work / "conf.db"), f"--remote=punix:{sock}",
               "--remote=pssl:6641:127.0.0.1", "--remote=ptcp:6642:127.0.0.1",
               f"--private-key={work / 'server.key'}", f"--certificate={work / 'server.pem'}",
               f"--ca-cert={work / 'ca.pem'}")  # fmt: skip
        host.run(["ovs-vsctl", f"--db=unix:{sock}", "--no-wait", "init", "--", "set",
                  "Open_vSwitch", ".", "ovs_version=3.1.0"])  # fmt: skip
        daemon("ovs-vswitchd", f"unix:{sock}")
        host.run(["ovs-vsctl", f"--db=unix:{sock}", "add-br", "brs", "--", "set", "Bridge",
                  "brs", "datapath_type=netdev"])  # fmt: skip
        psk = work / "psk"
        psk.write_text(PSK)
        os.chmod(psk, 0o600)
        yield host, work
    finally:
        for pid in reversed(pids):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)


def ovsnet(host, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        netns.exec_argv(host.netns, [sys.executable, "-m", "ovsnet", *args]),
        capture_output=True,
        text=True,
        timeout=120,
        env={k: v for k, v in os.environ.items() if not k.startswith("OVSNET_")},
    )


def ssl_args(work: Path) -> list[str]:
    return ["--db", "ssl:127.0.0.1:6641", "--db-ssl-key", str(work / "client.key"),
            "--db-ssl-cert", str(work / "client.pem"),
            "--db-ssl-ca", str(work / "ca.pem")]  # fmt: skip


def test_a_psk_is_refused_over_plain_tcp_with_nothing_changed(remote):
    host, work = remote
    done = ovsnet(host, "--db", "tcp:127.0.0.1:6642", "peer", "add", PEER, "--bridge", "brs",
                  "--ipsec", "--psk-file", str(work / "psk"), "--allow-plaintext")  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "not encrypted" in done.stderr and "ssl:" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and PSK not in done.stderr
    listed = ovsnet(host, "--db", "tcp:127.0.0.1:6642", "--json", "peer", "list", "--bridge", "brs")
    assert json.loads(listed.stdout) == [], "nothing changed"
    # Without a secret, plain tcp: still works.
    plain = ovsnet(host, "--db", "tcp:127.0.0.1:6642", "peer", "add", "198.51.100.99",
                   "--bridge", "brs")  # fmt: skip
    assert plain.returncode == 0, plain.stderr
    ovsnet(host, "--db", "tcp:127.0.0.1:6642", "peer", "remove", "198.51.100.99", "--bridge", "brs")


def test_peer_add_with_a_psk_over_ssl(remote):
    host, work = remote
    done = ovsnet(host, *ssl_args(work), "--json", "peer", "add", PEER, "--bridge", "brs",
                  "--ipsec", "--psk-file", str(work / "psk"), "--allow-plaintext")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert PSK not in done.stdout + done.stderr
    listed = json.loads(ovsnet(host, *ssl_args(work), "--json", "peer", "list", "--bridge",
                               "brs").stdout)  # fmt: skip
    assert [(p["remote_ip"], p["ipsec"]) for p in listed] == [(PEER, True)]
    removed = ovsnet(host, *ssl_args(work), "peer", "remove", PEER, "--bridge", "brs")
    assert removed.returncode == 0, removed.stderr


def test_ssl_needs_the_client_files_and_a_tight_key(remote):
    host, work = remote
    bare = ovsnet(host, "--db", "ssl:127.0.0.1:6641", "peer", "list", "--bridge", "brs")
    assert bare.returncode == 2 and "--db-ssl-key" in bare.stderr, bare.stderr
    loose = work / "loose.key"
    loose.write_bytes((work / "client.key").read_bytes())
    os.chmod(loose, 0o644)
    args = ssl_args(work)
    args[args.index(str(work / "client.key"))] = str(loose)
    refused = ovsnet(host, *args, "peer", "list", "--bridge", "brs")
    assert refused.returncode == 2 and "OVSDB client key" in refused.stderr, refused.stderr
    assert "open to its group or to others" in refused.stderr
