"""IPsec on ovsnet's tunnels: what OVSDB must hold, and what ovs-monitor-ipsec reports. Pure.

OVS (>= 2.11) makes IPsec a property of an ordinary gre/vxlan/geneve port, applied by
ovs-monitor-ipsec driving strongSwan or Libreswan (ovs-vswitchd.conf.db(5), "IPsec"):

- pre-shared key: `Interface options:psk` on each tunnel, no certificate settings;
- CA-signed certificates: `Open_vSwitch other_config:certificate/private_key/ca_cert` once per
  host, `options:remote_name=<peer CN>` on each tunnel;
- self-signed certificates: certificate/private_key, `options:remote_cert=<file>` per tunnel;
- `other_config:ipsec_skb_mark=0/1` drops every tunnelled packet that leaves unencrypted.

All tunnels of a host must use the same method; a tunnel whose settings ovs-monitor-ipsec
judges invalid silently carries plaintext, so ovsnet checks everything here first and sets
ipsec_skb_mark by default (fail closed). OVS < 2.7 only knows the legacy `ipsec_gre` port type
(PSK); 2.7 to 2.10 have no IPsec at all.

Nothing here does I/O: callers read OVSDB and files, pass what they saw in, and write back
what these functions return.

Place: docs/architecture.md, "Layers": pure layer.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from ovsnet.errors import InvalidInput, NotReady

METHOD_PSK = "psk"
METHOD_CERT = "cert"
METHODS = (METHOD_PSK, METHOD_CERT)

PSK_MIN_LENGTH = 32
PSK_MAX_LENGTH = 512
# Keys of Open_vSwitch other_config.
CERT_KEYS = ("certificate", "private_key", "ca_cert")
SKB_MARK_KEY = "ipsec_skb_mark"
DROP_PLAINTEXT_MARK = "0/1"  # drop tunnelled packets whose skb_mark LSB is 0, i.e. all of them
# Where the host's default PSK is (`ovsnet ipsec psk set`), for `peer add --ipsec` without
# --psk-file: the path, never the key. OVS needs the key on each tunnel (options:psk); a copy
# in other_config would be one more place for it to leak from (ovsdb-server's log and backups).
# vswitchd and ovs-monitor-ipsec ignore keys they do not know.
PSK_FILE_KEY = "ovsnet-ipsec-psk-file"
# Older ovsnet kept the PSK itself here; `ipsec psk set`/`unset` and `reset` remove it.
LEGACY_PSK_KEY = "ovsnet-ipsec-psk"
# Keys of Interface options that make ovs-monitor-ipsec treat a tunnel as IPsec.
TUNNEL_IPSEC_KEYS = ("psk", "remote_name", "remote_cert")

LEGACY_PORT_TYPE = "ipsec_gre"
NATIVE_IPSEC_TUNNEL_TYPES = ("gre", "vxlan", "geneve")

# What ovs-monitor-ipsec copies into ipsec.conf/ipsec.secrets unquoted or in double quotes:
# a newline or quote there would let a value add configuration of its own.
_PSK_CHARS = re.compile(r"^[\x21\x23-\x7e]+$")  # printable ASCII except space and '"'
_NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,62}[A-Za-z0-9])?$")
_PATH = re.compile(r"^/[^\s\"'#,]+$")


# --- secrets ---------------------------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class Psk:
    """A pre-shared key. Its repr and str never show the value (tracebacks, logs, f-strings)."""

    value: str = field(repr=False)

    def __repr__(self) -> str:
        return f"Psk(<{len(self.value)} characters>)"

    __str__ = __repr__


def validate_psk(text: str, source: str = "the PSK") -> Psk:
    """A PSK ovs-monitor-ipsec can write safely and that is long enough to resist guessing."""
    if len(text) < PSK_MIN_LENGTH:
        raise InvalidInput(
            f"{source} has {len(text)} characters; at least {PSK_MIN_LENGTH} are required",
            "generate one with `openssl rand -base64 48`",
        )
    if len(text) > PSK_MAX_LENGTH:
        raise InvalidInput(f"{source} is longer than {PSK_MAX_LENGTH} characters")
    if not _PSK_CHARS.fullmatch(text):
        # Never say which character: that would reveal part of the secret.
        raise InvalidInput(
            f"{source} contains spaces, quotes, control or non-ASCII characters",
            "use printable ASCII without spaces or double quotes (e.g. openssl rand -base64 48)",
        )
    return Psk(text)


def psk_from_file_bytes(data: bytes, source: str) -> Psk:
    """The PSK in a file's content: one line, the trailing newline stripped."""
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise InvalidInput(f"{source} is not ASCII text", "put the PSK on one line") from None
    if text.endswith("\r\n"):
        text = text[:-2]
    elif text.endswith("\n"):
        text = text[:-1]
    if "\n" in text or "\r" in text:
        raise InvalidInput(f"{source} holds more than one line", "put only the PSK in the file")
    return validate_psk(text, source)


