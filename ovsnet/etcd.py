"""The etcd facade: every read and write ovsnet makes to etcd, as domain verbs.

Nothing else in ovsnet imports the etcd client. The client is `pyetcd` (PyPI: etcd-sdk-python),
a maintained fork of python-etcd3 that speaks etcd's gRPC API. Not a client of etcd's JSON
gateway (etcd3gw): etcd refuses certificate common-name authentication through the gateway by
design (etcd PRs 10366 and 10392), and per-host RBAC rests on exactly that
(docs/decisions.md, "etcd client").

Errors: etcd unreachable or timing out -> EtcdUnavailable (NotReady, exit 3); permission
denied -> EtcdDenied (exit 1); everything else from the client -> OperationFailed.

Watches are driven here on the gRPC stub, not through pyetcd's watcher: that one calls back
with None when a stream ends cleanly and never reports a watch that etcd cancels (seen: a
watch on a prefix the user may not read is created, cancelled by etcd with "permission
denied", and pyetcd's callback is never called). Here every end of a watch is reported once.

Place: docs/architecture.md, "Layers": facade layer.
"""

from __future__ import annotations

import contextlib
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from ovsnet.errors import InvalidInput, NotReady, OperationFailed

DEFAULT_TIMEOUT = 5.0
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


class EtcdUnavailable(NotReady):
    """etcd did not answer (down, unreachable, or too slow)."""


class EtcdDenied(OperationFailed):
    """etcd refused the request: these credentials may not do that."""


class WatchEnded(OperationFailed):
    """A watch stopped delivering: the stream ended, or etcd cancelled it (compaction, ...)."""


@dataclass(frozen=True)
class EtcdConfig:
    # One URL, or several separated by commas: the members of one etcd cluster.
    url: str
    cert: str | None = None
    key: str | None = None
    ca: str | None = None
    timeout: float = DEFAULT_TIMEOUT
    # Without a client certificate etcd cannot tell hosts apart: any host (or anyone on the
    # network, over http://) can rewrite every record and redirect tunnels. Allowed only
    # when the user says so.
    insecure: bool = False

    @property
    def urls(self) -> tuple[str, ...]:
        """Every member's URL, in the order given, without repeats."""
        urls = tuple(dict.fromkeys(u.strip() for u in self.url.split(",") if u.strip()))
        if not urls:
            raise InvalidInput("no etcd URL", "pass --etcd https://HOST:PORT")
        return urls

    @property
    def endpoints(self) -> tuple[tuple[str, int, bool], ...]:
        """(host, port, tls) of each URL; InvalidInput if one is not http(s)://host:port or
        they mix http and https."""
        endpoints = tuple(_endpoint(url) for url in self.urls)
        if len({tls for _, _, tls in endpoints}) > 1:
            raise InvalidInput(
                f"etcd URLs {self.url!r} mix http:// and https://", "use https:// for every member"
            )
        return endpoints

    @property
    def endpoint(self) -> tuple[str, int, bool]:
        """The first member's (host, port, tls)."""
        return self.endpoints[0]

    def check(self) -> EtcdConfig:
        _, _, tls = self.endpoint
        if (self.cert is None) != (self.key is None):
            raise InvalidInput("give both --etcd-cert and --etcd-key, or neither")
        if not tls and (self.cert or self.ca):
            raise InvalidInput("certificates given for a plain http:// etcd URL", "use https://")
        if tls and self.ca is None:
            raise InvalidInput("an https:// etcd URL needs --etcd-ca", "pass the CA certificate")
        for path in (self.cert, self.ca):
            if path is not None:
                _check_readable(path)
        if self.cert is None and not self.insecure:
            if not tls:
                raise InvalidInput(
                    f"etcd URL {self.urls[0]} is plain http:// without client-certificate auth: "
                    "anyone on the network can read and rewrite the cluster's records",
                    "use https:// with --etcd-cert, --etcd-key and --etcd-ca, or pass "
                    "--insecure to accept that",
                )
            raise InvalidInput(
                "no client certificate for etcd: etcd cannot tell hosts apart, so any host "
                "could rewrite every record",
                "pass --etcd-cert and --etcd-key, or --insecure to accept that",
            )
        if self.key is not None:
            from ovsnet.secrets import check_secret_file

            check_secret_file(self.key, "etcd client key")
        return self


