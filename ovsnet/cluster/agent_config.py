"""What one agent is (`AgentConfig`) and what it writes to claim its subnet (no I/O here).

`claim_transaction` is here, not beside the claiming loop (ovsnet.cluster.agent), because the
benchmark writes its simulated hosts with it: byte for byte what an agent writes.

Place: docs/architecture.md, "Packages and what they own": cluster mode.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network

from ovsnet.cluster import DEFAULT_RESYNC_INTERVAL
from ovsnet.cluster.keys import ClusterKeys
from ovsnet.cluster.records import HostRecord, claim_value, memory_value
from ovsnet.etcd.client import SubnetClaim

ON_ETCD_LOSS = ("keep", "drop")


@dataclass(frozen=True)
class AgentConfig:
    name: str
    underlay_ip: IPv4Address
    supernet: IPv4Network
    keys: ClusterKeys = field(default_factory=ClusterKeys)
    explicit_subnet: IPv4Network | None = None
    tunnel_type: str = "gre"
    ttl: int = 30
    ipsec_method: str | None = None
    ipsec_cn: str | None = None
    ipsec_fingerprint: str | None = None
    resync_interval: float = DEFAULT_RESYNC_INTERVAL
    on_etcd_loss: str = "keep"

    def record(self, subnet: IPv4Network, started_at: str) -> HostRecord:
        return HostRecord(
            name=self.name,
            underlay_ip=self.underlay_ip,
            subnet=subnet,
            tunnel_type=self.tunnel_type,
            ipsec_method=self.ipsec_method,
            ipsec_cn=self.ipsec_cn,
            ipsec_fingerprint=self.ipsec_fingerprint,
            started_at=started_at,
        )


def claim_transaction(
    keys: ClusterKeys, record: HostRecord, lease: int, expected_revision: int | None = None
) -> SubnetClaim:
    """What an agent writes to claim `record.subnet` and publish `record`, in one transaction:
    the claim and the record bound to the lease, the host's last subnet outside it (so a
    restart prefers the same /24). The benchmark writes simulated hosts with this too."""
    return SubnetClaim(
        subnet_key=keys.subnet(record.subnet),
        claim_value=claim_value(record.name),
        lease=lease,
        expected_revision=expected_revision,
        puts=(
            (keys.host(record.name), record.to_json(), True),
            (keys.last_subnet(record.name), memory_value(record.subnet), False),
        ),
    )