def check_remote_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise InvalidInput(
            f"remote name {name!r} is not a certificate common name ovsnet can use",
            "give the peer's host name as in `ovsnet pki issue HOST`",
        )
    return name


def check_pem_path(path: str, what: str) -> str:
    if not _PATH.fullmatch(path):
        raise InvalidInput(
            f"{what} path {path!r} must be absolute, without spaces, quotes, ',' or '#'",
            "strongSwan reads it from ipsec.conf, which cannot quote such paths",
        )
    return path


# --- OVS versions ------------------------------------------------------------------------------


def parse_ovs_version(text: str | None) -> tuple[int, int, int]:
    match = re.match(r"^\s*(\d+)\.(\d+)(?:\.(\d+))?", text or "")
    if not match and not text:
        raise NotReady(
            "cannot tell the Open vSwitch version: neither ovs-vswitchd nor ovsdb-server "
            "answered on its control socket (next to the OVSDB socket), and OVSDB has no "
            "Open_vSwitch:ovs_version (only ovs-ctl, the distributions' start script, records it)",
            "is ovs-vswitchd running? or record it: ovs-vsctl set Open_vSwitch . ovs_version=X.Y.Z",
        )
    if not match:
        raise NotReady(f"cannot tell the Open vSwitch version from {text!r}")
    major, minor, patch = match.groups()
    return int(major), int(minor), int(patch or 0)


def port_type(ovs_version: str | None, tunnel_type: str, method: str) -> str:
    """The Interface type for an IPsec tunnel on this OVS."""
    version = parse_ovs_version(ovs_version)
    shown = ".".join(map(str, version))
    if version < (2, 7):
        if tunnel_type != "gre" or method != METHOD_PSK:
            raise NotReady(
                f"Open vSwitch {shown} supports IPsec only as ipsec_gre with a PSK",
                "use --type gre with --psk-file, or upgrade OVS to 2.11 or later",
            )
        return LEGACY_PORT_TYPE
    if version < (2, 11):
        raise NotReady(
            f"Open vSwitch {shown} has no IPsec: ipsec_gre was removed in 2.7 and tunnel "
            "IPsec (ovs-monitor-ipsec) arrived in 2.11",
            "upgrade Open vSwitch to 2.11 or later",
        )
    if tunnel_type not in NATIVE_IPSEC_TUNNEL_TYPES:
        raise InvalidInput(
            f"IPsec is not available for {tunnel_type} tunnels",
            f"use one of {', '.join(NATIVE_IPSEC_TUNNEL_TYPES)}",
        )
    return tunnel_type


# --- what the host has now ---------------------------------------------------------------------


def tunnel_method(port_type_name: str, options: Mapping[str, str]) -> str | None:
    """psk, cert, or None for a plaintext tunnel."""
    if "psk" in options:
        return METHOD_PSK
    if "remote_name" in options or "remote_cert" in options:
        return METHOD_CERT
    if port_type_name == LEGACY_PORT_TYPE:
        return METHOD_CERT  # legacy ipsec_gre without psk authenticates with peer_cert
    return None


@dataclass(frozen=True)
class ObservedTunnel:
    port: str
    type: str
    options: Mapping[str, str]

    @property
    def method(self) -> str | None:
        return tunnel_method(self.type, self.options)

    def __repr__(self) -> str:  # options may hold a PSK
        return f"ObservedTunnel({self.port!r}, {self.type!r}, method={self.method!r})"


@dataclass(frozen=True)
class ObservedHost:
    """The IPsec-relevant part of one host's OVSDB."""

    ovs_version: str | None
    other_config: Mapping[str, str]
    tunnels: tuple[ObservedTunnel, ...] = ()

    def __repr__(self) -> str:  # other_config may hold the default PSK
        return f"ObservedHost({self.ovs_version!r}, tunnels={self.tunnels!r})"

    def ports_by_method(self, ignore: Iterable[str] = ()) -> dict[str | None, list[str]]:
        skip = set(ignore)
        found: dict[str | None, list[str]] = {}
        for tunnel in self.tunnels:
            if tunnel.port not in skip:
                found.setdefault(tunnel.method, []).append(tunnel.port)
        return found

    @property
    def has_certificate_config(self) -> bool:
        return any(self.other_config.get(key) for key in CERT_KEYS)

    @property
    def drops_plaintext(self) -> bool:
        return bool(self.other_config.get(SKB_MARK_KEY))

    @property
    def default_psk_file(self) -> str | None:
        return self.other_config.get(PSK_FILE_KEY) or None


