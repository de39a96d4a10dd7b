"""The extra disks a seeded VM lab boots with: the NoCloud seed (user-data), a disk holding the
companion image archive, and a preloaded Docker data root (cached per archive).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from ovsnet.errors import OperationFailed
from ovsnet.vmlab import config
from ovsnet.vmlab.host_run import Log, cache_lock, run, stderr_log


def build_seed_disk(out: Path, files: dict[str, str]) -> Path:
    """A NoCloud seed: a small FAT disk labelled cidata holding `files` (user-data may hold
    secrets: the disk and its staging files are 0600)."""
    from ovsnet.vmlab.seed import SEED_LABEL

    out.unlink(missing_ok=True)
    run(["mkfs.vfat", "-n", SEED_LABEL.upper(), "-C", str(out), "2048"])
    os.chmod(out, 0o600)
    stage = out.with_suffix(".d")
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(mode=0o700)
    try:
        for name, text in files.items():
            path = stage / name
            path.touch(mode=0o600)
            path.write_text(text)
            run(["mcopy", "-o", "-i", str(out), str(path), f"::{name}"])
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
        run(["truncate", "-s", str(size + size // 10 + 32 * 2**20), str(out)])
        run(["nice", "-n", "10", "mkfs.ext4", "-q", "-F", "-L", config.IMAGES_LABEL, "-d",
             str(stage), str(out)])  # fmt: skip
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return out


DOCKER_DISK_SIZE = "4G"  # sparse; the companion image takes about 600 MB unpacked


def ensure_docker_disk(cache: Path, archive: Path, log: Log = stderr_log) -> Path:
    """A Docker data root with `archive` (docker save) loaded, as an ext4 disk labelled
    config.DOCKER_LABEL: built once per archive by a private dockerd on the host (seconds at
    native speed, against 5-10 minutes for `docker load` in an emulated VM), then cached.

    The private dockerd has no bridge, no iptables rules and its own sockets and exec root, so it
    touches nothing of the host's; it is stopped by PID.
    """
    stat = archive.stat()
    key = config.file_key(f"{archive.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    disk = cache / "docker-disks" / f"{key}.img"
    with cache_lock(cache / "docker-disks" / f".{key}.lock"):
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
            run(["truncate", "-s", DOCKER_DISK_SIZE, str(partial)])
            run(["mkfs.ext4", "-q", "-F", "-L", config.DOCKER_LABEL, str(partial)])
            run(["mount", "-o", "loop", str(partial), str(mnt)])
            try:
                _load_with_private_dockerd(mnt, work, archive)
            finally:
                run(["umount", str(mnt)])
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
        run([docker, "-H", sock, "load", "--quiet", "--input", str(archive)])
    finally:
        daemon.terminate()  # our own child, by PID; it stops its managed containerd too
        try:
            daemon.wait(timeout=30)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()