def _endpoint(url: str) -> tuple[str, int, bool]:
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    if parts.scheme not in ("http", "https") or not parts.hostname or port is None:
        raise InvalidInput(f"etcd URL {url!r} is not valid", "write it as https://HOST:PORT")
    if parts.path not in ("", "/"):
        raise InvalidInput(f"etcd URL {url!r} has a path", "give only https://HOST:PORT")
    return parts.hostname, port, parts.scheme == "https"


def _check_readable(path: str) -> None:
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror}") from None


@dataclass(frozen=True)
class Item:
    """One key's value and metadata."""

    value: bytes
    lease: int
    create_revision: int
    mod_revision: int


@dataclass(frozen=True)
class Snapshot:
    """The keys under a prefix at one revision."""

    revision: int
    items: dict[str, Item]


@dataclass(frozen=True)
class Change:
    key: str
    value: bytes | None  # None: deleted (or expired with its lease)
    mod_revision: int


@dataclass(frozen=True)
class SubnetClaim:
    """One claim transaction: create (or re-take) the subnet key, and publish the host.

    expected_revision None: the subnet key must not exist (create_revision == 0); otherwise its
    mod_revision must still be this (the host re-takes a claim it saw holding its own name).
    """

    subnet_key: str
    claim_value: str
    lease: int
    expected_revision: int | None = None
    puts: tuple[tuple[str, str, bool], ...] = field(default=())  # (key, value, with lease)


@dataclass(frozen=True)
class ClaimOutcome:
    won: bool
    revision: int
    holder: bytes | None = None  # the subnet key's value when the claim lost


