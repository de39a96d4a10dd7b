"""The connection to the members of one etcd cluster, and moving to the next member when one
does not answer. The one place that builds the etcd client (pyetcd).

Place: docs/architecture.md, "Layers": facade layer.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import Self

from ovsnet.etcd.config import EtcdConfig
from ovsnet.etcd.errors import EtcdDenied, EtcdUnavailable, translate

# gRPC's own reconnect backoff defaults to a 120 s ceiling; the agent has its own backoff.
# Not grpc.min_reconnect_backoff_ms: gRPC also uses it as the connect timeout, and a TLS
# handshake on a loaded host took longer than a short one ("timed out before SETTINGS frame").
GRPC_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 2000),
    # Notice a dead etcd on an idle watch stream (etcd permits pings every 5 s by default).
    ("grpc.keepalive_time_ms", 10000),
    ("grpc.keepalive_timeout_ms", 5000),
]


class Connection:
    """One etcd cluster, reached through one member at a time. Connects lazily; close() (or
    `with`) ends it.

    Several members: the calls go to one of them (picked at random, so a fleet spreads its
    load); when it answers "unavailable" (down, cut off from the others, or without a leader),
    the call is made again on the next member, and so on once round the list. A watch runs on
    one member; when it breaks the caller starts a new one, which then goes to a member that
    answers. One gRPC channel per member (pyetcd's MultiEndpointEtcd3Client), not one channel
    with several targets: gRPC's own balancing would not know that a member without a leader
    is as good as down.
    """

    def __init__(self, config: EtcdConfig):
        self.config = config.check()
        self._client = None
        self._lock = threading.Lock()

    @property
    def client(self):
        with self._lock:
            if self._client is None:
                self._client = self._connect()
            return self._client

    def _connect(self):
        from pyetcd.client import Endpoint, Etcd3Client, MultiEndpointEtcd3Client

        endpoints = self.config.endpoints
        creds = None
        if endpoints[0][2]:
            creds = Etcd3Client.get_secure_creds(self.config.ca, self.config.key, self.config.cert)
        # time_retry=0: pyetcd would otherwise refuse to use an endpoint for 300 s after one
        # failed call, which defeats reconnecting; moving between members is done here.
        return MultiEndpointEtcd3Client(
            endpoints=[
                Endpoint(host, port, secure=tls, creds=creds, time_retry=0.0, opts=GRPC_OPTIONS)
                for host, port, tls in endpoints
            ],
            timeout=self.config.timeout,
        )

    @property
    def where(self) -> str:
        """The URL of the member in use (the first one before connecting)."""
        with self._lock:
            client = self._client
        if client is None:
            return self.config.urls[0]
        endpoint = client.endpoint_in_use
        return f"{endpoint.protocol}://{endpoint.netloc}"

    def _member(self) -> str | None:
        return self.client._current_endpoint_label

    def _fail_over(self, member: str | None) -> None:
        """`member` did not answer: use the next one in the order given (unless another
        thread moved on already)."""
        with self._lock:
            client = self._client
            if client is None or member is None or client._current_endpoint_label != member:
                return
            members = list(client.endpoints)
            if len(members) > 1:
                # pyetcd drops the stubs bound to the old member's channel here.
                client._current_endpoint_label = members[(members.index(member) + 1) % len(members)]

    def _call(self, doing: str, call: Callable):
        """call(client) on the member in use, then on each other member in turn while the
        answer is "unavailable". Safe for every verb here: reads, keepalives and deletes are
        idempotent, claims are compare-and-swap (a claim that did land before the answer was
        lost is seen as this host's own on the re-read), and a lease granted twice leaves an
        unused lease that expires."""
        attempts = len(self.config.urls)
        for attempt in range(attempts):
            member = self._member()
            try:
                return call(self.client)
            except Exception as exc:  # noqa: BLE001 - translated; unknown ones re-raised
                error = self.translate(exc, doing)
            if not isinstance(error, EtcdUnavailable) or attempt == attempts - 1:
                raise error
            self._fail_over(member)
        raise AssertionError("unreachable")

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @contextlib.contextmanager
    def _errors(self, doing: str):
        """Turn the client's exceptions into ovsnet's."""
        member = self._member()
        try:
            yield
        except Exception as exc:
            error = self.translate(exc, doing)
            if isinstance(error, EtcdUnavailable):
                self._fail_over(member)  # the next call tries the next member
            raise error from None

    def translate(self, exc: BaseException, doing: str) -> Exception:
        """The client's exception as ovsnet's (errors.translate), naming the member in use."""
        if isinstance(exc, (EtcdUnavailable, EtcdDenied)):
            return exc
        return translate(exc, doing, self.where)
