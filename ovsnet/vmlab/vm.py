"""One VM of the real-kernel lab, reached over ssh from inside the lab's network namespace: run
commands, copy files, reboot, and read its qemu process's state.
"""

from __future__ import annotations

import contextlib
import shlex
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from ovsnet.errors import OperationFailed
from ovsnet.lab import proc as lab_proc
from ovsnet.vmlab.config import VmSpec
from ovsnet.vmlab.wait import wait_until

SSH_BOOT_TIMEOUT = 600.0  # TCG boot of 3 VMs on 2 busy cores: normally 45-90 s


class LabOfVm(Protocol):
    """What a VM needs of its lab (`lab.VmLab`): where the lab's files are, its namespace and
    ssh key, its ssh connections and its state file. A protocol, so this module does not import
    the lab that imports it."""

    run_dir: Path

    @property
    def netns(self) -> str: ...

    @property
    def ssh_key(self) -> Path: ...

    def _start_ssh_master(self, vm: Vm, wait: bool = True) -> None: ...

    def _stop_ssh_master(self, vm: Vm) -> None: ...

    def _save(self) -> None: ...


@dataclass
class Vm:
    """One VM of a lab, reached over ssh from inside the lab's namespace."""

    spec: VmSpec
    lab: LabOfVm = field(repr=False)
    pid: int | None = None
    ssh_master_pid: int | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def underlay_ip(self) -> str:
        return self.spec.underlay_ip

    @property
    def control_path(self) -> Path:
        return self.lab.run_dir / f"ssh-{self.name}.sock"

    def ssh_argv(self, command: str, master: bool = False) -> list[str]:
        options = [
            "-i", str(self.lab.ssh_key),
            "-o", "BatchMode=yes",
            "-o", "StrictHostKeyChecking=no",
            "-o", "UserKnownHostsFile=/dev/null",
            "-o", "LogLevel=ERROR",
            "-o", "ConnectTimeout=5",
            "-o", "ServerAliveInterval=10",
            "-o", f"ControlPath={self.control_path}",
            "-o", "ControlMaster=" + ("yes" if master else "no"),
        ]  # fmt: skip
        tail = ["-N"] if master else [command]
        return ["ip", "netns", "exec", self.lab.netns, "ssh", *options,
                f"root@{self.underlay_ip}", *tail]  # fmt: skip

    def ssh(
        self,
        command: str | Sequence[str],
        *,
        check: bool = False,
        timeout: float = 300,
        input: str | bytes | None = None,
    ) -> subprocess.CompletedProcess:
        """Run a shell command in the VM as root. A list is quoted for the remote shell."""
        text = command if isinstance(command, str) else shlex.join(command)
        binary = isinstance(input, bytes)
        proc = subprocess.run(
            self.ssh_argv(text),
            input=input,
            capture_output=True,
            text=not binary,
            timeout=timeout,
        )
        if check and proc.returncode != 0:
            stderr = proc.stderr.decode(errors="replace") if binary else proc.stderr
            raise OperationFailed(
                f"{self.name}: `{text}` failed (exit {proc.returncode}): {stderr.strip()[-800:]}"
            )
        return proc

    def put(self, local: Path, remote: str) -> None:
        """Copy a host file into the VM (over the ssh connection, no scp/sftp needed)."""
        self.ssh(f"cat > {shlex.quote(remote)}", input=local.read_bytes(), check=True)

    def reachable(self, ready_check: str = "true") -> bool:
        try:
            return self.ssh(ready_check, timeout=15).returncode == 0
        except subprocess.TimeoutExpired:
            return False

    def boot_id(self) -> str | None:
        """The kernel's random boot id: changes with every boot (None if unreachable)."""
        try:
            proc = self.ssh("cat /proc/sys/kernel/random/boot_id", timeout=15)
        except subprocess.TimeoutExpired:
            return None
        return proc.stdout.strip() if proc.returncode == 0 else None

    def reboot(self, timeout: float = SSH_BOOT_TIMEOUT) -> float:
        """Reboot the guest (qemu keeps running) and wait until it answers again; seconds."""
        before = self.boot_id()
        started = time.monotonic()
        self.lab._stop_ssh_master(self)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.ssh("systemctl reboot", timeout=30)
        wait_until(lambda: self.boot_id() not in (None, before), timeout,
                   f"{self.name} to come back after a reboot", interval=2)  # fmt: skip
        self.lab._start_ssh_master(self)
        self.lab._save()
        return time.monotonic() - started

    def running(self) -> bool:
        return self.pid is not None and lab_proc.is_ours(self.pid, str(self.lab.run_dir))

    def console_tail(self, lines: int = 20) -> str:
        path = self.lab.run_dir / f"{self.name}.console.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def rss_mib(self) -> float | None:
        """Resident memory of this VM's qemu process."""
        if not self.running():
            return None
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return None
