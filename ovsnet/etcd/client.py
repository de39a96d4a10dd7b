"""The etcd facade's object: reads at one revision, leases, the subnet claim transaction and
writes, on top of the connection with member failover, watches and RBAC administration.

Place: docs/architecture.md, "Layers": facade layer.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ovsnet.etcd.admin import Administering
from ovsnet.etcd.items import Snapshot, items_of
from ovsnet.etcd.watch import Watching


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


class Etcd(Watching, Administering):
    """Domain verbs over the members of one etcd cluster (how members are picked and left:
    `Connection`). Connects lazily; close() (or `with`) ends it."""

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
            prefix: Snapshot(revision, items_of(op.response_range.kvs))
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


def _txn(client, request):
    return client.kvstub.Txn(
        request, client.timeout, credentials=client.call_credentials, metadata=client.metadata
    )


def _range_request(prefix: str):
    from pyetcd import etcdrpc, utils

    return etcdrpc.RangeRequest(
        key=prefix.encode(), range_end=utils.prefix_range_end(prefix.encode())
    )
