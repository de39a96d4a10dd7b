"""nft and strongSwan failing under a real command: one line, the right exit code, no traceback,
and with --json one error document on stdout.

One lab host with an IPsec peer in its real OVSDB, so `ipsec plaintext restore` has to run nft
and `ipsec repair` has to run strongSwan's `ipsec`. Those binaries are stand-ins on PATH (named
`fake_*` below): missing, not executable, or hanging. Each run happens inside the lab host's
namespace, so nothing can reach the machine's own nftables or strongSwan even if PATH were
ignored. The command is ovsnet's real entry point (`ovsnet.cli.main`) in a subprocess; for the
hang, the same entry point with the adapter's timeout lowered so the test does not wait 30 s.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.lab

PSK = "Vb7Nq2Lx5Mc8Rz3Tk9Wd4Yh6Gf1Jp0Sa"
PEER = "198.51.100.12"


@pytest.fixture(scope="module")
def host(lab_factory_module, tmp_path_factory):
    lab = lab_factory_module(hosts=1, docker=False)
    host = lab.hosts[0]
    mask = host.supernet.split("/")[1]
    host.run(["ip", "link", "add", "docker0", "type", "bridge"])
    host.run(["ip", "address", "add", f"{host.gateway}/{mask}", "dev", "docker0"])
    host.ovsnet("init", "--prefix", host.prefix, "--datapath", "netdev", "--no-docker-check",
                check=True)  # fmt: skip
    psk = tmp_path_factory.mktemp("psk") / "psk"
    fd = os.open(psk, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, PSK.encode())
    os.close(fd)
    host.ovsnet("peer", "add", PEER, "--ipsec", "--psk-file", str(psk), check=True)
    return host


@pytest.fixture
def bin_dir(tmp_path) -> Path:
    path = tmp_path / "bin"
    path.mkdir()
    return path


def fake_tool(bin_dir: Path, name: str, script: str, mode: int = 0o755) -> None:
    tool = bin_dir / name
    tool.write_text(script)
    tool.chmod(mode)


def real_tool(bin_dir: Path, name: str) -> None:
    (bin_dir / name).symlink_to(shutil.which(name))


def cli(host, bin_dir: Path, *args: str, patch: str = ""):
    """`ovsnet --db HOST ARGS` in the host's namespace with PATH=bin_dir only."""
    code = f"import sys\n{patch}\nfrom ovsnet.cli import main\nmain()\n"
    argv = ["env", f"PATH={bin_dir}", sys.executable, "-c", code, "--db", host.db, *args]
    return host.run(argv, check=False, timeout=60)


def assert_failure(done, code: int, fragment: str) -> dict:
    """One line on stderr, exit `code`, no traceback; returns the --json error document."""
    assert done.returncode == code, (done.returncode, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ovsnet: error: "), done.stderr
    assert fragment in lines[0], lines[0]
    assert "Traceback" not in done.stderr + done.stdout
    error = json.loads(done.stdout)["error"]
    assert error["code"] == code and fragment in error["message"] + (error["hint"] or "")
    return error


def guard_present(host) -> bool:
    return host.run(["nft", "list", "table", "inet", "ovsnet"], check=False).returncode == 0


@pytest.fixture
def no_guard(host):
    """The kernel lost the guard (as after a reboot): restore must write it with nft."""
    host.run(["nft", "delete", "table", "inet", "ovsnet"], check=False)
    yield host
    host.ovsnet("ipsec", "plaintext", "restore", check=True)


def test_nft_missing_is_not_ready(no_guard, bin_dir):
    done = cli(no_guard, bin_dir, "--json", "ipsec", "plaintext", "restore")
    assert_failure(done, 3, "nft not found")


def test_fake_nft_that_cannot_be_executed_is_not_ready(no_guard, bin_dir):
    fake_tool(bin_dir, "nft", "#!/nonexistent/interpreter\n")
    done = cli(no_guard, bin_dir, "--json", "ipsec", "plaintext", "restore")
    assert_failure(done, 3, "cannot be executed")


def test_fake_nft_without_permission_is_not_ready(no_guard, bin_dir):
    # The interpreter named by the shebang is a plain file: exec fails with EACCES.
    interpreter = bin_dir / "not-executable"
    interpreter.write_text("")
    fake_tool(bin_dir, "nft", f"#!{interpreter}\n")
    done = cli(no_guard, bin_dir, "--json", "ipsec", "plaintext", "restore")
    assert_failure(done, 3, "no permission")


def test_fake_nft_that_hangs_times_out(no_guard, bin_dir):
    fake_tool(bin_dir, "nft", "#!/bin/sh\nexec /bin/sleep 30\n")
    patch = "import ovsnet.nftables as nftables; nftables.NFT_TIMEOUT = 1"
    done = cli(no_guard, bin_dir, "--json", "ipsec", "plaintext", "restore", patch=patch)
    assert_failure(done, 1, "did not finish within 1 s")
    assert not guard_present(no_guard)


# `ipsec repair --restart-daemon` goes straight to strongSwan (the per-peer repair first asks
# ovs-monitor-ipsec, which this lab host does not run): the facade's failure modes show there.


def test_fake_strongswan_that_hangs_times_out(host, bin_dir):
    assert guard_present(host)  # repair refuses to run without it
    for name in ("nft", "ip"):
        real_tool(bin_dir, name)
    fake_tool(bin_dir, "ipsec", "#!/bin/sh\nexec /bin/sleep 30\n")
    patch = "import ovsnet.strongswan as strongswan; strongswan.TIMEOUT = 1"
    done = cli(host, bin_dir, "--json", "ipsec", "repair", "--restart-daemon", patch=patch)
    assert_failure(done, 1, "did not finish within 1 s")


def test_fake_strongswan_that_cannot_be_executed_is_not_ready(host, bin_dir):
    for name in ("nft", "ip"):
        real_tool(bin_dir, name)
    fake_tool(bin_dir, "ipsec", "#!/nonexistent/interpreter\n")
    done = cli(host, bin_dir, "--json", "ipsec", "repair", "--restart-daemon")
    assert_failure(done, 3, "cannot be executed")


def test_strongswan_missing_is_not_ready(host, bin_dir):
    real_tool(bin_dir, "nft")
    done = cli(host, bin_dir, "--json", "ipsec", "repair", "--restart-daemon")
    assert_failure(done, 3, "`ipsec` not found")
