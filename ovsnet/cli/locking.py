"""The host lock around every CLI command that changes the host (ovsnet.hostlock)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from ovsnet.cli.output import Settings


@contextmanager
def changing_host(settings: Settings, holder: str, dry_run: bool = False) -> Iterator[None]:
    """Hold the host lock while the command reads, plans and applies. A dry run changes
    nothing, so it neither takes the lock nor waits for it."""
    if dry_run:
        yield
        return
    from ovsnet.hostlock import host_lock

    with host_lock(settings.db, holder=f"ovsnet {holder}", wait=settings.lock_wait):
        yield
