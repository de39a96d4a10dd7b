"""Boot, reach and tear down the VMs of the real-kernel lab.

Host side, everything lives in one network namespace per lab: a Linux bridge (198.51.100.254)
with one tap per VM, and the qemu processes themselves, so no VM traffic can leave the machine.
Each VM boots the cached image's kernel with a qcow2 overlay over the shared base image. The
lab's state (PIDs, names) is kept in <run dir>/state.json so another process (the CLI) can reach
or remove it later; `down()` kills by PID after checking the PID still is ours.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from ipaddress import IPv4Interface, IPv4Network
from pathlib import Path

from ovsnet.errors import InvalidInput, NotReady, OperationFailed
from ovsnet.lab import netns
from ovsnet.lab import proc as lab_proc
from ovsnet.vmlab import config, lab_state
from ovsnet.vmlab.config import QemuPaths, VmSpec
from ovsnet.vmlab.disks import build_images_disk, build_seed_disk, ensure_docker_disk
from ovsnet.vmlab.host_run import Log, stderr_log
from ovsnet.vmlab.image import Image, ensure_image
from ovsnet.vmlab.python_layer import build_python_layer
from ovsnet.vmlab.vm import SSH_BOOT_TIMEOUT, Vm


@dataclass(frozen=True)
class Seeding:
    """A seeded lab: one VM per host of `inventory`, each booted with nothing but its host's
    `ovsnet render cloud-init` user-data (NoCloud seed). The secrets are embedded opt-in, as
    `render --ipsec-psk-embed / --ipsec-pki-embed` do; `image_archive` (`docker save` of the
    companion image) rides on a disk of its own and the user-data loads it (`--image-tarball`)."""

    inventory: Path
    psk_file: Path | None = None
    pki_dir: Path | None = None
    image_archive: Path | None = None
    # True: the archive is loaded into Docker before boot (a disk with a Docker data root, like
    # a machine image with the companion baked in); the user-data then renders no tarball.
    # False: the user-data's companion unit runs `docker load` itself (minutes under emulation).
    preload: bool = True


@dataclass
class VmLab:
    """A set of VMs on one private underlay. Use `VmLab.up()`, then `down()`."""

    name: str
    lab_id: str
    run_dir: Path
    image: Image
    vms: list[Vm] = field(default_factory=list)
    capture_pids: list[int] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    network: IPv4Network = config.UNDERLAY
    host_address: IPv4Interface = field(default_factory=config.host_side_address)
    seeded: bool = False
    powered_on_at: float | None = None  # time.time() when the VMs' qemu started
    docker_disk: Path | None = None  # preloaded Docker data root (each VM: a qcow2 overlay)

    @property
    def netns(self) -> str:
        return f"ovsnet-{self.name}"

    @property
    def ssh_key(self) -> Path:
        return self.image.ssh_key

    # ----- lifecycle -----------------------------------------------------------------------

    @classmethod
    def up(
        cls,
        vms: int = 3,
        *,
        name: str | None = None,
        memory_mib: int = config.DEFAULT_MEMORY_MIB,
        install_ovsnet: bool = True,
        boot_timeout: float = SSH_BOOT_TIMEOUT,
        seeding: Seeding | None = None,
        on_underlay: Callable[[VmLab], object] | None = None,
        log: Log = stderr_log,
    ) -> VmLab:
        """Boot `vms` VMs and wait until each answers ssh; tear all down if anything fails.

        With `seeding`, the VMs are the inventory's hosts (`vms` and `install_ovsnet` are
        ignored: ovsnet runs in the companion container the user-data starts). `on_underlay`
        runs once the underlay exists, before any VM powers on (e.g. to start a capture).
        """
        lab_id = secrets.token_hex(3)
        specs = [VmSpec(index=i, lab_id=lab_id) for i in range(1, vms + 1)]
        if seeding is not None:
            from ovsnet import inventory as inv
            from ovsnet.vmlab import seed

            specs = seed.vm_specs(inv.load(seeding.inventory), lab_id)
            install_ovsnet = False
        elif not 1 <= vms <= 20:
            raise InvalidInput(f"cannot run {vms} VMs", "give between 1 and 20")
        name = name or f"vmlab-{lab_id}"
        lab_state.check_name(name)
        run_dir = config.run_root() / name
        if run_dir.exists():
            raise InvalidInput(f"a VM lab named {name} exists", f"run `ovsnet vmlab down {name}`")
        started = time.monotonic()
        image = ensure_image(log=log)
        image_ready = time.monotonic()
        run_dir.mkdir(parents=True, mode=0o700)
        network = specs[0].network
        lab = cls(name=name, lab_id=lab_id, run_dir=run_dir, image=image, network=network,
                  host_address=config.host_side_address(network,
                                                        tuple(s.underlay_ip for s in specs)),
                  seeded=seeding is not None)  # fmt: skip
        lab.vms = [Vm(spec=spec, lab=lab) for spec in specs]
        lab.timings["image_s"] = round(image_ready - started, 1)
        try:
            lab._save()
            layer = None
            if install_ovsnet:
                step = time.monotonic()
                layer = build_python_layer(image.cache, run_dir / "layer.img", log)
                lab.timings["python_layer_s"] = round(time.monotonic() - step, 1)
            seeds: dict[str, Path] = {}
            images = None
            if seeding is not None:
                step = time.monotonic()
                seeds, images = lab._seed_disks(seeding, log)
                lab.timings["seed_disks_s"] = round(time.monotonic() - step, 1)
            lab._create_underlay()
            if on_underlay is not None:
                on_underlay(lab)
            booted = time.monotonic()
            lab.powered_on_at = time.time()
            for vm in lab.vms:
                lab._start_vm(vm, memory_mib, layer, seeds.get(vm.name), images)
            lab._save()
            log(f"{len(lab.vms)} VMs started in namespace {lab.netns}; waiting for ssh")
            # With a layer, ready means its ovsnet is mounted too (udev may lag behind sshd).
            ready = f"mountpoint -q {config.VM_LAYER}" if layer else "true"
            lab.wait_for_ssh(deadline=booted + boot_timeout, ready_check=ready)
            lab.timings["boot_to_ssh_s"] = round(time.monotonic() - booted, 1)
            lab._start_ssh_masters()
            lab._save()
        except BaseException:
            with contextlib.suppress(Exception):
                lab.down()
            raise
        log(f"lab {name} up: {lab.timings}")
        return lab

    def down(self) -> None:
        """Stop every process of the lab by PID and remove its namespace and files."""
        problems: list[str] = []
        for pid in self.capture_pids:
            lab_proc.stop_pids({pid: str(self.run_dir)}, timeout=10, sig=signal.SIGINT)
        for vm in self.vms:
            if vm.ssh_master_pid:
                lab_proc.stop_pids({vm.ssh_master_pid: str(vm.control_path)}, timeout=10)
        for vm in self.vms:
            if vm.pid is None:
                vm.pid = lab_proc.read_pidfile(self.run_dir / f"{vm.name}.pid")
            if vm.pid and lab_proc.stop_pids({vm.pid: str(self.run_dir)}, timeout=10):
                problems.append(f"qemu {vm.pid} of {vm.name} did not stop")
        if netns.exists(self.netns):
            proc = subprocess.run(["ip", "netns", "delete", self.netns], capture_output=True)
            if proc.returncode != 0:
                problems.append(f"netns {self.netns}: {proc.stderr.decode().strip()}")
        shutil.rmtree(self.run_dir, ignore_errors=True)
        if problems:
            raise OperationFailed("VM lab not fully removed: " + "; ".join(problems))

    @classmethod
    def load(cls, name: str) -> VmLab:
        """A lab started earlier (by this or another process), from its state file."""
        return lab_state.load(cls, name)

    @staticmethod
    def names() -> list[str]:
        return lab_state.names()

    # ----- use ----------------------------------------------------------------------------

    def vm(self, name: str) -> Vm:
        for vm in self.vms:
            if name in (vm.name, vm.underlay_ip):
                return vm
        known = ", ".join(v.name for v in self.vms)
        raise InvalidInput(f"lab {self.name} has no VM {name!r}", f"pick one of {known}")

    def on_all(self, command: str, *, check: bool = True, timeout: float = 300) -> list:
        """Run one command on every VM in parallel; results in VM order."""
        with ThreadPoolExecutor(max_workers=len(self.vms)) as pool:
            return list(pool.map(lambda vm: vm.ssh(command, check=check, timeout=timeout),
                                 self.vms))  # fmt: skip

    def capture(self, name: str = "capture"):
        """Count underlay packets by protocol: `with lab.capture() as cap: ...; cap.counts`."""
        from ovsnet.vmlab.capture import UnderlayCapture

        return UnderlayCapture(self, name)

    def sync_ovsnet(self) -> None:
        """Developers: copy this checkout's ovsnet package over the one the VMs booted with.

        It lands in the venv's site-packages, which Python searches before the layer.
        """
        import io
        import tarfile

        from ovsnet.vmlab.python_layer import project_root

        package = project_root() / "ovsnet"
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
            tar.add(package, arcname="ovsnet",
                    filter=lambda info: None if "__pycache__" in info.name else info)  # fmt: skip
        site = f"{config.VM_VENV}/lib/python3*/site-packages"
        command = (f"cd {site} && rm -rf ovsnet && tar -xzf - && "
                   f"{config.VM_VENV}/bin/python3 -m compileall -q ovsnet")  # fmt: skip
        with ThreadPoolExecutor(max_workers=len(self.vms)) as pool:
            list(pool.map(lambda vm: vm.ssh(command, input=buffer.getvalue(), check=True),
                          self.vms))  # fmt: skip

    def wait_for_ssh(self, deadline: float, ready_check: str = "true") -> None:
        """Poll every VM until `ready_check` succeeds over ssh; fail early if its qemu died."""
        waiting = list(self.vms)
        while waiting:
            for vm in list(waiting):
                if not vm.running():
                    raise OperationFailed(
                        f"{vm.name}'s qemu exited during boot; console:\n{vm.console_tail()}"
                    )
                if vm.reachable(ready_check):
                    waiting.remove(vm)
            if waiting and time.monotonic() > deadline:
                names = ", ".join(v.name for v in waiting)
                raise OperationFailed(
                    f"{names} did not answer ssh in time; console of {waiting[0].name}:\n"
                    + waiting[0].console_tail()
                )
            if waiting:
                time.sleep(1)  # poll interval while TCG boots, not a wait for a condition

    def status(self) -> dict:
        return {
            "name": self.name,
            "netns": self.netns,
            "run_dir": str(self.run_dir),
            "image": str(self.image.directory),
            "timings": self.timings,
            "vms": [
                {
                    "name": vm.name,
                    "underlay_ip": vm.underlay_ip,
                    "pid": vm.pid,
                    "running": vm.running(),
                    "ssh": vm.running() and vm.reachable(),
                    "rss_mib": round(vm.rss_mib() or 0),
                }
                for vm in self.vms
            ],
        }

    # ----- internals ----------------------------------------------------------------------

    def _save(self) -> None:
        lab_state.save(self)

    def _create_underlay(self) -> None:
        host = self.host_address
        commands = [
            "link set lo up",
            "link add br0 type bridge stp_state 0 nf_call_iptables 0 nf_call_ip6tables 0"
            " nf_call_arptables 0",
            f"addr add {host} dev br0",
            "link set br0 up",
        ]
        for vm in self.vms:
            commands += [f"tuntap add dev {vm.spec.tap} mode tap",
                         f"link set {vm.spec.tap} master br0 up"]  # fmt: skip
        _run(["ip", "netns", "add", self.netns])
        _run(["ip", "-netns", self.netns, "-batch", "-"], input="\n".join(commands) + "\n")

    def _seed_disks(self, seeding: Seeding, log: Log) -> tuple[dict[str, Path], Path | None]:
        """Each host's `ovsnet render cloud-init` user-data on a NoCloud seed disk, and the
        companion image: preloaded in a Docker data root (self.docker_disk), or as an archive on
        a disk all VMs share read-only that the user-data loads (`render --image-tarball`)."""
        from ovsnet.render.service import RenderRequest, run_render
        from ovsnet.vmlab import seed

        tarball = None
        images = None
        if seeding.image_archive is not None:
            if not seeding.image_archive.is_file():
                raise InvalidInput(f"no image archive at {seeding.image_archive}",
                                   "make one with `make image` (docker save)")  # fmt: skip
            if seeding.preload:
                self.docker_disk = ensure_docker_disk(self.image.cache, seeding.image_archive, log)
            else:
                tarball = f"{config.VM_IMAGES_DIR}/{seeding.image_archive.name}"
                images = build_images_disk(seeding.image_archive, self.run_dir / "images.img")
        seeds = {}
        for vm in self.vms:
            user_data = self.run_dir / f"{vm.name}.user-data"
            run_render(RenderRequest(
                kind="cloud-init", inventory=seeding.inventory, host=vm.name,
                image_tarball=tarball, ipsec_psk_embed=seeding.psk_file,
                ipsec_pki_embed=seeding.pki_dir, output=user_data,
            ))  # fmt: skip
            files = seed.seed_files(vm.spec, user_data.read_text())
            seeds[vm.name] = build_seed_disk(self.run_dir / f"{vm.name}.seed.img", files)
        log(f"seeded {len(seeds)} VMs from {seeding.inventory}")
        return seeds, images

    def _start_vm(
        self,
        vm: Vm,
        memory_mib: int,
        layer: Path | None,
        seed: Path | None = None,
        images: Path | None = None,
    ) -> None:
        paths = QemuPaths(
            kernel=self.image.kernel,
            initrd=self.image.initrd,
            disk=self.run_dir / f"{vm.name}.qcow2",
            pidfile=self.run_dir / f"{vm.name}.pid",
            console=self.run_dir / f"{vm.name}.console.log",
            monitor=self.run_dir / f"{vm.name}.monitor",
            layer=layer,
            seed=seed,
            images=images,
        )
        _run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b",
              str(self.image.rootfs), str(paths.disk)])  # fmt: skip
        if self.docker_disk is not None:
            paths = dataclasses.replace(paths, docker=self.run_dir / f"{vm.name}.docker.qcow2")
            _run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b",
                  str(self.docker_disk), str(paths.docker)])  # fmt: skip
        argv = config.qemu_argv(vm.spec, paths, memory_mib)
        _run(["nice", "-n", "10", "ip", "netns", "exec", self.netns, *argv])
        vm.pid = lab_proc.read_pidfile(paths.pidfile)
        if vm.pid is None:
            raise OperationFailed(f"qemu of {vm.name} left no pidfile")

    def _start_ssh_masters(self) -> None:
        """One persistent ssh connection per VM: later commands skip the key exchange,
        which costs most of a second under emulation."""
        for vm in self.vms:
            self._start_ssh_master(vm, wait=False)
        deadline = time.monotonic() + 30
        while not all(vm.control_path.exists() for vm in self.vms):
            if time.monotonic() > deadline:
                break  # commands still work, each with its own connection
            time.sleep(0.2)

    def _start_ssh_master(self, vm: Vm, wait: bool = True) -> None:
        proc = subprocess.Popen(
            vm.ssh_argv("", master=True),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        vm.ssh_master_pid = proc.pid
        deadline = time.monotonic() + 30
        while wait and not vm.control_path.exists() and time.monotonic() < deadline:
            time.sleep(0.2)

    def _stop_ssh_master(self, vm: Vm) -> None:
        if vm.ssh_master_pid:
            lab_proc.stop_pids({vm.ssh_master_pid: str(vm.control_path)}, timeout=10)
            vm.ssh_master_pid = None
        vm.control_path.unlink(missing_ok=True)


def _run(argv: list[str], input: str | None = None) -> None:
    proc = subprocess.run(argv, input=input, capture_output=True, text=True)
    if proc.returncode != 0:
        raise OperationFailed(f"`{' '.join(argv[:8])}` failed: {proc.stderr.strip()[-500:]}")


def require_root() -> None:
    if os.geteuid() != 0:
        raise NotReady("the VM lab needs root", "run it as root")
