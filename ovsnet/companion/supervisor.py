"""The companion container's foreground process: start OVS, join the overlay, keep it healed.

One event loop, no busy polling: it sleeps in select() on
- a netlink socket (link and address changes: Docker restarting puts the gateway back on docker0),
- a pidfd per daemon (ovs-vswitchd or ovsdb-server died: restart it, then heal),
- the signal wake-up fd (SIGTERM from `docker stop`: stop the daemons, exit 0),
- `nft monitor` (a firewall reload removed the plaintext guard: put it back at once),
and wakes every RECHECK seconds for a cheap re-check (and to retry a heal that failed).
What one heal does is in `healing.py`; starting and stopping the daemons in `daemons.py`.
"""

from __future__ import annotations

import logging
import selectors
import signal
import socket
import time
from typing import TYPE_CHECKING

from ovsnet.companion import daemons
from ovsnet.companion.config import Backoff, CompanionConfig, RestartBudget
from ovsnet.companion.daemons import OvsPaths, Watched
from ovsnet.companion.healing import HostHealer
from ovsnet.errors import InvalidInput, OperationFailed, OvsnetError

if TYPE_CHECKING:  # loaded when first used: the companion starts OVS before it needs them
    from ovsnet.ovsdb.client import OvsDb
    from ovsnet.plaintext_guard import Guard
    from ovsnet.services.guard_watch import GuardWatcher
    from ovsnet.services.ipsec_heal import Healer

log = logging.getLogger("ovsnet.companion")

RECHECK = 30.0  # seconds between re-checks when nothing happens
SETTLE = 0.2  # a Docker restart is a burst of netlink events: heal once it has settled
LOCK_WAIT = 5.0  # seconds to wait for another ovsnet process changing the host
# Before the daemons run the loop has nothing else to do: wait out a command that holds the
# lock while it waits for an ovs-vswitchd that is not there (its OVSDB timeout, 10 s).
START_LOCK_WAIT = 60.0


class Exit(Exception):
    """Leave the loop with this exit code."""

    def __init__(self, code: int):
        super().__init__(code)
        self.code = code


