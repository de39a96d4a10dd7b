"""What goes wrong talking to etcd, as ovsnet's errors: etcd unreachable or timing out ->
EtcdUnavailable (NotReady, exit 3); permission denied -> EtcdDenied (exit 1); a watch that
stopped -> WatchEnded; everything else from the client -> OperationFailed.

Place: docs/architecture.md, "Layers": facade layer.
"""

from __future__ import annotations

from ovsnet.errors import NotReady, OperationFailed


class EtcdUnavailable(NotReady):
    """etcd did not answer (down, unreachable, or too slow)."""


class EtcdDenied(OperationFailed):
    """etcd refused the request: these credentials may not do that."""


class WatchEnded(OperationFailed):
    """A watch stopped delivering: the stream ended, or etcd cancelled it (compaction, ...)."""


def translate(exc: BaseException, doing: str, where: str) -> Exception:
    """The client's exception as ovsnet's; `where` is the member in use. Unknown ones re-raised."""
    import grpc
    from pyetcd import exceptions as etcd_exc

    if isinstance(exc, (EtcdUnavailable, EtcdDenied)):
        return exc
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
