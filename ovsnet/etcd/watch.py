"""Watches of etcd, driven on the gRPC stub, not through pyetcd's watcher: that one calls back
with None when a stream ends cleanly and never reports a watch that etcd cancels (seen: a
watch on a prefix the user may not read is created, cancelled by etcd with "permission
denied", and pyetcd's callback is never called). Here every end of a watch is reported once.

Place: docs/architecture.md, "Layers": facade layer.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable

from ovsnet.etcd.connection import Connection
from ovsnet.etcd.errors import EtcdDenied, EtcdUnavailable, WatchEnded
from ovsnet.etcd.items import Change, change_of


class Watching(Connection):
    """Watches of a prefix, one member at a time; every end of a watch is reported once."""

    def watch_prefix(
        self,
        prefix: str,
        start_revision: int,
        on_changes: Callable[[list[Change]], None],
        on_error: Callable[[Exception], None],
    ) -> Callable[[], None]:
        """Call on_changes with each batch of changes after start_revision (from a thread of
        its own); on_error exactly once when the watch stops for any reason other than the
        returned cancel function: an error, a clean end of the stream, a cancel by etcd.
        Raises (EtcdDenied, EtcdUnavailable, ...) if no member confirms the watch."""
        attempts = len(self.config.urls)
        for attempt in range(attempts):
            member = self._member()
            try:
                return self._watch_on_member(prefix, start_revision, on_changes, on_error)
            except EtcdUnavailable:
                if attempt == attempts - 1:
                    raise
                self._fail_over(member)
        raise AssertionError("unreachable")

    def _watch_on_member(self, prefix, start_revision, on_changes, on_error):
        from pyetcd import etcdrpc, utils

        client = self.client
        member = client._current_endpoint_label
        where = self.where
        stopped = threading.Event()  # set once: by cancel() or by the end of the watch
        created = threading.Event()
        failure: list[Exception] = []
        create = etcdrpc.WatchCreateRequest(
            key=prefix.encode(),
            range_end=utils.prefix_range_end(prefix.encode()),
            start_revision=start_revision,
        )

        def requests():
            yield etcdrpc.WatchRequest(create_request=create)
            stopped.wait()  # keep our half of the stream open until the watch is over

        def report(error: Exception) -> None:
            if stopped.is_set():
                return
            stopped.set()
            if isinstance(error, EtcdUnavailable):
                self._fail_over(member)
            if created.is_set():
                on_error(error)
            else:
                failure.append(error)
                created.set()

        with self._errors(f"watching {prefix}"):
            from pyetcd.etcdrpc import WatchStub

            call = WatchStub(client.channel).Watch(
                requests(),
                credentials=client.call_credentials,
                # etcd cancels the watch if its member loses the leader, instead of going quiet.
                metadata=(*(client.metadata or ()), ("hasleader", "true")),
            )

        def run() -> None:
            try:
                for response in call:
                    if stopped.is_set():
                        return
                    ended = self._watch_ended(response, prefix, start_revision, where)
                    if ended is not None:
                        report(ended)
                        return
                    if response.created:
                        created.set()
                    changes = [change_of(event) for event in response.events]
                    if changes:
                        on_changes(changes)
                report(WatchEnded(f"the watch on etcd at {where} ended"))
            except Exception as exc:  # noqa: BLE001 - every end of the stream is reported
                report(self._watch_error(exc))

        threading.Thread(target=run, name=f"ovsnet-watch {prefix}", daemon=True).start()

        def cancel() -> None:
            stopped.set()
            with contextlib.suppress(Exception):
                call.cancel()

        if not created.wait(self.config.timeout) or failure:
            cancel()
            raise (
                failure[0]
                if failure
                else EtcdUnavailable(
                    f"etcd at {where} did not confirm the watch on {prefix} "
                    f"within {self.config.timeout:g} s"
                )
            )
        return cancel

    def _watch_ended(
        self, response, prefix: str, start_revision: int, where: str
    ) -> Exception | None:
        if response.compact_revision:
            return WatchEnded(
                f"etcd at {where} compacted its history past revision {start_revision} "
                f"(now {response.compact_revision}) and cancelled the watch on {prefix}"
            )
        if not response.canceled:
            return None
        reason = response.cancel_reason or "no reason given"
        if "permission denied" in reason:
            return EtcdDenied(
                f"etcd at {where} denied watching {prefix}: {reason}",
                "these credentials may not do that (etcd RBAC)",
            )
        if "no leader" in reason:  # this member is cut off from the others (hasleader)
            return EtcdUnavailable(f"etcd at {where} cancelled the watch on {prefix}: {reason}")
        return WatchEnded(f"etcd at {where} cancelled the watch on {prefix}: {reason}")

    def _watch_error(self, exc: Exception) -> Exception:
        try:
            return self.translate(exc, "watching")
        except Exception as other:  # noqa: BLE001 - a watch error is always reported, not raised
            return EtcdUnavailable(f"the watch on etcd at {self.where} broke ({other})")
