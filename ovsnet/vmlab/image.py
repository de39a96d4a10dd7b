"""Build (once) and cache the Debian 12 base image the real-kernel lab boots, and its Python layer.

The image is a raw ext4 file system made with `mkfs.ext4 -d` from a debootstrap tree, plus the
kernel and initrd taken from its /boot (qemu boots them directly: no boot loader, no partition
table). Baked in: the apt packages of `config.APT_PACKAGES`, an empty venv at /opt/ovsnet/venv
whose path includes the layer mount point, the lab's ssh public key for root, and a busybox
tarball that `docker import` turns into a container image (the VMs have no internet).

The Python layer is a small read-only ext4 disk holding this checkout's ovsnet wheel and its
dependencies, installed on the host with `pip install --target` (native speed, no pip run under
emulation) and byte-compiled, built for each lab in a couple of seconds. So neither editing
ovsnet nor adding a dependency rebuilds the image; the dependencies' wheels are cached.

Cache layout (default /var/cache/ovsnet-vmlab, env OVSNET_VMLAB_CACHE):
    ssh/id_ed25519{,.pub}          the lab's root key (0600)
    wheelhouse/<deps-key>/         ovsnet's dependencies as wheels (built with Python 3.11,
                                   the version of Debian 12's python3)
    pydeps/<deps-key>/             the same, installed (--target) and byte-compiled
    images/<image-key>/            rootfs.img vmlinuz initrd.img meta.json
Run as `python -m ovsnet.vmlab.image` (or `ovsnet vmlab image`).
"""

from __future__ import annotations

import fcntl
import glob
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ovsnet.errors import NotReady, OperationFailed
from ovsnet.vmlab import config

ROOTFS_SIZE = "6G"  # sparse: about 1.3 GB is used; the rest is room for Docker in the VM

Log = Callable[[str], None]


def _stderr_log(message: str) -> None:
    print(f"vmlab: {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Image:
    """A built base image and the key that logs into VMs booted from it."""

    directory: Path
    ssh_key: Path

    @property
    def cache(self) -> Path:
        return self.directory.parents[1]  # <cache>/images/<key>

    @property
    def rootfs(self) -> Path:
        return self.directory / "rootfs.img"

    @property
    def kernel(self) -> Path:
        return self.directory / "vmlinuz"

    @property
    def initrd(self) -> Path:
        return self.directory / "initrd.img"

    def meta(self) -> dict:
        return json.loads((self.directory / "meta.json").read_text())


def project_root() -> Path:
    return Path(__file__).resolve().parents[2]


def ensure_ssh_key(cache: Path) -> Path:
    """The lab's root key pair, generated once; the private key stays 0600."""
    key = cache / "ssh" / "id_ed25519"
    if not key.exists():
        key.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "ovsnet-vmlab", "-f", str(key)])
    os.chmod(key, 0o600)
    return key


def host_apt_sources() -> list[str]:
    paths = ["/etc/apt/sources.list", *sorted(glob.glob("/etc/apt/sources.list.d/*.sources"))]
    paths += sorted(glob.glob("/etc/apt/sources.list.d/*.list"))
    return [Path(p).read_text() for p in paths if Path(p).is_file()]


def vm_apt_sources(mirror: str) -> str:
    """The VM's apt sources: the host's mirror, for the suite, its updates and security."""
    security = mirror.rsplit("/", 1)[0] + "/debian-security" if mirror.endswith("/debian") else ""
    text = (
        f"Types: deb\nURIs: {mirror}\nSuites: {config.DEBIAN_SUITE} "
        f"{config.DEBIAN_SUITE}-updates\nComponents: main\n"
        "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
    )
    if security:
        text += (
            f"\nTypes: deb\nURIs: {security}\nSuites: {config.DEBIAN_SUITE}-security\n"
            "Components: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
        )
    return text


