"""The Docker facade: the only module that imports `docker`.

`connect()` returns a client with domain verbs; it opens the connection lazily, on the first
verb. A remote daemon is reached over TCP with mutual TLS (`--docker-host tcp://HOST:2376
--docker-tls DIR`, DIR holding ca.pem, cert.pem and key.pem as `ovsnet pki issue-docker` writes
them). Docker's errors become ovsnet's: an unreachable daemon or a failed TLS handshake is
NotReady naming the daemon, anything else the API refuses is OperationFailed.

Place: docs/architecture.md, "Layers": facade layer.
"""

from __future__ import annotations

import ipaddress
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from ovsnet.errors import InvalidInput, NotReady, OperationFailed

DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"
TLS_FILES = ("ca.pem", "cert.pem", "key.pem")
DEFAULT_BRIDGE_NETWORK = "bridge"
_MTU_OPTION = "com.docker.network.driver.mtu"
_BRIDGE_NAME_OPTION = "com.docker.network.bridge.name"


@dataclass(frozen=True)
class DockerTarget:
    """Where the daemon is and how to authenticate to it (pure, validated)."""

    url: str
    tls_dir: Path | None

    @property
    def is_tcp(self) -> bool:
        return urlparse(self.url).scheme in ("tcp", "http", "https")


def resolve_target(docker_host: str | None, tls_dir: str | os.PathLike | None) -> DockerTarget:
    """Validate --docker-host / --docker-tls (falling back to DOCKER_HOST, then the socket)."""
    url = docker_host or os.environ.get("DOCKER_HOST") or DEFAULT_DOCKER_HOST
    parsed = urlparse(url)
    if parsed.scheme not in ("unix", "tcp", "http", "https", "ssh"):
        raise InvalidInput(
            f"--docker-host {url!r} is not a Docker address", "give unix:///path or tcp://HOST:2376"
        )
    tls = Path(tls_dir) if tls_dir else None
    target = DockerTarget(url, tls)
    if target.is_tcp and tls is None and not _is_loopback(parsed.hostname):
        # The network between hosts is not trusted: the Docker API is root on the host.
        raise InvalidInput(
            f"refusing to talk to {url} without TLS",
            "give --docker-tls DIR (see `ovsnet pki issue-docker`)",
        )
    if tls is not None:
        if not target.is_tcp:
            raise InvalidInput(
                "--docker-tls applies to tcp:// Docker hosts only",
                "give --docker-host tcp://HOST:2376",
            )
        missing = [name for name in TLS_FILES if not (tls / name).is_file()]
        if missing:
            raise InvalidInput(
                f"{tls} lacks {', '.join(missing)}",
                "give the client directory written by `ovsnet pki issue-docker`",
            )
    return target


def _is_loopback(hostname: str | None) -> bool:
    if hostname in (None, "localhost"):
        return hostname == "localhost"
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class BridgeSettings:
    """Docker's default bridge network as the daemon reports it."""

    bridge: str | None  # Linux bridge name (docker0)
    subnet: str | None  # e.g. 10.0.0.0/8
    gateway: str | None  # e.g. 10.0.42.1
    ip_range: str | None  # --fixed-cidr, e.g. 10.0.42.0/24
    mtu: int | None

    @property
    def bip(self) -> str | None:
        """The daemon's --bip: gateway address with the subnet's prefix length."""
        if not (self.subnet and self.gateway):
            return None
        return f"{self.gateway}/{ipaddress.ip_network(self.subnet, strict=False).prefixlen}"

    def as_json(self) -> dict:
        return {
            "bridge": self.bridge,
            "subnet": self.subnet,
            "gateway": self.gateway,
            "ip_range": self.ip_range,
            "bip": self.bip,
            "mtu": self.mtu,
        }


def bridge_settings_from_network(attrs: dict) -> BridgeSettings:
    """Pure: read BridgeSettings out of a `docker network inspect bridge` document."""
    configs = (attrs.get("IPAM") or {}).get("Config") or []
    ipv4: dict = next((c for c in configs if ":" not in c.get("Subnet", "")), {})
    options = attrs.get("Options") or {}
    mtu = options.get(_MTU_OPTION)
    return BridgeSettings(
        bridge=options.get(_BRIDGE_NAME_OPTION),
        subnet=ipv4.get("Subnet"),
        gateway=ipv4.get("Gateway"),
        ip_range=ipv4.get("IPRange") or None,
        mtu=int(mtu) if mtu else None,
    )


@dataclass(frozen=True)
class DaemonInfo:
    name: str
    server_version: str
    api_version: str
    operating_system: str

    def as_json(self) -> dict:
        return {
            "name": self.name,
            "server_version": self.server_version,
            "api_version": self.api_version,
            "operating_system": self.operating_system,
        }


