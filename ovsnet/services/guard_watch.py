"""`ovsnet ipsec plaintext watch`: keep the plaintext guard in place for as long as it runs.

A firewall reload (`nft flush ruleset` in a stock /etc/nftables.conf) removes every table,
ovsnet's guard included, and nothing else would put it back before the next `init`. The
watcher sleeps on `nft monitor` and re-installs the guard OVSDB asks for as soon as its table
is touched, plus a re-check every RECHECK seconds (a monitor that missed its start, OVSDB
changed by hand). It never narrows the guard: only commands that commit a removal do.

Place: docs/architecture.md, "Packages and what they own": the services layer.
"""

from __future__ import annotations

import logging
import selectors
import time
from collections.abc import Callable

from ovsnet import nftables
from ovsnet.errors import OvsnetError
from ovsnet.hostlock import host_lock
from ovsnet.ovsdb.client import OvsDb
from ovsnet.services.guard import heal_guard

log = logging.getLogger("ovsnet.guard")

RECHECK = 10.0  # seconds between re-checks when the monitor reports nothing
RETRY = 1.0  # after a failed heal (OVSDB restarting, nft busy, the host lock held)
LOCK_WAIT = 2.0  # a command holding the host lock is changing the guard itself: retry soon


class GuardWatcher:
    """The monitor and the heal, registered in a select() loop (its own, or the companion's)."""

    def __init__(self, db: OvsDb, selector: selectors.BaseSelector, data: object = "nft"):
        self.db = db
        self.selector = selector
        self.data = data
        self.monitor: nftables.Monitor | None = None
        self._start_monitor()

    def _start_monitor(self) -> None:
        self.monitor = nftables.Monitor()
        self.selector.register(self.monitor, selectors.EVENT_READ, self.data)

    def _stop_monitor(self) -> None:
        if self.monitor is not None:
            self.selector.unregister(self.monitor)
            self.monitor.close()
            self.monitor = None

    def on_event(self) -> bool:
        """Read the monitor; True when the guard should be checked now."""
        changed = self.monitor.changed() if self.monitor is not None else None
        if changed is None:  # nft monitor exited: the next heal starts another one
            self._stop_monitor()
            return True
        return changed

    def heal(self) -> bool:
        """Check and repair once; False when it could not (retry soon)."""
        try:
            if self.monitor is None:
                self._start_monitor()
            # Under the host lock: a command widening the guard at this instant would otherwise
            # have its wider guard replaced by what this heal read before it.
            with host_lock(self.db.db, holder="ovsnet plaintext watch", wait=LOCK_WAIT):
                for step in heal_guard(self.db):
                    log.warning("plaintext guard was missing or cut: %s", step)
        except OvsnetError as exc:
            log.error("plaintext guard not checked: %s", exc.one_line())
            return False
        return True

    def close(self) -> None:
        self._stop_monitor()


def watch(db: OvsDb, keep_going: Callable[[], bool] = lambda: True) -> None:
    """Run until keep_going() turns false (the CLI: until SIGTERM)."""
    selector = selectors.DefaultSelector()
    watcher = GuardWatcher(db, selector)
    try:
        due = 0.0
        while keep_going():
            for _ in selector.select(max(0.0, due - time.monotonic())):
                if watcher.on_event():
                    due = 0.0
            if time.monotonic() >= due:
                due = time.monotonic() + (RECHECK if watcher.heal() else RETRY)
    finally:
        watcher.close()
        selector.close()