def _names(ports: list[str]) -> str:
    shown = ", ".join(sorted(ports)[:5])
    return shown + (f" and {len(ports) - 5} more" if len(ports) > 5 else "")


def check_one_method(host: ObservedHost, method: str, port: str | None = None) -> None:
    """OVS requires one authentication method for all IPsec tunnels of a host."""
    by_method = host.ports_by_method(ignore=[port] if port else [])
    for other in METHODS:
        if other != method and by_method.get(other):
            raise InvalidInput(
                f"this host's tunnels {_names(by_method[other])} use {other} authentication; "
                f"OVS requires one method for all IPsec tunnels of a host",
                f"use {other} for this peer too, or remove those tunnels first",
            )
    if method == METHOD_PSK and host.has_certificate_config:
        raise InvalidInput(
            "this host is set up for certificate authentication (Open_vSwitch other_config:"
            "certificate); ovs-monitor-ipsec rejects PSK tunnels while it is set",
            "use certificates, or remove them with `ovsnet ipsec cert --unset`",
        )


def check_plaintext_allowed(host: ObservedHost) -> None:
    """A plaintext tunnel on a host that drops plaintext tunnel traffic would never work."""
    if host.drops_plaintext:
        raise InvalidInput(
            f"this host drops unencrypted tunnel traffic (other_config:{SKB_MARK_KEY}="
            f"{host.other_config[SKB_MARK_KEY]}), so a plaintext tunnel would carry nothing",
            "add the peer with --ipsec, or allow plaintext with `ovsnet ipsec plaintext allow`",
        )


DOWNGRADE_HINT = (
    "give --ipsec (with the same authentication) to keep them as they are, or pass "
    "--allow-downgrade if you really mean it"
)


@dataclass(frozen=True)
class Transition:
    """One existing tunnel and what a command is about to make of it."""

    peer: str
    before: ObservedTunnel
    after: ObservedTunnel


def downgrades(transitions: Iterable[Transition]) -> tuple[list[str], list[str]]:
    """(peers whose IPsec tunnel would become plaintext, peers whose certificate
    authentication would become a PSK)."""
    to_plaintext, to_psk = [], []
    for change in transitions:
        before, after = change.before.method, change.after.method
        if before is not None and after is None:
            to_plaintext.append(change.peer)
        elif before == METHOD_CERT and after == METHOD_PSK:
            to_psk.append(change.peer)
    return to_plaintext, to_psk


def check_no_downgrade(transitions: Iterable[Transition], allow: bool) -> None:
    """Refuse to weaken an existing tunnel unless the user said so (`--allow-downgrade`).

    Re-stating peers without --ipsec must not silently turn an encrypted tunnel into plain
    GRE (the report would only say "update tunnel").
    """
    if allow:
        return
    to_plaintext, to_psk = downgrades(transitions)
    if to_plaintext:
        raise InvalidInput(
            f"this would turn the IPsec tunnels to {_names(to_plaintext)} into plaintext",
            DOWNGRADE_HINT,
        )
    if to_psk:
        raise InvalidInput(
            f"this would switch the tunnels to {_names(to_psk)} from certificate to "
            "pre-shared key authentication",
            DOWNGRADE_HINT,
        )


# --- what OVSDB must hold ----------------------------------------------------------------------


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

    def as_json(self) -> dict:
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
            f"{_names(plaintext)}",
            "add those peers with --ipsec too, or pass --allow-plaintext",
        )
    if host.other_config.get(SKB_MARK_KEY) == DROP_PLAINTEXT_MARK:
        return {}, ()
    return {SKB_MARK_KEY: DROP_PLAINTEXT_MARK}, ()


