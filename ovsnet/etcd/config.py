"""Where etcd is and how ovsnet authenticates to it: the member URLs and the client's
certificate files, checked before connecting (files must be readable, the key 0600).

Place: docs/architecture.md, "Layers": facade layer.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from ovsnet.errors import InvalidInput

DEFAULT_TIMEOUT = 5.0


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
