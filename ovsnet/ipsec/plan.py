"""What OVSDB must hold for IPsec: the port type, options and other_config of one tunnel
(`peer add --ipsec`), and the host settings of `ovsnet ipsec psk|cert|plaintext` and `reset`.

A tunnel whose settings ovs-monitor-ipsec judges invalid silently carries plaintext, so every
check OVS would need runs here first, and ipsec_skb_mark is set by default (fail closed).
Nothing here does I/O: callers read OVSDB and files, pass what they saw in, and write back what
these functions return.

Place: docs/architecture.md, "Layers": pure layer.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ovsnet.errors import InvalidInput, NotReady
from ovsnet.ipsec.checks import check_one_method, shown_ports
from ovsnet.ipsec.compat import port_type
from ovsnet.ipsec.credentials import Psk, check_pem_path, check_remote_name, validate_psk
from ovsnet.ipsec.keys import (
    CERT_KEYS,
    DROP_PLAINTEXT_MARK,
    LEGACY_PORT_TYPE,
    LEGACY_PSK_KEY,
    METHOD_CERT,
    METHOD_PSK,
    METHODS,
    PSK_FILE_KEY,
    SKB_MARK_KEY,
)
from ovsnet.ipsec.observed import ObservedHost


@dataclass(frozen=True)
class TunnelIpsecRequest:
    """`peer add --ipsec ...` for one tunnel."""

    method: str
    tunnel_type: str = "gre"
    psk: Psk | None = None
    remote_name: str | None = None
    remote_cert: str | None = None
    require_encryption: bool = True


@dataclass(frozen=True, repr=False)
class TunnelIpsecPlan:
    """What to write: the port type, options to add to the tunnel, other_config updates."""

    port_type: str
    options: tuple[tuple[str, str], ...]
    other_config: Mapping[str, str | None]
    warnings: tuple[str, ...] = ()

    def __repr__(self) -> str:
        return f"TunnelIpsecPlan({self.port_type!r}, {self.as_json()!r})"

    def as_json(self) -> dict[str, Any]:
        """Safe to print: the PSK is replaced by a marker."""
        return {
            "port_type": self.port_type,
            "options": {k: ("<secret>" if k == "psk" else v) for k, v in self.options},
            "other_config": {
                k: ("<secret>" if k == LEGACY_PSK_KEY and v else v)
                for k, v in self.other_config.items()
            },
            "warnings": list(self.warnings),
        }


def plan_tunnel_ipsec(
    request: TunnelIpsecRequest, host: ObservedHost, port: str | None = None
) -> TunnelIpsecPlan:
    """Options and host settings for one IPsec tunnel, after every check OVS would need.

    `port` is the tunnel's own port name when it exists already (re-adding a peer must not
    conflict with itself).
    """
    if request.method not in METHODS:
        raise InvalidInput(f"unknown IPsec method {request.method!r}", "use psk or cert")
    kind = port_type(host.ovs_version, request.tunnel_type, request.method)
    check_one_method(host, request.method, port)
    if request.method == METHOD_PSK:
        options = _psk_options(request, host)
    else:
        options = _cert_options(request, host)
    other_config, warnings = _skb_mark(request, host, kind)
    return TunnelIpsecPlan(kind, options, other_config, warnings)


def _psk_options(request: TunnelIpsecRequest, host: ObservedHost) -> tuple[tuple[str, str], ...]:
    psk = request.psk
    if psk is None:
        if host.other_config.get(LEGACY_PSK_KEY):
            raise InvalidInput(
                "this host's PSK is stored in OVSDB by an older ovsnet, which no longer reads it",
                "move it to a file (mode 0600) and run `ovsnet ipsec psk set --file FILE`",
            )
        raise InvalidInput(
            "no pre-shared key for this tunnel",
            "give --psk-file FILE, or set one for the host with `ovsnet ipsec psk set --file FILE`",
        )
    return (("psk", validate_psk(psk.value).value),)


def _cert_options(request: TunnelIpsecRequest, host: ObservedHost) -> tuple[tuple[str, str], ...]:
    missing = [k for k in ("certificate", "private_key") if not host.other_config.get(k)]
    if request.remote_name and not host.other_config.get("ca_cert"):
        missing.append("ca_cert")
    if missing:
        raise NotReady(
            f"this host has no IPsec certificate settings ({', '.join(missing)})",
            "run `ovsnet ipsec cert --cert FILE --key FILE --ca FILE` first",
        )
    if request.remote_name and request.remote_cert:
        raise InvalidInput("give either --remote-name or --remote-cert, not both")
    if request.remote_name:
        return (("remote_name", check_remote_name(request.remote_name)),)
    if request.remote_cert:
        return (("remote_cert", check_pem_path(request.remote_cert, "remote certificate")),)
    raise InvalidInput(
        "certificate authentication needs the peer's certificate name",
        "give --remote-name NAME (the CN of the peer's certificate, its host name)",
    )


def _skb_mark(
    request: TunnelIpsecRequest, host: ObservedHost, kind: str
) -> tuple[dict[str, str | None], tuple[str, ...]]:
    if kind == LEGACY_PORT_TYPE:
        return {}, ("this OVS predates ipsec_skb_mark: plaintext is not dropped if IPsec fails",)
    if not request.require_encryption:
        if host.drops_plaintext:
            return {}, (f"other_config:{SKB_MARK_KEY} is already set: plaintext stays dropped",)
        return {}, ("plaintext fallback allowed: if IPsec fails, this tunnel sends in clear",)
    plaintext = host.ports_by_method().get(None, [])
    if plaintext:
        raise InvalidInput(
            f"dropping unencrypted tunnel traffic would cut the plaintext tunnels "
            f"{shown_ports(plaintext)}",
            "add those peers with --ipsec too, or pass --allow-plaintext",
        )
    if host.other_config.get(SKB_MARK_KEY) == DROP_PLAINTEXT_MARK:
        return {}, ()
    return {SKB_MARK_KEY: DROP_PLAINTEXT_MARK}, ()


def other_config_after_removal(
    host: ObservedHost, removed_ports: Iterable[str]
) -> dict[str, str | None]:
    """Undo fail-closed once no IPsec tunnel is left, so plaintext peers can work again."""
    remaining = host.ports_by_method(ignore=removed_ports)
    if any(remaining.get(m) for m in METHODS) or not host.drops_plaintext:
        return {}
    return {SKB_MARK_KEY: None}


def settings_after_reset(remaining: ObservedHost) -> dict[str, str | None]:
    """The IPsec settings `reset` removes, given the tunnels left on other bridges: ovsnet's own
    keys always, the certificate paths and ipsec_skb_mark once no tunnel left needs them.
    Each maps to None (remove), the shape of `Changes.other_config`."""
    by_method = remaining.ports_by_method()
    doomed = [PSK_FILE_KEY, LEGACY_PSK_KEY]
    if not by_method.get(METHOD_CERT):
        doomed += CERT_KEYS
    if not any(by_method.get(method) for method in METHODS):
        doomed.append(SKB_MARK_KEY)
    return {key: None for key in doomed if key in remaining.other_config}


# --- host-level settings (`ovsnet ipsec ...`) ----------------------------------------------------


@dataclass(frozen=True)
class CertificatePaths:
    certificate: str
    private_key: str
    ca_cert: str


def plan_host_certificate(
    paths: CertificatePaths | None, host: ObservedHost
) -> dict[str, str | None]:
    """other_config updates for `ovsnet ipsec cert` (None: `--unset`). Files checked by caller."""
    if paths is None:
        in_use = host.ports_by_method().get(METHOD_CERT)
        if in_use:
            raise InvalidInput(
                f"tunnels {shown_ports(in_use)} authenticate with these certificates",
                "remove those peers first",
            )
        wanted: dict[str, str | None] = dict.fromkeys(CERT_KEYS)
    else:
        psk_ports = host.ports_by_method().get(METHOD_PSK)
        if psk_ports:
            raise InvalidInput(
                f"this host's tunnels {shown_ports(psk_ports)} use PSK authentication, and "
                "ovs-monitor-ipsec rejects PSK tunnels once certificates are set",
                "remove those peers first (OVS allows one method per host)",
            )
        wanted = {
            "certificate": check_pem_path(paths.certificate, "certificate"),
            "private_key": check_pem_path(paths.private_key, "private key"),
            "ca_cert": check_pem_path(paths.ca_cert, "CA certificate"),
        }
    return _changed_only(wanted, host.other_config)


def plan_host_psk(psk_file: str | None, host: ObservedHost) -> dict[str, str | None]:
    """other_config updates for `ovsnet ipsec psk set` (None: unset): the file's absolute path
    (the caller has read and checked the file), and the legacy in-OVSDB copy removed."""
    wanted: dict[str, str | None] = {PSK_FILE_KEY: None, LEGACY_PSK_KEY: None}
    if psk_file is not None:
        check_one_method(host, METHOD_PSK)
        if not psk_file.startswith("/"):
            raise InvalidInput(f"PSK file path {psk_file!r} must be absolute")
        wanted[PSK_FILE_KEY] = psk_file
    return _changed_only(wanted, host.other_config)


def plan_plaintext_policy(allow: bool, host: ObservedHost) -> dict[str, str | None]:
    """other_config updates for `ovsnet ipsec plaintext allow|drop`."""
    if not allow:
        plaintext = host.ports_by_method().get(None, [])
        if plaintext:
            raise InvalidInput(
                f"dropping unencrypted tunnel traffic would cut the plaintext tunnels "
                f"{shown_ports(plaintext)}",
                "re-add those peers with --ipsec first",
            )
    wanted = {SKB_MARK_KEY: None if allow else DROP_PLAINTEXT_MARK}
    return _changed_only(wanted, host.other_config)


def _changed_only(
    wanted: Mapping[str, str | None], current: Mapping[str, str]
) -> dict[str, str | None]:
    return {k: v for k, v in wanted.items() if current.get(k) != v}