def ensure_wheelhouse(cache: Path, python_deps: list[str], log: Log = _stderr_log) -> Path:
    """ovsnet's dependencies as wheels, built with this (3.11, like Debian 12's) Python."""
    house = cache / "wheelhouse" / config.wheelhouse_key(python_deps)
    if (house / "requirements.txt").exists():
        return house
    partial = house.with_name(house.name + f".partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    (partial / "requirements.in").write_text("\n".join(python_deps) + "\n")
    log(f"building the wheelhouse ({len(python_deps)} dependencies)")
    _run(
        ["nice", "-n", "10", sys.executable, "-m", "pip", "wheel", "-q", "--prefer-binary",
         "-w", str(partial), "-r", str(partial / "requirements.in")]
    )  # fmt: skip
    (partial / "requirements.in").rename(partial / "requirements.txt")
    shutil.rmtree(house, ignore_errors=True)
    partial.rename(house)
    return house


def build_ovsnet_wheel(out_dir: Path, source: Path | None = None) -> Path:
    """`pip wheel --no-deps` of this checkout (pure Python, a few seconds)."""
    source = source or project_root()
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob("ovsnet-*.whl"):
        old.unlink()
    _run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
         "-w", str(out_dir), str(source)]
    )  # fmt: skip
    wheels = sorted(out_dir.glob("ovsnet-*.whl"))
    if not wheels:
        raise OperationFailed(f"pip wheel produced no ovsnet wheel in {out_dir}")
    return wheels[0]


def ensure_python_deps(cache: Path, log: Log = _stderr_log) -> Path:
    """ovsnet's dependencies installed into a plain directory (cached by the dependency list)."""
    python_deps = config.python_dependencies((project_root() / "pyproject.toml").read_text())
    target = cache / "pydeps" / config.wheelhouse_key(python_deps)
    with _lock(cache / "pydeps" / f".{target.name}.lock"):
        if (target / ".complete").exists():
            return target
        house = ensure_wheelhouse(cache, python_deps, log)
        partial = target.with_name(target.name + f".partial-{os.getpid()}")
        shutil.rmtree(partial, ignore_errors=True)
        _run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-compile",
              "--find-links", str(house), "--target", str(partial),
              "-r", str(house / "requirements.txt")])  # fmt: skip
        _compile(partial)
        (partial / ".complete").write_text("")
        shutil.rmtree(target, ignore_errors=True)
        partial.rename(target)
    return target


def build_python_layer(cache: Path, out: Path, log: Log = _stderr_log) -> Path:
    """A read-only disk with this checkout's ovsnet and its dependencies, for one lab."""
    deps = ensure_python_deps(cache, log)
    stage = out.with_suffix(".d")
    shutil.rmtree(stage, ignore_errors=True)
    try:
        shutil.copytree(deps, stage, symlinks=True)
        wheel = build_ovsnet_wheel(out.parent / "wheel")
        _run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps",
              "--no-compile", "--target", str(stage), str(wheel)])  # fmt: skip
        _compile(stage / "ovsnet")
        (stage / "ovsnet-layer.json").write_text(
            json.dumps({"wheel": wheel.name, "sha256": config.file_key(wheel.read_bytes())}) + "\n"
        )
        used = sum(f.stat().st_size for f in stage.rglob("*") if f.is_file())
        _run(["truncate", "-s", str(used * 2 + 32 * 2**20), str(out)])
        _run(["mkfs.ext4", "-q", "-F", "-L", config.LAYER_LABEL, "-d", str(stage), str(out)])
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return out


def build_seed_disk(out: Path, files: dict[str, str]) -> Path:
    """A NoCloud seed: a small FAT disk labelled cidata holding `files` (user-data may hold
    secrets: the disk and its staging files are 0600)."""
    from ovsnet.vmlab.seed import SEED_LABEL

    out.unlink(missing_ok=True)
    _run(["mkfs.vfat", "-n", SEED_LABEL.upper(), "-C", str(out), "2048"])
    os.chmod(out, 0o600)
    stage = out.with_suffix(".d")
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(mode=0o700)
    try:
        for name, text in files.items():
            path = stage / name
            path.touch(mode=0o600)
            path.write_text(text)
            _run(["mcopy", "-o", "-i", str(out), str(path), f"::{name}"])
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return out


