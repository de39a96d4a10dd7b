"""What ovsnet stores in etcd, as JSON, parsed strictly. Pure.

A host record holds nothing secret: a host that can read etcd learns names, underlay addresses,
subnets and, for IPsec, peers' certificate names and fingerprints, which are public anyway.
PSKs and private keys never leave the host.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from ipaddress import IPv4Address, IPv4Network
from typing import Any, TypeVar

from ovsnet.cluster.keys import ClusterKeys, check_name
from ovsnet.errors import InvalidInput
from ovsnet.tunnels import TUNNEL_TYPES
from ovsnet.validate import check_underlay_address, control_character, special_space

T = TypeVar("T")
D = TypeVar("D")

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
        """Parse and check every field; BadRecord (with the reason) for anything else."""
        doc = _load_object(raw)
        version = doc.get("version", RECORD_VERSION)
        if type(version) is not int or version < 1:
            raise BadRecord(f"version {_short(version)} is not a positive integer")
        ipsec = {} if doc.get("ipsec") is None else doc["ipsec"]
        if not isinstance(ipsec, dict):
            raise BadRecord("ipsec is not an object")
        return cls(
            name=_required(doc, "name", _host_name),
            underlay_ip=_required(doc, "underlay_ip", _underlay_ip),
            subnet=_required(doc, "subnet", _subnet),
            tunnel_type=_optional(doc, "tunnel_type", _one_of(TUNNEL_TYPES), "gre"),
            ipsec_method=_optional(ipsec, "method", _one_of(IPSEC_METHODS), None, "ipsec.method"),
            ipsec_cn=_optional(ipsec, "cn", _text, None, "ipsec.cn"),
            ipsec_fingerprint=_optional(ipsec, "fingerprint", _text, None, "ipsec.fingerprint"),
            started_at=_optional(doc, "started_at", _timestamp, None),
        )


def parse_host_entry(keys: ClusterKeys, key: str, value: bytes | str) -> HostRecord:
    """The record under one key of the hosts prefix, checked against its key too: a record
    must live under its own name (RBAC lets a host write only that key)."""
    name = keys.name_of(key) if key.startswith(keys.hosts) else None
    if name is None:
        raise BadRecord("the key does not end in a valid host name")
    record = HostRecord.from_json(value)
    if record.name != name:
        raise BadRecord(f"the record names host {record.name}, not {name}")
    return record


# -- field checks: each takes the JSON value and returns the parsed one or raises ValueError --

MAX_RECORD_BYTES = 16 * 1024  # a real record is ~300 bytes
MAX_TEXT = 255


def _required(
    doc: dict[str, Any], key: str, parse: Callable[[object], T], label: str | None = None
) -> T:
    """doc[key] parsed; a missing key is a BadRecord (a null one fails to parse)."""
    if key not in doc:
        raise BadRecord(f"no {label or key}")
    return _parsed(doc, key, parse, label)


def _optional(
    doc: dict[str, Any],
    key: str,
    parse: Callable[[object], T],
    default: D,
    label: str | None = None,
) -> T | D:
    """doc[key] parsed; `default` if the key is missing or null."""
    if doc.get(key) is None:
        return default
    return _parsed(doc, key, parse, label)


def _parsed(doc: dict[str, Any], key: str, parse: Callable[[object], T], label: str | None) -> T:
    try:
        return parse(doc[key])
    except (ValueError, TypeError) as exc:
        raise BadRecord(f"{label or key} {_short(doc[key])}: {_reason(exc)}") from None


def _string(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"is a {_json_type(value)}, not a string")
    return value


def _host_name(value: object) -> str:
    try:
        return check_name(_string(value))
    except InvalidInput as exc:
        raise ValueError(exc.hint) from None


def _underlay_ip(value: object) -> IPv4Address:
    address = IPv4Address(_string(value))
    try:
        return check_underlay_address(address, "underlay_ip")
    except InvalidInput:
        raise ValueError(f"is in {special_space(address)} space") from None


def _subnet(value: object) -> IPv4Network:
    subnet = IPv4Network(_string(value))
    kind = special_space(subnet.network_address) or special_space(subnet.broadcast_address)
    if kind:
        raise ValueError(f"is in {kind} space")
    return subnet


def _text(value: object) -> str:
    text = _string(value)
    if len(text) > MAX_TEXT:
        raise ValueError(f"is longer than {MAX_TEXT} characters")
    if control_character(text):
        raise ValueError("contains a control character")
    return text


def _timestamp(value: object) -> str:
    text = _text(value)
    datetime.fromisoformat(text)
    return text


def _one_of(allowed: tuple[T, ...]) -> Callable[[object], T]:
    """A parser accepting exactly the strings (or None) in `allowed`."""

    def parse(value: object) -> T:
        for option in allowed:
            if value == option and (value is None or isinstance(value, str)):
                return option
        shown = ", ".join(str(a) for a in allowed if a is not None)
        raise ValueError(f"is not one of {shown}")

    return parse


def _json_type(value: object) -> str:
    return {dict: "object", list: "array", bool: "boolean", int: "number", float: "number"}.get(
        type(value), type(value).__name__
    )


def _short(value: object) -> str:
    """A value for a one-line message: JSON, without control characters, at most 40 chars."""
    try:
        text = json.dumps(value, ensure_ascii=True)
    except (ValueError, TypeError, RecursionError):
        text = type(value).__name__
    return text if len(text) <= 40 else text[:37] + "..."


def _reason(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 80 else text[:77] + "..."


def claim_value(host: str) -> str:
    """The value of a subnet key: who holds the subnet."""
    return json.dumps({"host": host}, separators=(",", ":"))


def claim_holder(raw: bytes | str) -> str:
    return _required(_load_object(raw), "host", _host_name)


def memory_value(subnet: IPv4Network) -> str:
    return json.dumps({"subnet": str(subnet)}, separators=(",", ":"))


def memory_subnet(raw: bytes | str) -> IPv4Network:
    return _required(_load_object(raw), "subnet", _subnet)


def _load_object(raw: bytes | str) -> dict[str, Any]:
    if len(raw) > MAX_RECORD_BYTES:
        raise BadRecord(f"{len(raw)} bytes, more than the {MAX_RECORD_BYTES} a record may have")
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRecord(f"not JSON ({_reason(exc)})") from None
    except RecursionError:
        raise BadRecord("not JSON (nested too deeply)") from None
    if not isinstance(doc, dict):
        raise BadRecord("not a JSON object")
    return doc