class Etcd:
    """Domain verbs over the members of one etcd cluster. Connects lazily; close() (or
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

    # -- connection -------------------------------------------------------------------------

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

    def __enter__(self) -> Etcd:
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
        import grpc
        from pyetcd import exceptions as etcd_exc

        if isinstance(exc, (EtcdUnavailable, EtcdDenied)):
            return exc
        where = self.where
        # pyetcd raises its own exception inside `except grpc.RpcError`: the cause is there.
        if isinstance(exc, etcd_exc.Etcd3Exception) and isinstance(exc.__context__, grpc.RpcError):
            exc = exc.__context__
        if isinstance(
            exc,
            (
                etcd_exc.ConnectionFailedError,
                etcd_exc.ConnectionTimeoutError,
                etcd_exc.WatchTimedOut,
                etcd_exc.NoServerAvailableError,
            ),
        ):
            return EtcdUnavailable(
                f"etcd at {where} is unavailable while {doing}",
                "check that etcd runs and the URL and certificates are right",
            )
        if isinstance(exc, grpc.RpcError):
            code = exc.code() if callable(getattr(exc, "code", None)) else None
            details = exc.details() if callable(getattr(exc, "details", None)) else str(exc)
            if code == grpc.StatusCode.PERMISSION_DENIED:
                return EtcdDenied(
                    f"etcd at {where} denied {doing}: {details}",
                    "these credentials may not do that (etcd RBAC)",
                )
            if code in (
                grpc.StatusCode.UNAVAILABLE,
                grpc.StatusCode.DEADLINE_EXCEEDED,
                grpc.StatusCode.CANCELLED,
            ):
                return EtcdUnavailable(
                    f"etcd at {where} is unavailable while {doing} ({details})",
                    "check that etcd runs",
                )
            return OperationFailed(f"etcd at {where} failed {doing}: {details}")
        if isinstance(exc, etcd_exc.Etcd3Exception):
            return OperationFailed(f"etcd at {where} failed {doing}: {type(exc).__name__} {exc}")
        if isinstance(exc, ValueError) and "failed node" in str(exc):
            return EtcdUnavailable(f"etcd at {where} is unavailable while {doing}")
        raise exc

    # -- reads ------------------------------------------------------------------------------

    def read_prefix(self, prefix: str) -> Snapshot:
        """Every key under the prefix, at one revision (the one to start a watch after)."""
        return self.read_many(prefix)[prefix]

    def read_many(self, *prefixes: str) -> dict[str, Snapshot]:
        """Several prefixes, read at one revision (in one transaction)."""
        from pyetcd import etcdrpc

        ops = [etcdrpc.RequestOp(request_range=_range_request(p)) for p in prefixes]
        request = etcdrpc.TxnRequest(success=ops)
        response = self._call(
            "reading " + ", ".join(prefixes), lambda client: _txn(client, request)
        )
        revision = response.header.revision
        return {
            prefix: Snapshot(revision, _items(op.response_range.kvs))
            for prefix, op in zip(prefixes, response.responses, strict=True)
        }

    # -- leases -----------------------------------------------------------------------------

    def grant_lease(self, ttl: int) -> int:
        return self._call("granting a lease", lambda client: client.lease(ttl).id)

    def keepalive(self, lease: int) -> int:
        """Refresh the lease; the TTL it now has, or 0 when it had already expired."""
        responses = self._call(
            "refreshing the lease", lambda client: list(client.refresh_lease(lease))
        )
        return max((r.TTL for r in responses), default=0)

    def lease_ttl(self, lease: int) -> tuple[int, int]:
        """(seconds left, granted TTL); seconds left is -1 for an expired lease."""
        info = self._call("reading a lease", lambda client: client.get_lease_info(lease))
        return info.TTL, info.grantedTTL

    def revoke_lease(self, lease: int) -> None:
        self._call("revoking the lease", lambda client: client.revoke_lease(lease))

    # -- writes -----------------------------------------------------------------------------

    def claim_subnet(self, claim: SubnetClaim) -> ClaimOutcome:
        """One transaction: take the subnet key if the compare holds, and write the puts."""
        from pyetcd import etcdrpc

        key = claim.subnet_key.encode()
        if claim.expected_revision is None:
            compare = etcdrpc.Compare(
                key=key,
                result=etcdrpc.Compare.EQUAL,
                target=etcdrpc.Compare.CREATE,
                create_revision=0,
            )
        else:
            compare = etcdrpc.Compare(
                key=key,
                result=etcdrpc.Compare.EQUAL,
                target=etcdrpc.Compare.MOD,
                mod_revision=claim.expected_revision,
            )
        puts = [(claim.subnet_key, claim.claim_value, True), *claim.puts]
        success = [
            etcdrpc.RequestOp(
                request_put=etcdrpc.PutRequest(
                    key=k.encode(), value=v.encode(), lease=claim.lease if leased else 0
                )
            )
            for k, v, leased in puts
        ]
        failure = [etcdrpc.RequestOp(request_range=etcdrpc.RangeRequest(key=key))]
        request = etcdrpc.TxnRequest(compare=[compare], success=success, failure=failure)
        response = self._call(f"claiming {claim.subnet_key}", lambda client: _txn(client, request))
        if response.succeeded:
            return ClaimOutcome(True, response.header.revision)
        kvs = response.responses[0].response_range.kvs
        return ClaimOutcome(False, response.header.revision, kvs[0].value if kvs else None)

    def put(self, key: str, value: str, lease: int | None = None) -> None:
        self._call(f"writing {key}", lambda client: client.put(key, value, lease=lease))

    def delete_if_value(self, key: str, value: bytes) -> bool:
        """Delete the key only if it still holds this value (so a new owner's key survives)."""

        def delete(client):
            t = client.transactions
            won, _ = client.transaction(
                compare=[t.value(key) == value], success=[t.delete(key)], failure=[]
            )
            return won

        return self._call(f"deleting {key}", delete)

    def delete(self, key: str) -> bool:
        return self._call(f"deleting {key}", lambda client: bool(client.delete(key)))

    # -- watch ------------------------------------------------------------------------------

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
                    changes = [_change(event) for event in response.events]
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

    # -- administration (root credentials) --------------------------------------------------

    def ensure_host_role(self, host: str, role: str, permissions) -> list[str]:
        """Create the etcd user `host` (authenticated by its certificate's CN) and a role with
        exactly these permissions. Returns what it did; does nothing when all is in place."""
        from pyetcd import etcdrpc
        from pyetcd.etcdrpc import auth_pb2

        steps = []
        kinds = {
            "read": auth_pb2.Permission.READ,
            "write": auth_pb2.Permission.WRITE,
            "readwrite": auth_pb2.Permission.READWRITE,
        }
        with self._errors(f"setting up the etcd user {host}"):
            auth = self.client.authstub
            if role not in self._role_names():
                self._auth_call(auth.RoleAdd, etcdrpc.AuthRoleAddRequest(name=role))
                steps.append(f"add role {role}")
            have = self._role_permissions(role)
            for perm in permissions:
                wanted = (kinds[perm.kind], perm.key.encode(), (perm.range_end or "").encode())
                if wanted not in have:
                    grant = etcdrpc.AuthRoleGrantPermissionRequest(
                        name=role,
                        perm=auth_pb2.Permission(
                            permType=wanted[0], key=wanted[1], range_end=wanted[2]
                        ),
                    )
                    self._auth_call(auth.RoleGrantPermission, grant)
                    steps.append(
                        f"grant {perm.kind} {perm.key}"
                        + (f" .. {perm.range_end}" if perm.range_end else "")
                    )
            if host not in self._user_names():
                # The certificate's CN is the identity; a random password nobody keeps means
                # the user cannot log in by password (an empty one could).
                self._auth_call(
                    auth.UserAdd,
                    etcdrpc.AuthUserAddRequest(name=host, password=secrets.token_urlsafe(32)),
                )
                steps.append(f"add user {host}")
            if role not in self._user_roles(host):
                self._auth_call(
                    auth.UserGrantRole, etcdrpc.AuthUserGrantRoleRequest(user=host, role=role)
                )
                steps.append(f"grant role {role} to {host}")
        return steps

    def enable_auth(self, root: str = "root") -> list[str]:
        """Create the root user (certificate CN `root`) and turn etcd's auth on."""
        from pyetcd import etcdrpc

        steps = []
        with self._errors("enabling etcd auth"):
            auth = self.client.authstub
            try:
                users = self._user_names()
            except Exception as exc:  # auth already on and we are not root: report that
                raise self.translate(exc, "listing users") from None
            if root not in users:
                self._auth_call(
                    auth.UserAdd,
                    etcdrpc.AuthUserAddRequest(name=root, password=secrets.token_urlsafe(32)),
                )
                steps.append(f"add user {root}")
            if "root" not in self._role_names():
                self._auth_call(auth.RoleAdd, etcdrpc.AuthRoleAddRequest(name="root"))
            if "root" not in self._user_roles(root):
                self._auth_call(
                    auth.UserGrantRole, etcdrpc.AuthUserGrantRoleRequest(user=root, role="root")
                )
                steps.append(f"grant role root to {root}")
            self._auth_call(auth.AuthEnable, etcdrpc.AuthEnableRequest())
            steps.append("enable auth")
        return steps

    def _auth_call(self, method, request):
        client = self.client
        return method(
            request, client.timeout, credentials=client.call_credentials, metadata=client.metadata
        )

    def _role_names(self) -> set[str]:
        from pyetcd import etcdrpc

        return set(
            self._auth_call(self.client.authstub.RoleList, etcdrpc.AuthRoleListRequest()).roles
        )

    def _user_names(self) -> set[str]:
        from pyetcd import etcdrpc

        return set(
            self._auth_call(self.client.authstub.UserList, etcdrpc.AuthUserListRequest()).users
        )

    def _user_roles(self, user: str) -> set[str]:
        from pyetcd import etcdrpc

        if user not in self._user_names():
            return set()
        return set(
            self._auth_call(
                self.client.authstub.UserGet, etcdrpc.AuthUserGetRequest(name=user)
            ).roles
        )

    def _role_permissions(self, role: str) -> set[tuple[int, bytes, bytes]]:
        from pyetcd import etcdrpc

        response = self._auth_call(
            self.client.authstub.RoleGet, etcdrpc.AuthRoleGetRequest(role=role)
        )
        return {(p.permType, p.key, p.range_end) for p in response.perm}


def _txn(client, request):
    return client.kvstub.Txn(
        request, client.timeout, credentials=client.call_credentials, metadata=client.metadata
    )


def _range_request(prefix: str):
    from pyetcd import etcdrpc, utils

    return etcdrpc.RangeRequest(
        key=prefix.encode(), range_end=utils.prefix_range_end(prefix.encode())
    )


def _key(raw: bytes) -> str:
    # Keys are bytes in etcd; one that is not UTF-8 still gets a name (and is then refused
    # as a bad record) instead of stopping the reader.
    return raw.decode(errors="backslashreplace")


def _items(kvs) -> dict[str, Item]:
    return {
        _key(kv.key): Item(kv.value, kv.lease, kv.create_revision, kv.mod_revision) for kv in kvs
    }


def _change(event) -> Change:
    """A watch event (mvccpb.Event); a delete's kv carries the key and the delete revision."""
    deleted = event.type == event.DELETE
    return Change(_key(event.kv.key), None if deleted else event.kv.value, event.kv.mod_revision)