class DockerClient:
    """Domain verbs on one Docker daemon. Opens its connection on first use."""

    def __init__(self, target: DockerTarget, timeout: float = 10.0):
        self.target = target
        self.timeout = timeout
        self._api = None

    def __enter__(self) -> DockerClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._api is not None:
            self._api.close()
            self._api = None

    def info(self) -> DaemonInfo:
        with self._errors():
            api = self._client()
            info = api.info()
            version = api.version()
        return DaemonInfo(
            name=info.get("Name", ""),
            server_version=version.get("Version", ""),
            api_version=version.get("ApiVersion", ""),
            operating_system=info.get("OperatingSystem", ""),
        )

    def bridge_settings(self) -> BridgeSettings:
        """bip, MTU and bridge name of the default bridge network (NotReady if it has none)."""
        import docker.errors

        with self._errors():
            try:
                attrs = self._client().inspect_network(DEFAULT_BRIDGE_NETWORK)
            except docker.errors.NotFound:
                raise NotReady(
                    f"Docker at {self.target.url} has no default bridge network",
                    "start dockerd without --bridge=none",
                ) from None
        return bridge_settings_from_network(attrs)

    def _client(self):
        if self._api is None:
            import docker

            tls = None
            if self.target.tls_dir is not None:
                d = self.target.tls_dir
                tls = docker.tls.TLSConfig(
                    client_cert=(str(d / "cert.pem"), str(d / "key.pem")),
                    ca_cert=str(d / "ca.pem"),
                    verify=True,
                )
            # version="auto" asks the daemon (Docker 20.10 speaks API 1.41, older than the
            # package's default), so building the client already talks to the daemon.
            self._api = _api_client_class()(
                base_url=self.target.url, tls=tls, version="auto", timeout=self.timeout
            )
        return self._api

    @contextmanager
    def _errors(self):
        """Turn docker/requests errors into ovsnet's, naming the daemon."""
        import docker.errors
        import requests.exceptions

        try:
            yield
        except docker.errors.APIError as exc:
            raise OperationFailed(
                f"Docker at {self.target.url} refused the request: {exc.explanation}"
            ) from None
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            # docker-py wraps a failure while asking for the API version in DockerException;
            # the cause (TLS or connection) is further down the chain.
            raise connection_error(self.target.url, exc) from None


def _api_client_class():
    """docker.APIClient that ignores REQUESTS_CA_BUNDLE, proxies and .netrc from the environment.

    NOTE: requests lets REQUESTS_CA_BUNDLE override the client's own CA (docker/docker-py#2433),
    so with it set the daemon would be checked against the public CAs instead of ovsnet's CA,
    and HTTPS_PROXY would route the Docker API through a proxy. Session.__init__ assigns
    trust_env, hence a property that ignores the assignment.
    """
    import docker

    class ApiClient(docker.APIClient):
        trust_env = property(lambda self: False, lambda self, value: None)

    return ApiClient


def _chain(exc: BaseException):
    """exc and every exception it was caused by, including urllib3's `.reason` and args."""
    seen, todo = set(), [exc]
    while todo:
        current = todo.pop(0)
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        linked = [current.__cause__, current.__context__, getattr(current, "reason", None)]
        todo += [e for e in [*linked, *current.args] if isinstance(e, BaseException)]


def connection_error(where: str, exc: BaseException) -> NotReady:
    """NotReady for a daemon we could not talk to, with the deepest useful reason."""
    import ssl

    import requests.exceptions

    chain = list(_chain(exc))
    tls = [e for e in chain if isinstance(e, ssl.SSLError | requests.exceptions.SSLError)]
    if tls:
        reason = getattr(tls[-1], "reason", None) or str(tls[-1])
        return NotReady(
            f"TLS with Docker at {where} failed ({_one_line(reason)})",
            "--docker-tls must hold a client certificate and CA of the daemon's own PKI",
        )
    system = [e for e in chain if isinstance(e, OSError) and e.strerror]
    reason = system[-1].strerror if system else _one_line(str(exc))
    return NotReady(
        f"Docker at {where} is not reachable ({reason})", "start dockerd or check --docker-host"
    )


def _one_line(text: str) -> str:
    return " ".join(str(text).split())[:200]


def connect(
    docker_host: str | None = None, tls_dir: str | os.PathLike | None = None, timeout: float = 10.0
) -> DockerClient:
    """A client for the daemon at docker_host (default DOCKER_HOST, else the local socket)."""
    return DockerClient(resolve_target(docker_host, tls_dir), timeout=timeout)
