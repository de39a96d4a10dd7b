"""nftables facade: read and replace ovsnet's plaintext guard table.

The nft command takes the whole script on stdin and applies it as one kernel transaction;
pyroute2's nftables support cannot build sets or the `rt ipsec` expression. Nothing secret
is ever in the script: peer addresses and port numbers only.

Place: docs/architecture.md, "Layers": facade layer.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from typing import IO

from ovsnet import plaintext_guard
from ovsnet.errors import NotReady, OperationFailed
from ovsnet.plaintext_guard import Guard, GuardState

NFT_TIMEOUT = 30
_INSTALL_HINT = "install nftables (apt install nftables), or add the peers with --allow-plaintext"


def _nft() -> str:
    path = shutil.which("nft")
    if path is None:
        raise NotReady(
            "nft not found: ovsnet needs nftables to drop plaintext when the IKE daemon is down",
            _INSTALL_HINT,
        )
    return path


def read_guard() -> GuardState:
    """The guard the kernel holds now (absent when there is no table, or no nft at all)."""
    nft = shutil.which("nft")
    if nft is None:
        return plaintext_guard.ABSENT
    done = _run([nft, "-j", "list", "table", plaintext_guard.FAMILY, plaintext_guard.TABLE],
                "read the plaintext guard")  # fmt: skip
    if done.returncode != 0:
        if "No such file or directory" in done.stderr:
            return plaintext_guard.ABSENT
        raise OperationFailed(f"cannot read the plaintext guard: {_first_line(done.stderr)}")
    try:
        listing = json.loads(done.stdout)
    except ValueError:
        raise OperationFailed("cannot read the plaintext guard: nft printed no JSON") from None
    return plaintext_guard.parse_listing(listing)


def write_guard(guard: Guard) -> None:
    """Replace the table with exactly `guard` (remove it when the guard is empty)."""
    script = plaintext_guard.nft_script(guard)
    done = _run([_nft(), "-f", "-"], "install the plaintext guard", script)
    if done.returncode != 0:
        raise OperationFailed(
            f"cannot install the plaintext guard: {_first_line(done.stderr)}",
            "check that the kernel has nf_tables (nft list ruleset)",
        )


def _run(argv: list[str], what: str, script: str | None = None) -> subprocess.CompletedProcess:
    """Run nft; a missing or unrunnable binary and a hang become ovsnet's errors."""
    try:
        return subprocess.run(
            argv, input=script, capture_output=True, text=True, timeout=NFT_TIMEOUT
        )
    except subprocess.TimeoutExpired:
        raise OperationFailed(f"cannot {what}: nft did not finish within {NFT_TIMEOUT} s") from None
    except FileNotFoundError:
        raise NotReady(f"cannot {what}: {argv[0]} cannot be executed", _INSTALL_HINT) from None
    except PermissionError:
        raise NotReady(f"cannot {what}: no permission to run {argv[0]}", "run as root") from None


class Monitor:
    """`nft monitor`: readable whenever this network namespace's ruleset changes.

    An event source rather than a poll: a firewall reload (`nft flush ruleset`, as a stock
    /etc/nftables.conf does) deletes the guard's table, and the watcher hears of it at once.
    """

    def __init__(self) -> None:
        self._process = subprocess.Popen(
            [_nft(), "monitor"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        assert self._process.stdout is not None, "stdout=PIPE gives the process a pipe"
        self._stdout: IO[bytes] = self._process.stdout
        os.set_blocking(self._stdout.fileno(), False)
        self._partial = b""

    def fileno(self) -> int:
        return self._stdout.fileno()

    def changed(self) -> bool | None:
        """Whether ovsnet's table was touched since the last call; None once nft has exited."""
        try:
            data = os.read(self.fileno(), 65536)
        except BlockingIOError:
            return False
        if not data:
            return None
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()
        marker = f" {plaintext_guard.FAMILY} {plaintext_guard.TABLE}".encode()
        return any(marker in line for line in lines)

    def close(self) -> None:
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(2)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._stdout.close()

    def __enter__(self) -> Monitor:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _first_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[0] if lines else "nft failed without a message"