def build_images_disk(archive: Path, out: Path) -> Path:
    """A read-only ext4 disk (label config.IMAGES_LABEL) holding one container image archive."""
    stage = out.with_suffix(".d")
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir()
    try:
        try:
            os.link(archive, stage / archive.name)  # same file system: no copy
        except OSError:
            shutil.copyfile(archive, stage / archive.name)
        size = archive.stat().st_size
        _run(["truncate", "-s", str(size + size // 10 + 32 * 2**20), str(out)])
        _run(["nice", "-n", "10", "mkfs.ext4", "-q", "-F", "-L", config.IMAGES_LABEL, "-d",
              str(stage), str(out)])  # fmt: skip
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return out


DOCKER_DISK_SIZE = "4G"  # sparse; the companion image takes about 600 MB unpacked


def ensure_docker_disk(cache: Path, archive: Path, log: Log = _stderr_log) -> Path:
    """A Docker data root with `archive` (docker save) loaded, as an ext4 disk labelled
    config.DOCKER_LABEL: built once per archive by a private dockerd on the host (seconds at
    native speed, against 5-10 minutes for `docker load` in an emulated VM), then cached.

    The private dockerd has no bridge, no iptables rules and its own sockets and exec root, so it
    touches nothing of the host's; it is stopped by PID.
    """
    stat = archive.stat()
    key = config.file_key(f"{archive.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    disk = cache / "docker-disks" / f"{key}.img"
    with _lock(cache / "docker-disks" / f".{key}.lock"):
        if disk.exists():
            return disk
        for old in disk.parent.glob("*.img"):  # one archive at a time: 600 MB each
            old.unlink()
        started = time.monotonic()
        partial = disk.with_name(f"{key}.partial-{os.getpid()}")
        work = Path(tempfile.mkdtemp(prefix="ovsnet-docker-disk-", dir="/var/tmp"))
        mnt = work / "root"
        mnt.mkdir()
        try:
            _run(["truncate", "-s", DOCKER_DISK_SIZE, str(partial)])
            _run(["mkfs.ext4", "-q", "-F", "-L", config.DOCKER_LABEL, str(partial)])
            _run(["mount", "-o", "loop", str(partial), str(mnt)])
            try:
                _load_with_private_dockerd(mnt, work, archive)
            finally:
                _run(["umount", str(mnt)])
            partial.rename(disk)
        finally:
            partial.unlink(missing_ok=True)
            shutil.rmtree(work, ignore_errors=True)
        log(f"preloaded {archive.name} into a Docker disk in {time.monotonic() - started:.0f} s")
    return disk


def _load_with_private_dockerd(data_root: Path, work: Path, archive: Path) -> None:
    sock = f"unix://{work}/docker.sock"
    (work / "daemon.json").write_text("{}\n")
    argv = ["dockerd", "--config-file", str(work / "daemon.json"), "--data-root", str(data_root),
            "--exec-root", str(work / "exec"), "--pidfile", str(work / "docker.pid"),
            "--host", sock, "--bridge=none", "--iptables=false", "--ip-masq=false",
            "--storage-driver=overlay2"]  # fmt: skip
    with open(work / "dockerd.log", "wb") as out:
        daemon = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                  stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    docker = shutil.which("docker", path="/usr/bin:/bin") or "docker"
    try:
        deadline = time.monotonic() + 60
        while subprocess.run([docker, "-H", sock, "version"], capture_output=True).returncode:
            if daemon.poll() is not None or time.monotonic() > deadline:
                log_tail = (work / "dockerd.log").read_text(errors="replace")[-800:]
                raise OperationFailed(f"the private dockerd did not start: {log_tail}")
            time.sleep(0.5)
        _run([docker, "-H", sock, "load", "--quiet", "--input", str(archive)])
    finally:
        daemon.terminate()  # our own child, by PID; it stops its managed containerd too
        try:
            daemon.wait(timeout=30)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()


def _compile(directory: Path) -> None:
    # Hash-checked .pyc files stay valid whatever mtimes the ext4 copy ends up with, and the
    # layer is read-only: without them every `ovsnet` run would recompile under emulation.
    _run([sys.executable, "-m", "compileall", "-q", "-j", "0", "--invalidation-mode",
          "unchecked-hash", str(directory)])  # fmt: skip


def ensure_image(cache: Path | None = None, log: Log = _stderr_log) -> Image:
    """The cached base image for the current recipe, built first if missing."""
    cache = cache or config.cache_dir()
    _check_tools()
    cache.mkdir(parents=True, exist_ok=True, mode=0o700)
    key_path = ensure_ssh_key(cache)
    pubkey = key_path.with_suffix(".pub").read_text()
    key = config.image_key(config.APT_PACKAGES, pubkey)
    directory = cache / "images" / key
    with _lock(cache / "images" / f".{key}.lock"):
        if not (directory / "meta.json").exists():
            _build(directory, key, pubkey, log)
            _prune_images(cache / "images", keep=key, log=log)
    return Image(directory=directory, ssh_key=key_path)


def _prune_images(images: Path, keep: str, log: Log) -> None:
    """Old images are 1.1 GB each; a running VM keeps its open backing file even if removed."""
    for old in images.iterdir():
        if old.is_dir() and old.name != keep and ".partial-" not in old.name:
            log(f"removing the outdated image {old.name}")
            shutil.rmtree(old, ignore_errors=True)
            (images / f".{old.name}.lock").unlink(missing_ok=True)


def _build(directory: Path, key: str, pubkey: str, log: Log) -> None:
    partial = directory.with_name(directory.name + f".partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    rootfs = partial / "rootfs"
    partial.mkdir(parents=True)
    started = time.monotonic()
    timings: dict[str, float] = {}
    try:
        mirror = os.environ.get("OVSNET_VMLAB_MIRROR") or config.debian_mirror(host_apt_sources())
        step = time.monotonic()
        log(f"debootstrap {config.DEBIAN_SUITE} from {mirror} (about a minute)")
        _in_private_mounts(
            ["nice", "-n", "10", "debootstrap", "--variant=minbase", config.DEBIAN_SUITE,
             str(rootfs), mirror]
        )  # fmt: skip
        timings["debootstrap_s"] = round(time.monotonic() - step, 1)
        step = time.monotonic()
        log(f"installing {len(config.APT_PACKAGES)} packages")
        _stage_files(rootfs, mirror, pubkey)
        _in_private_mounts(
            ["bash", "-c", _CHROOT_SCRIPT, "chroot-setup", str(rootfs)],
            extra_env={"PACKAGES": " ".join(config.APT_PACKAGES)},
        )
        _write_busybox_tarball(rootfs)
        timings["packages_s"] = round(time.monotonic() - step, 1)
        step = time.monotonic()
        _extract_boot_files(rootfs, partial)
        log("making the ext4 image")
        image = partial / "rootfs.img"
        _run(["truncate", "-s", ROOTFS_SIZE, str(image)])
        _run(["nice", "-n", "10", "mkfs.ext4", "-q", "-F", "-L", "ovsnet-vmlab", "-d",
              str(rootfs), str(image)])  # fmt: skip
        timings["mkfs_s"] = round(time.monotonic() - step, 1)
        shutil.rmtree(rootfs)
        meta = {
            "key": key,
            "suite": config.DEBIAN_SUITE,
            "mirror": mirror,
            "apt_packages": list(config.APT_PACKAGES),
            "recipe": config.IMAGE_RECIPE_VERSION,
            "build_seconds": round(time.monotonic() - started, 1),
            **timings,
            "used_bytes": image.stat().st_blocks * 512,
        }
        (partial / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
        shutil.rmtree(directory, ignore_errors=True)
        partial.rename(directory)
        log(f"image {key} built in {meta['build_seconds']} s ({timings})")
    finally:
        shutil.rmtree(partial, ignore_errors=True)


def _stage_files(rootfs: Path, mirror: str, pubkey: str) -> None:
    """Files the chroot script picks up: apt sources, root's key."""
    stage = rootfs / "tmp" / "vmlab-stage"
    stage.mkdir(parents=True)
    (stage / "debian.sources").write_text(vm_apt_sources(mirror))
    (stage / "authorized_keys").write_text(pubkey)


# Runs on the host inside a private mount namespace (mounts vanish with it, even on failure).
_CHROOT_SCRIPT = r"""
set -euo pipefail
R=$1
S=$R/tmp/vmlab-stage
mount -t proc proc "$R/proc"
mount -t sysfs sysfs "$R/sys"
mount --rbind /dev "$R/dev"
in_root() { chroot "$R" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
    DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8 HOME=/root "$@"; }

# Package scripts must not start services in the chroot.
printf '#!/bin/sh\nexit 101\n' > "$R/usr/sbin/policy-rc.d"; chmod +x "$R/usr/sbin/policy-rc.d"
rm -f "$R/etc/apt/sources.list"
cp "$S/debian.sources" "$R/etc/apt/sources.list.d/debian.sources"
cp /etc/resolv.conf "$R/etc/resolv.conf"
in_root apt-get update -qq
in_root nice -n 10 apt-get install -y -q --no-install-recommends $PACKAGES >/dev/null
in_root apt-get clean
rm -rf "$R"/var/lib/apt/lists/* "$R/usr/sbin/policy-rc.d"
: > "$R/etc/resolv.conf"

echo vmlab > "$R/etc/hostname"
echo '/dev/vda / ext4 rw,errors=remount-ro 0 1' > "$R/etc/fstab"
install -d -m 0700 "$R/root/.ssh"
install -m 0600 "$S/authorized_keys" "$R/root/.ssh/authorized_keys"
[ -s "$R/etc/machine-id" ] || in_root systemd-machine-id-setup >/dev/null
mkdir -p "$R/etc/systemd/journald.conf.d"
printf '[Journal]\nStorage=volatile\n' > "$R/etc/systemd/journald.conf.d/vmlab.conf"
mkdir -p "$R/etc/ssh/sshd_config.d"
printf 'UseDNS no\nPasswordAuthentication no\n' > "$R/etc/ssh/sshd_config.d/vmlab.conf"

# Everything runs 20-50 times slower under emulation: give ovsnet's OVSDB calls time, in ssh
# sessions (pam_env) and in systemd units alike.
echo 'OVSNET_OVSDB_TIMEOUT=120' >> "$R/etc/environment"
mkdir -p "$R/etc/systemd/system.conf.d"
printf '[Manager]\nDefaultEnvironment=OVSNET_OVSDB_TIMEOUT=120\n' \
  > "$R/etc/systemd/system.conf.d/vmlab.conf"

# eth0's address comes from `ip=` on the kernel command line (systemd-network-generator).
in_root systemctl enable -q systemd-networkd.service systemd-network-generator.service
# Tests start Docker with the daemon.json they need; timers only cost boot time here.
in_root systemctl disable -q docker.service docker.socket containerd.service
for unit in iperf3.service apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer \
            e2scrub_reap.service fstrim.timer man-db.timer systemd-networkd-wait-online.service; do
  in_root systemctl disable -q "$unit" 2>/dev/null || true
done

# ovsnet and its dependencies come on the layer disk (see image.py's docstring).
in_root python3 -m venv --without-pip /opt/ovsnet/venv
mkdir -p "$R/opt/ovsnet/layer"
for site in "$R"/opt/ovsnet/venv/lib/python3*/site-packages; do
  echo /opt/ovsnet/layer > "$site/ovsnet-layer.pth"
done
# nofail: boot never waits for it; a long device timeout because udev can take minutes to
# label the disk under emulation on a busy host (seen: the default 20 s expired).
echo 'LABEL=ovsnet-layer /opt/ovsnet/layer ext4 ro,nofail,x-systemd.device-timeout=15min 0 0' \
  >> "$R/etc/fstab"
printf '#!/bin/sh\nexec /opt/ovsnet/venv/bin/python3 -m ovsnet "$@"\n' > "$R/usr/local/bin/ovsnet"
chmod 0755 "$R/usr/local/bin/ovsnet"

# Seeded labs: the companion image archive comes on a disk of its own, mounted only when a unit
# asks for it (the rendered ovsnet.service has RequiresMountsFor= on the archive), so VMs without
# that disk wait for nothing.
echo 'LABEL=ovsnet-images /var/lib/ovsnet-images ext4' \
  'ro,noauto,x-systemd.device-timeout=15min 0 0' >> "$R/etc/fstab"
mkdir -p "$R/var/lib/ovsnet-images"
# Or a preloaded Docker data root: mounted only when the kernel line says
# systemd.wants=var-lib-docker.mount, and then before Docker starts.
echo 'LABEL=ovsnet-docker /var/lib/docker ext4' \
  'rw,noauto,x-systemd.before=docker.service,x-systemd.device-timeout=15min 0 0' >> "$R/etc/fstab"
# cloud-init: the lab plays a NoCloud cloud. Without a `cidata` disk, ds-identify finds no
# datasource and disables cloud-init for that boot (unseeded labs boot as before). The VM's
# network config goes to systemd-networkd, the image's network stack; root keeps the lab's key
# and the image's host keys; no locale is set (the image has no locales package: cloud-init's
# default en_US.UTF-8 fails, which is the image's business, not the user-data's).
mkdir -p "$R/etc/cloud/cloud.cfg.d"
cat > "$R/etc/cloud/cloud.cfg.d/90_vmlab.cfg" <<'CFG'
datasource_list: [ NoCloud ]
disable_root: false
ssh_deletekeys: false
ssh_genkeytypes: []
users: []
locale: false
system_info:
  network:
    renderers: [ networkd ]
CFG
rm -rf "$S"
"""


def _write_busybox_tarball(rootfs: Path) -> None:
    """A one-binary root file system (busybox and its applet links) for `docker import`."""
    busybox = rootfs / "bin" / "busybox"
    applets = _run([str(busybox), "--list"], capture=True).split()
    out = rootfs / config.VM_BUSYBOX_TAR.lstrip("/")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(out, "w") as tar:
        tar.add(busybox, arcname="bin/busybox")
        for applet in sorted(set(applets) - {"busybox"}):
            link = tarfile.TarInfo(f"bin/{applet}")
            link.type, link.linkname = tarfile.SYMTYPE, "busybox"
            tar.addfile(link)
        for directory in ("tmp", "www", "etc", "root"):
            info = tarfile.TarInfo(directory)
            info.type, info.mode = tarfile.DIRTYPE, 0o1777 if directory == "tmp" else 0o755
            tar.addfile(info)


def _extract_boot_files(rootfs: Path, directory: Path) -> None:
    kernels = sorted((rootfs / "boot").glob("vmlinuz-*"))
    initrds = sorted((rootfs / "boot").glob("initrd.img-*"))
    if not kernels or not initrds:
        raise OperationFailed("the image has no kernel or initrd in /boot")
    shutil.copy2(kernels[-1], directory / "vmlinuz")
    shutil.copy2(initrds[-1], directory / "initrd.img")


def _check_tools() -> None:
    tools = ("debootstrap", "mkfs.ext4", "qemu-system-x86_64", "qemu-img", "ssh", "ssh-keygen",
             "unshare", "chroot", "tcpdump", "mkfs.vfat", "mcopy")  # fmt: skip
    missing = [tool for tool in tools if not shutil.which(tool)]
    if missing:
        raise NotReady(f"missing tools: {' '.join(missing)}", "run `bash scripts/setup.sh`")
    if os.geteuid() != 0:
        raise NotReady("the VM lab needs root", "run it as root")


@contextmanager
def _lock(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _in_private_mounts(argv: list[str], extra_env: dict[str, str] | None = None) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env.update(extra_env or {})
    _run(["unshare", "--mount", "--propagation", "private", *argv], env=env)


def _run(argv: list[str], capture: bool = False, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(argv, text=True, capture_output=True, env=env)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-15:]
        raise OperationFailed(
            f"`{' '.join(argv[:6])}` failed (exit {proc.returncode}): " + " | ".join(tail)
        )
    return proc.stdout if capture else ""


def main() -> int:
    image = ensure_image()
    print(json.dumps({"directory": str(image.directory), **image.meta()}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