def other_config_after_removal(host: ObservedHost, removed_ports: Iterable[str]) -> dict:
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
                f"tunnels {_names(in_use)} authenticate with these certificates",
                "remove those peers first",
            )
        wanted: dict[str, str | None] = dict.fromkeys(CERT_KEYS)
    else:
        psk_ports = host.ports_by_method().get(METHOD_PSK)
        if psk_ports:
            raise InvalidInput(
                f"this host's tunnels {_names(psk_ports)} use PSK authentication, and "
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
                f"{_names(plaintext)}",
                "re-add those peers with --ipsec first",
            )
    wanted = {SKB_MARK_KEY: None if allow else DROP_PLAINTEXT_MARK}
    return _changed_only(wanted, host.other_config)


def _changed_only(wanted: Mapping[str, str | None], current: Mapping[str, str]) -> dict:
    return {k: v for k, v in wanted.items() if current.get(k) != v}


# --- ovs-monitor-ipsec's view: `ovs-appctl -t ovs-monitor-ipsec tunnels/show` ----------------

_HEADER = re.compile(
    r"^Interface name: (?P<name>\S+) v(?P<version>\d+) "
    r"\((?P<state>[A-Z]+)(?::\s*(?P<reason>.*))?\)$"
)
_FIELD = re.compile(r"^  (?P<key>[A-Za-z ]+):\s+(?P<value>.*)$")
_SECTIONS = {
    "Kernel policies installed:": "policies",
    "Kernel security associations installed:": "security_associations",
    "IPsec connections that are active:": "connections",
}
_REDACTED = {"PSK"}


@dataclass(frozen=True)
class MonitorTunnel:
    """One tunnel as ovs-monitor-ipsec sees it. Never holds the PSK."""

    name: str
    version: int
    state: str  # CONFIGURED | INVALID | REMOVED | INIT
    invalid_reason: str | None
    config: Mapping[str, str]
    policies: tuple[str, ...]
    security_associations: tuple[str, ...]
    connections: tuple[str, ...]

    @property
    def ike_established(self) -> bool:
        return any("ESTABLISHED" in line for line in self.connections)

    @property
    def child_installed(self) -> bool:
        return any("INSTALLED" in line for line in self.connections) or bool(
            self.security_associations
        )

    def summary(self) -> str:
        """One phrase for `ovsnet status`."""
        if self.state == "INVALID":
            return f"invalid: {self.invalid_reason}"
        if self.state != "CONFIGURED":
            return self.state.lower()
        if self.child_installed and self.ike_established:
            return "established"
        if self.ike_established:
            return "IKE up, no IPsec SA installed"
        if any("CONNECTING" in line for line in self.connections):
            return "configured, negotiating"
        return "configured but not established"

    def as_json(self) -> dict:
        return {
            "name": self.name,
            "version": self.version,
            "state": self.state,
            "invalid_reason": self.invalid_reason,
            "summary": self.summary(),
            "ike_established": self.ike_established,
            "child_installed": self.child_installed,
            "config": dict(self.config),
            "policies": list(self.policies),
            "security_associations": list(self.security_associations),
            "connections": list(self.connections),
        }


def parse_tunnels_show(text: str) -> list[MonitorTunnel]:
    """Parse ovs-monitor-ipsec's tunnels/show (OVS 2.11 to 3.x format); redacts the PSK."""
    tunnels: list[MonitorTunnel] = []
    current: dict | None = None
    section: str | None = None
    for line in text.splitlines():
        header = _HEADER.match(line.rstrip())
        if header:
            if current:
                tunnels.append(_tunnel(current))
            current = {
                "name": header["name"],
                "version": int(header["version"]),
                "state": header["state"].strip(),
                "invalid_reason": (header["reason"] or "").strip() or None,
                "config": {},
                "policies": [],
                "security_associations": [],
                "connections": [],
            }
            section = None
            continue
        if current is None or not line.strip():
            continue
        if line.strip() in _SECTIONS:
            section = _SECTIONS[line.strip()]
            continue
        if section:
            current[section].append(line.strip())
            continue
        field_match = _FIELD.match(line)
        if field_match:
            key = field_match["key"].strip()
            value = field_match["value"].strip()
            if key in _REDACTED:
                value = "<secret>" if value not in ("", "None") else "None"
            current["config"][key] = value
    if current:
        tunnels.append(_tunnel(current))
    return tunnels


def _tunnel(raw: dict) -> MonitorTunnel:
    return MonitorTunnel(
        name=raw["name"],
        version=raw["version"],
        state=raw["state"],
        invalid_reason=raw["invalid_reason"],
        config=raw["config"],
        policies=tuple(raw["policies"]),
        security_associations=tuple(raw["security_associations"]),
        connections=tuple(raw["connections"]),
    )
