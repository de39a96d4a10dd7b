"""What ovsnet stores in etcd, as JSON, parsed strictly. Pure.

A host record holds nothing secret: a host that can read etcd learns names, underlay addresses,
subnets and, for IPsec, peers' certificate names and fingerprints, which are public anyway.
PSKs and private keys never leave the host.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from typing import Any

from ovsnet.cluster.keys import check_name
from ovsnet.tunnels import TUNNEL_TYPES

RECORD_VERSION = 1
IPSEC_METHODS = (None, "psk", "cert")


class BadRecord(ValueError):
    """A value in etcd that ovsnet did not write (or a newer ovsnet wrote)."""


@dataclass(frozen=True)
class HostRecord:
    name: str
    underlay_ip: IPv4Address
    subnet: IPv4Network
    tunnel_type: str = "gre"
    ipsec_method: str | None = None  # None (plain), "psk" or "cert"
    ipsec_cn: str | None = None
    ipsec_fingerprint: str | None = None
    started_at: str | None = None

    def to_json(self) -> str:
        doc = {
            "version": RECORD_VERSION,
            "name": self.name,
            "underlay_ip": str(self.underlay_ip),
            "subnet": str(self.subnet),
            "tunnel_type": self.tunnel_type,
            "ipsec": (
                {
                    "method": self.ipsec_method,
                    "cn": self.ipsec_cn,
                    "fingerprint": self.ipsec_fingerprint,
                }
                if self.ipsec_method or self.ipsec_cn or self.ipsec_fingerprint
                else None
            ),
            "started_at": self.started_at,
        }
        return json.dumps(doc, sort_keys=True, separators=(",", ":"))

    def as_json(self) -> dict[str, Any]:
        document: dict[str, Any] = json.loads(self.to_json())
        return document

    @classmethod
    def from_json(cls, raw: bytes | str) -> HostRecord:
        doc = _load_object(raw)
        try:
            ipsec = doc.get("ipsec") or {}
            record = cls(
                name=check_name(str(doc["name"])),
                underlay_ip=IPv4Address(doc["underlay_ip"]),
                subnet=IPv4Network(doc["subnet"]),
                tunnel_type=str(doc.get("tunnel_type", "gre")),
                ipsec_method=ipsec.get("method"),
                ipsec_cn=ipsec.get("cn"),
                ipsec_fingerprint=ipsec.get("fingerprint"),
                started_at=doc.get("started_at"),
            )
        except (KeyError, ValueError, TypeError, AttributeError) as exc:
            raise BadRecord(f"not an ovsnet host record ({exc})") from None
        except Exception as exc:  # InvalidInput from check_name
            raise BadRecord(f"not an ovsnet host record ({exc})") from None
        if record.tunnel_type not in TUNNEL_TYPES:
            raise BadRecord(f"unknown tunnel type {record.tunnel_type!r}")
        if record.ipsec_method not in IPSEC_METHODS:
            raise BadRecord(f"unknown IPsec method {record.ipsec_method!r}")
        return record


def claim_value(host: str) -> str:
    """The value of a subnet key: who holds the subnet."""
    return json.dumps({"host": host}, separators=(",", ":"))


def claim_holder(raw: bytes | str) -> str:
    try:
        return str(_load_object(raw)["host"])
    except KeyError:
        raise BadRecord("subnet claim without a host") from None


def memory_value(subnet: IPv4Network) -> str:
    return json.dumps({"subnet": str(subnet)}, separators=(",", ":"))


def memory_subnet(raw: bytes | str) -> IPv4Network:
    try:
        return IPv4Network(_load_object(raw)["subnet"])
    except (KeyError, ValueError, TypeError) as exc:
        raise BadRecord(f"not an ovsnet last-subnet value ({exc})") from None


def _load_object(raw: bytes | str) -> dict[str, Any]:
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRecord(f"not JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise BadRecord("not a JSON object")
    return doc