class Supervisor:
    def __init__(self, config: CompanionConfig, paths: OvsPaths | None = None):
        self.config = config
        self.paths = paths or OvsPaths()
        self.daemons: dict[str, Watched] = {}
        self.budget = {"ovsdb-server": RestartBudget(), "ovs-vswitchd": RestartBudget()}
        self.backoff = Backoff()
        self.heal_at: float | None = 0.0  # heal as soon as the loop starts
        self.recheck_at = 0.0
        self.ipsec_on = False
        self.stopping = False
        self.healing = HostHealer(config, self.paths)  # also holds OVSDB and netlink open
        self._healer: Healer | None = None  # IPsec peers left not established
        self._guard_watcher: GuardWatcher | None = None
        self._selector = selectors.DefaultSelector()

    # -- entry point ----------------------------------------------------------------------------

    def run(self) -> int:
        from ovsnet.netlink import LinkWatcher

        wakeup_r, wakeup_w = socket.socketpair()
        wakeup_w.setblocking(False)
        old_fd = signal.set_wakeup_fd(wakeup_w.fileno(), warn_on_full_buffer=False)
        handlers = {
            sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)
        }
        try:
            with LinkWatcher() as watcher:
                self._selector.register(wakeup_r, selectors.EVENT_READ, "signal")
                self._selector.register(watcher, selectors.EVENT_READ, "netlink")
                self._start_ovs()
                self._watch_guard()
                return self._loop(watcher, wakeup_r)
        except Exit as done:
            return done.code
        except OvsnetError as exc:
            log.error("%s", exc.one_line())
            return 1
        finally:
            if self._guard_watcher is not None:
                self._guard_watcher.close()
            self.healing.disconnect()
            self._stop_all()
            signal.set_wakeup_fd(old_fd)
            for sig, handler in handlers.items():
                signal.signal(sig, handler)
            wakeup_r.close()
            wakeup_w.close()
            self._selector.close()

    def _on_signal(self, signum, frame) -> None:
        self.stopping = True

    def _loop(self, watcher, wakeup) -> int:
        while not self.stopping:
            for key, _ in self._selector.select(self._timeout()):
                if key.data == "signal":
                    wakeup.recv(64)
                elif key.data == "netlink":
                    self._on_links(watcher.changed_links())
                elif key.data == "nft":
                    guard = self._guard_watcher
                    assert guard is not None, "only the guard watcher registers nft events"
                    if guard.on_event():
                        guard.heal()
                else:
                    self._on_exit(key.data)
            if self.stopping:
                break
            now = time.monotonic()
            if now >= self.recheck_at:
                self.recheck_at = now + RECHECK
                self._schedule_heal(now)
                if self._guard_watcher is not None:
                    self._guard_watcher.heal()
            self._heal_ipsec()  # acts only when a peer is due (10 s apart while one is down)
            if self.heal_at is not None and now >= self.heal_at:
                self._heal()
        log.info("stopping (SIGTERM)")
        return 0

    def _timeout(self) -> float:
        due = [self.recheck_at] + ([self.heal_at] if self.heal_at is not None else [])
        if self._healer is not None and self._healer_db() is not None:
            # Its clock is the wall clock (its records outlive us). Only while it can tick: a
            # due time it cannot act on would make this loop spin and starve the host's CPU.
            due.append(time.monotonic() + self._healer.due_at - time.time())
        return max(0.0, min(due) - time.monotonic())

    def _schedule_heal(self, at: float) -> None:
        self.heal_at = at if self.heal_at is None else min(self.heal_at, at)

    # -- daemons --------------------------------------------------------------------------------

    def _start_ovs(self) -> None:
        # The host lock from before ovsdb-server answers until ovs-vswitchd runs. A command
        # that got in between (the boot unit's `ovsnet init`, as soon as OVSDB answers) would
        # hold the lock while it waits for vswitchd to apply its change, while vswitchd waits
        # for the guard, which needs the lock: the start failed and the container restarted.
        from ovsnet.plaintext_guard import guard_for_tunnels

        self.paths.rundir.mkdir(parents=True, exist_ok=True)  # where the lock file lives
        with self._host_lock("start", wait=START_LOCK_WAIT):
            self._watch(daemons.start_ovsdb(self.paths))
            host = self._restore_guard()
            # The IKE daemon first where it will be needed, so strongSwan has the tunnels'
            # policies as early as vswitchd re-creates them (the guard drops what comes before).
            if self.config.ipsec or any(t.method for t in host.tunnels):
                self._ensure_ipsec(in_use=True, peers=guard_for_tunnels(host.tunnels))
            self._watch(daemons.start_vswitchd(self.paths))
        log.info("ovsdb-server and ovs-vswitchd running (datapath %s)", self.config.datapath)
        daemons.run_hooks(self.config.hook_dir, "start")

    def _restore_guard(self):
        """The plaintext guard before vswitchd re-creates the IPsec tunnels kept in OVSDB.

        After a reboot the kernel has no guard and strongSwan has no policies yet: without
        the guard, the first packets of those tunnels would leave in clear. Fail closed: when
        OVSDB holds tunnels the guard must cover and it cannot be put in place, ovs-vswitchd
        is not started (the supervisor exits 1 and the restart policy tries again).
        """
        from ovsnet.ovsdb.client import OvsDb
        from ovsnet.plaintext_guard import desired_guard
        from ovsnet.services.guard import restore_guard
        from ovsnet.services.observed import observe_host

        with OvsDb(self.paths.db) as db:
            host = observe_host(db)  # unreadable: OvsnetError, nothing starts
            wanted = desired_guard(host)
            try:
                with self._host_lock("plaintext restore"):
                    for step in restore_guard(db):
                        log.info("%s", step)
            except OvsnetError as exc:
                if wanted:
                    raise OperationFailed(
                        f"not starting ovs-vswitchd: OVSDB holds IPsec tunnels to "
                        f"{len(wanted.peers)} peer(s) and the plaintext guard could not be put "
                        f"in place ({exc.one_line()})",
                        "make nftables work in the container (nft list ruleset)",
                    ) from None
                log.warning("plaintext guard not checked: %s", exc.one_line())
        return host

    def _watch_guard(self) -> None:
        """Keep the guard in place while the companion runs (a firewall reload flushes it)."""
        from ovsnet.ovsdb.client import OvsDb
        from ovsnet.services.guard_watch import GuardWatcher

        try:
            self._guard_watcher = GuardWatcher(OvsDb(self.paths.db), self._selector, "nft")
        except OvsnetError as exc:
            log.warning("plaintext guard not watched: %s", exc.one_line())

    def _watch(self, watched: Watched) -> None:
        self.daemons[watched.name] = watched
        self._selector.register(watched, selectors.EVENT_READ, watched.name)

    def _unwatch(self, name: str) -> Watched | None:
        watched = self.daemons.pop(name, None)
        if watched is not None:
            self._selector.unregister(watched)
            watched.close()
        return watched

    def _on_exit(self, name: str) -> None:
        watched = self.daemons[name]
        reason = watched.exit_reason()
        self._unwatch(name)
        if name == "ovs-monitor-ipsec":
            log.warning("ovs-monitor-ipsec %s: starting it again", reason)
            self.ipsec_on = False
            self._schedule_heal(time.monotonic())
            return
        if not self.budget[name].allow(time.monotonic()):
            log.error(
                "%s %s, too often: giving up so the restart policy starts afresh", name, reason
            )
            raise Exit(1)
        log.warning("%s %s: restarting it", name, reason)
        if name == "ovsdb-server":
            self.healing.disconnect()
            self._watch(daemons.start_ovsdb(self.paths))
        else:
            with self._host_lock("restart", wait=START_LOCK_WAIT):  # as at the start
                self._restore_guard()  # fail closed here too
                self._watch(daemons.start_vswitchd(self.paths))
            daemons.run_hooks(self.config.hook_dir, "restart")
        self._schedule_heal(time.monotonic())

    def _stop_all(self) -> None:
        """Monitor, vswitchd, ovsdb-server: each one is given a clean exit."""
        for name in ("ovs-monitor-ipsec", "ovs-vswitchd", "ovsdb-server"):
            watched = self.daemons.get(name)
            try:
                if name == "ovs-monitor-ipsec" and (watched or self.ipsec_on):
                    daemons.stop_ipsec(self.paths)
                elif name == "ovs-vswitchd" and watched is not None:
                    daemons.stop_child(watched)
                elif name == "ovsdb-server" and watched is not None:
                    daemons.stop_ovsdb(self.paths)
            except OvsnetError as exc:
                log.error("%s", exc.one_line())
            if watched is not None:
                self._unwatch(name)
        log.info("OVS stopped; the database is in %s", self.paths.db_file)

    # -- links ----------------------------------------------------------------------------------

    def _on_links(self, names: set[str] | None) -> None:
        ours = {self.config.bridge, self.config.docker_bridge}
        if names is None or names & ours:
            self._schedule_heal(time.monotonic() + SETTLE)

    # -- healing --------------------------------------------------------------------------------

    def _heal(self) -> None:
        """Make the host match the configuration (first time) or what OVSDB records."""
        self.heal_at = None
        self.healing.heal_started = time.monotonic()
        try:
            with self._host_lock("heal"):
                self._ensure_ipsec(self.healing.heal_once())
        except InvalidInput as exc:
            if not self.healing.configured and self.config.configured:
                log.error("configuration: %s", exc.one_line())
                raise Exit(2) from None
            self._retry(exc)
        except OvsnetError as exc:
            self.healing.disconnect()  # start the next try from a fresh connection
            self._retry(exc)
        else:
            self.backoff.reset()

    def _host_lock(self, what: str, wait: float = LOCK_WAIT):
        """One writer at a time with the CLI (`docker exec ovsnet ovsnet ...`, the boot unit).
        In the loop a short wait: it must stay responsive, and a busy host is retried later."""
        from ovsnet.hostlock import host_lock

        return host_lock(self.paths.db, holder=f"ovsnet companion {what}", wait=wait)

    def _retry(self, exc: OvsnetError) -> None:
        delay = self.backoff.next_delay()
        log.warning("not healed yet (retrying in %.1f s): %s", delay, exc.one_line())
        self._schedule_heal(time.monotonic() + delay)

    def _ensure_ipsec(self, in_use: bool, peers: Guard | None = None) -> None:
        """Run strongSwan and ovs-monitor-ipsec once IPsec is configured or in use (`peers`:
        the IPsec tunnels' peers, whose kernel state a new charon starts without)."""
        if self.ipsec_on or not (self.config.ipsec or in_use):
            return
        try:
            self._watch(daemons.start_ipsec(self.paths, peers))
        except OvsnetError as exc:
            # Not fatal: the guard drops what IPsec does not protect; the next heal retries.
            log.error("IKE daemon not started: %s", exc.one_line())
            return
        self.ipsec_on = True
        log.info("strongSwan and ovs-monitor-ipsec running")

    def _healer_db(self) -> OvsDb | None:
        """The OVSDB connection the IPsec healer ticks on; None while it cannot tick."""
        return self.healing.db if self.ipsec_on else None

    def _heal_ipsec(self) -> None:
        """Repair IPsec peers that stay not established, one at a time (logs each repair)."""
        db = self._healer_db()
        if db is None:
            return
        from ovsnet.services.ipsec_heal import healer_for

        self._healer = self._healer or healer_for(str(self.paths.rundir))
        if time.time() >= self._healer.due_at:
            self._healer.tick(db)
