"""strongSwan + ovs-monitor-ipsec for one lab host, isolated from the machine and other hosts.

How (all found out on Debian 12: OVS 3.1, strongSwan 5.9.8, a kernel without ESP):

- Both daemons run in the host's network namespace AND a private mount namespace:
  `ip netns exec NS unshare --mount --propagation private sh -c '<binds>; exec ovs-monitor-ipsec'`.
  strongSwan's starter/charon have fixed paths (/etc/ipsec.conf, /etc/ipsec.secrets,
  /etc/ipsec.d, /etc/strongswan.conf, /etc/strongswan.d, and /var/run for charon.pid,
  starter.charon.pid and the stroke socket charon.ctl); ovs-monitor-ipsec writes the first,
  second and strongswan.d/ovs.conf and runs `ipsec restart|update|rereadsecrets`. Bind mounts of
  per-host copies over those paths, and of a per-host directory over /run, give every host its
  own strongSwan; the machine's files are never touched.
- The lab keeps a host's OVSDB socket under /run/ovsnet-lab/..., which the /run bind hides, so
  the host's run directory is first bound to WORKDIR/lab; ovs-monitor-ipsec, and ovsnet run
  through `run()`, use WORKDIR/lab/db.sock. OVS_RUNDIR=WORKDIR/lab puts the monitor's pidfile and
  control socket in the lab host's run directory, where `ovs-appctl` and `ovsnet ipsec show
  --rundir` find them from outside.
- Commands for this host's strongSwan run with `nsenter --target <monitor pid> --mount --net`.
- xfrm netlink works in a netns on this kernel, so charon installs the trap policies
  (auto=route) and `ip xfrm policy` shows them. The userspace datapath builds GRE packets
  itself, so no packet ever hits those policies and charon never gets an ACQUIRE: IKE is
  started with `ipsec up <conn>`. IKE_SA_INIT and IKE_AUTH then complete (or fail on
  authentication); the CHILD_SA fails (NO_PROPOSAL_CHOSEN, no ESP here) and strongSwan keeps
  the IKE SA ("failed to establish CHILD_SA, keeping IKE_SA").
- Debian's ovs-monitor-ipsec writes `ca ca_auth / cacert=...` without `auto=add`, so the CA is
  never loaded and certificate authentication fails (AUTH_FAILED) until the CA file sits in
  /etc/ipsec.d/cacerts AND strongSwan rereads it (`ipsec rereadcacerts`, or a restart).
- ovs-monitor-ipsec hands the key to strongSwan as `: RSA <file>`: ECDSA keys fail to load.
- At log level dbg ovs-monitor-ipsec logs the OVSDB rows, PSKs included; its default (info)
  does not. tunnels/show always prints the PSK.

Stop: `ipsec stop` inside the namespaces, SIGTERM to the monitor, then SIGKILL to whatever of
starter/charon/monitor is left (PIDs from the pidfiles, checked against /proc/PID/cmdline).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from ovsnet.ipsec import keys as ipsec_keys

OVS_MONITOR_IPSEC = "/usr/share/openvswitch/scripts/ovs-monitor-ipsec"
IPSEC_D_SUBDIRS = ("aacerts", "acerts", "cacerts", "certs", "crls", "ocspcerts", "private", "reqs")

_STRONGSWAN_CONF = """\
# ovsnet test harness: this host's charon logs to a file of its own.
charon {{
    load_modular = yes
    filelog {{
        charon {{
            path = {log}
            time_format = %H:%M:%S
            flush_line = yes
            default = 1
            ike = 2
            cfg = 2
        }}
    }}
    syslog {{
        daemon {{
            default = -1
        }}
    }}
    plugins {{
        include strongswan.d/charon/*.conf
    }}
}}
include strongswan.d/*.conf
"""

_ENTER = """\
set -e
mount --bind "$HOST_RUNDIR" "$W/lab"
mount --bind "$W/run" /run
for f in ipsec.conf ipsec.secrets strongswan.conf ipsec.d strongswan.d; do
    mount --bind "$W/etc/$f" "/etc/$f"
done
export OVS_RUNDIR="$W/lab"
exec "$MONITOR" "unix:$W/lab/db.sock" --ike-daemon=strongswan \\
    --pidfile="$W/lab/ovs-monitor-ipsec.pid" --log-file="$W/ovs-monitor-ipsec.log" \\
    -vconsole:off -vfile:info
"""


def _prepare_workdir(workdir: Path) -> None:
    """Per-host copies of everything strongSwan reads or writes under /etc and /run."""
    etc = workdir / "etc"
    (workdir / "lab").mkdir(parents=True)
    (workdir / "run").mkdir()
    etc.mkdir()
    shutil.copytree("/etc/strongswan.d", etc / "strongswan.d", symlinks=True)
    for sub in IPSEC_D_SUBDIRS:
        (etc / "ipsec.d" / sub).mkdir(parents=True, mode=0o700 if sub == "private" else 0o755)
    (etc / "ipsec.conf").write_text("")
    fd = os.open(etc / "ipsec.secrets", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)
    (etc / "strongswan.conf").write_text(_STRONGSWAN_CONF.format(log=workdir / "charon.log"))


def _alive(pid: int, name: str) -> bool:
    try:
        return name in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except (FileNotFoundError, ProcessLookupError):
        return False


def _pid_from(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


@dataclass
class IkeHost:
    """One lab host's ovs-monitor-ipsec + strongSwan. Build with `ike_host()`."""

    name: str
    netns: str
    host_rundir: Path
    workdir: Path
    monitor: subprocess.Popen

    # -- running things inside this host's namespaces ------------------------------------------
    @property
    def db(self) -> str:
        """The host's OVSDB as seen inside the private mount namespace."""
        return f"unix:{self.workdir / 'lab' / 'db.sock'}"

    def run(
        self,
        argv: Sequence[str],
        check: bool = False,
        timeout: float = 60,
        input: str | None = None,
    ) -> subprocess.CompletedProcess:
        """Run argv in this host's network + private mount namespace."""
        full = ["nsenter", f"--target={self.monitor.pid}", "--mount", "--net", *map(str, argv)]
        return subprocess.run(
            full, capture_output=True, text=True, check=check, timeout=timeout, input=input
        )

    def ovsnet(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        """`ovsnet --db <this host> ARGS` where /etc/ipsec.d and `ipsec` are this host's."""
        return self.run([sys.executable, "-m", "ovsnet", "--db", self.db, *args], timeout=timeout)

    def ipsec(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess:
        return self.run(["ipsec", *args], timeout=timeout)

    # -- observing ------------------------------------------------------------------------------
    def charon_log(self) -> str:
        path = self.workdir / "charon.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def monitor_log(self) -> str:
        path = self.workdir / "ovs-monitor-ipsec.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def connections(self) -> dict[str, str]:
        """strongSwan connection name -> its `ipsec statusall` auth lines (joined)."""
        out = self.ipsec("statusall").stdout
        section = out.split("Connections:", 1)[-1].split("Routed Connections:", 1)[0]
        conns: dict[str, str] = {}
        for line in section.splitlines():
            match = re.match(r"^\s*(\S+):\s+(.*)$", line)  # names are right-aligned to 12
            if match:
                conns[match[1]] = conns.get(match[1], "") + match[2] + "\n"
        return conns

    def wait_for_connection(self, port: str, needle: str, timeout: float = 30) -> str:
        """Wait until ovs-monitor-ipsec has handed strongSwan a conn for `port` that mentions
        `needle` (e.g. "pre-shared key", "public key"); return the conn name."""
        deadline = time.monotonic() + timeout
        while True:
            for conn, text in self.connections().items():
                if conn.startswith(f"{port}-") and needle in text:
                    return conn
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{self.name}: no strongSwan connection for {port} with {needle!r} after "
                    f"{timeout:.0f}s\n{self.ipsec('statusall').stdout}\n{self.monitor_log()}"
                )
            time.sleep(0.5)

    def ike_sas(self) -> list[str]:
        """`ipsec status` lines of IKE SAs (conn[N]: STATE ...)."""
        out = self.ipsec("status").stdout
        return [line.strip() for line in out.splitlines() if re.match(r"^\s*\S+\[\d+\]:", line)]

    def established(self, conn: str) -> bool:
        return any(s.startswith(f"{conn}[") and "ESTABLISHED" in s for s in self.ike_sas())

    def up(self, conn: str, timeout: float = 30) -> subprocess.CompletedProcess:
        """Start IKE for conn now (no packet will trigger it on a userspace datapath)."""
        return self.ipsec("up", conn, timeout=timeout)

    def tunnels_show(self) -> str:
        """ovs-monitor-ipsec's tunnels/show from outside, as ovs-appctl finds it."""
        env = dict(os.environ, OVS_RUNDIR=str(self.host_rundir))
        done = subprocess.run(
            ["ovs-appctl", "-t", "ovs-monitor-ipsec", "tunnels/show"],
            capture_output=True,
            text=True,
            env=env,
            timeout=30,
        )
        return done.stdout

    # -- lifecycle ------------------------------------------------------------------------------
    def _wait_started(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.monitor.poll() is not None:
                raise RuntimeError(
                    f"{self.name}: ovs-monitor-ipsec exited "
                    f"{self.monitor.returncode}\n{self.monitor_log()}"
                )
            charon = _pid_from(self.workdir / "run" / "charon.pid")
            started = charon and _alive(charon, "charon") and "connected" in self.monitor_log()
            if started and self.ipsec("status").returncode == 0:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name}: strongSwan did not start\n{self.monitor_log()}")
            time.sleep(0.3)

    def stop(self) -> list[str]:
        """Stop everything by PID; return what had to be killed the hard way."""
        problems = []
        run = self.workdir / "run"
        pids = {
            "starter": _pid_from(run / "starter.charon.pid"),
            "charon": _pid_from(run / "charon.pid"),
        }
        if self.monitor.poll() is None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.ipsec("stop", timeout=20)
            self.monitor.send_signal(signal.SIGTERM)
            try:
                self.monitor.wait(timeout=15)
            except subprocess.TimeoutExpired:
                problems.append(f"{self.name}: ovs-monitor-ipsec ignored SIGTERM")
                self.monitor.kill()
                self.monitor.wait(timeout=10)
        for name, pid in pids.items():
            if pid and _alive(pid, name):
                problems.append(f"{self.name}: {name} {pid} survived `ipsec stop`")
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        return problems


@contextlib.contextmanager
def ike_host(lab_host, workdir: Path | None = None) -> Iterator[IkeHost]:
    """Start ovs-monitor-ipsec (which starts strongSwan) for a lab host; stop it afterwards.

    lab_host needs `.name`, `.netns` and `.rundir` (ovsnet.lab.LabHost has them).
    """
    workdir = workdir or Path(tempfile.mkdtemp(prefix=f"ike-{lab_host.name}-", dir="/tmp"))
    _prepare_workdir(workdir)
    env = dict(
        os.environ, W=str(workdir), HOST_RUNDIR=str(lab_host.rundir), MONITOR=OVS_MONITOR_IPSEC
    )
    with open(workdir / "monitor.out", "wb") as out:
        monitor = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                lab_host.netns,
                "unshare",
                "--mount",
                "--propagation",
                "private",
                "sh",
                "-c",
                _ENTER,
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )  # ip, unshare and sh all exec: monitor.pid is ovs-monitor-ipsec's PID
    host = IkeHost(lab_host.name, lab_host.netns, Path(lab_host.rundir), workdir, monitor)
    problems: list[str] = []
    try:
        host._wait_started()
        yield host
    finally:
        problems = host.stop()
        _remove_workdir(workdir)
    if problems:
        raise AssertionError("; ".join(problems))


def _remove_workdir(workdir: Path) -> None:
    # WORKDIR/lab was a bind mount of the lab host's run directory inside the (now empty)
    # private mount namespace: never delete recursively through it.
    lab = workdir / "lab"
    for child in workdir.iterdir():
        if child != lab:
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
    lab.rmdir()  # fails loudly if anything is still mounted or left there
    workdir.rmdir()


def describe(host: IkeHost) -> str:
    """Everything useful for a failed assertion."""
    log_tail = "".join(host.charon_log().splitlines(True)[-40:])
    monitor_tail = "".join(host.monitor_log().splitlines(True)[-20:])
    return (
        f"--- {host.name}: ipsec statusall\n{host.ipsec('statusall').stdout}\n"
        f"--- {host.name}: charon.log (tail)\n{log_tail}\n"
        f"--- {host.name}: ovs-monitor-ipsec.log (tail)\n{monitor_tail}"
    )


# What the IKE tests set in other_config; removed after each test so the next starts clean.
IKE_OTHER_CONFIG_KEYS = (
    "certificate", "private_key", "ca_cert", "ipsec_skb_mark", ipsec_keys.PSK_FILE_KEY,
)  # fmt: skip


@contextlib.contextmanager
def ike_pair(lab) -> Iterator[tuple[tuple, tuple]]:
    """The lab's first two hosts with a netdev br0 and their IKE daemons, as ((host, ike),
    (host, ike)); br0 and the IKE settings of other_config are removed afterwards."""
    for host in lab.hosts[:2]:
        host.vsctl(
            "--may-exist", "add-br", "br0", "--", "set", "Bridge", "br0", "datapath_type=netdev"
        )
    try:
        with ike_host(lab.hosts[0]) as one, ike_host(lab.hosts[1]) as two:
            yield (lab.hosts[0], one), (lab.hosts[1], two)
    finally:
        for host in lab.hosts[:2]:
            host.vsctl("--if-exists", "del-br", "br0")
            for key in IKE_OTHER_CONFIG_KEYS:
                host.vsctl("remove", "Open_vSwitch", ".", "other_config", key, check=False)
