"""Build (once) and cache the Debian 12 base image the real-kernel lab boots, and its Python layer.

The image is a raw ext4 file system made with `mkfs.ext4 -d` from a debootstrap tree, plus the
kernel and initrd taken from its /boot (qemu boots them directly: no boot loader, no partition
table). Baked in: the apt packages of `config.APT_PACKAGES`, an empty venv at /opt/ovsnet/venv
whose path includes the layer mount point, the lab's ssh public key for root, and a busybox
tarball that `docker import` turns into a container image (the VMs have no internet).

ovsnet itself comes on the Python layer, a disk built for each lab (`python_layer.py`); the
seeded labs' extra disks are made by `disks.py`.

Cache layout (default /var/cache/ovsnet-vmlab, env OVSNET_VMLAB_CACHE):
    ssh/id_ed25519{,.pub}          the lab's root key (0600)
    wheelhouse/<deps-key>/         ovsnet's dependencies as wheels (built with Python 3.11,
                                   the version of Debian 12's python3)
    pydeps/<deps-key>/             the same, installed (--target) and byte-compiled
    images/<image-key>/            rootfs.img vmlinuz initrd.img meta.json
Run as `python -m ovsnet.vmlab.image` (or `ovsnet vmlab image`).
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import sys
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

from ovsnet.errors import NotReady, OperationFailed
from ovsnet.vmlab import config
from ovsnet.vmlab.host_run import Log, cache_lock, in_private_mounts, run, stderr_log

ROOTFS_SIZE = "6G"  # sparse: about 1.3 GB is used; the rest is room for Docker in the VM


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


def ensure_ssh_key(cache: Path) -> Path:
    """The lab's root key pair, generated once; the private key stays 0600."""
    key = cache / "ssh" / "id_ed25519"
    if not key.exists():
        key.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "ovsnet-vmlab", "-f", str(key)])
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


def ensure_image(cache: Path | None = None, log: Log = stderr_log) -> Image:
    """The cached base image for the current recipe, built first if missing."""
    cache = cache or config.cache_dir()
    _check_tools()
    cache.mkdir(parents=True, exist_ok=True, mode=0o700)
    key_path = ensure_ssh_key(cache)
    pubkey = key_path.with_suffix(".pub").read_text()
    key = config.image_key(config.APT_PACKAGES, pubkey)
    directory = cache / "images" / key
    with cache_lock(cache / "images" / f".{key}.lock"):
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
        in_private_mounts(
            ["nice", "-n", "10", "debootstrap", "--variant=minbase", config.DEBIAN_SUITE,
             str(rootfs), mirror]
        )  # fmt: skip
        timings["debootstrap_s"] = round(time.monotonic() - step, 1)
        step = time.monotonic()
        log(f"installing {len(config.APT_PACKAGES)} packages")
        _stage_files(rootfs, mirror, pubkey)
        in_private_mounts(
            ["bash", "-c", _CHROOT_SCRIPT, "chroot-setup", str(rootfs)],
            extra_env={"PACKAGES": " ".join(config.APT_PACKAGES)},
        )
        _write_busybox_tarball(rootfs)
        timings["packages_s"] = round(time.monotonic() - step, 1)
        step = time.monotonic()
        _extract_boot_files(rootfs, partial)
        log("making the ext4 image")
        image = partial / "rootfs.img"
        run(["truncate", "-s", ROOTFS_SIZE, str(image)])
        run(["nice", "-n", "10", "mkfs.ext4", "-q", "-F", "-L", "ovsnet-vmlab", "-d",
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
    applets = run([str(busybox), "--list"], capture=True).split()
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


def main() -> int:
    image = ensure_image()
    print(json.dumps({"directory": str(image.directory), **image.meta()}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
