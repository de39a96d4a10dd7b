"""A rendered host's secrets (pure): Docker's TLS listener and certificates, the IPsec secret.

By default they are provisioned out of band (user-data is shown to anyone with read access to
the instance); the opt-ins carry them in user-data as `EmbeddedFile`s.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ovsnet.render.host_layout import (
    DEFAULT_DOCKER_TLS_DIR,
    DOCKER_TLS_FILES,
    DOCKER_TLS_LISTEN,
    IPSEC_CA_PATH,
    IPSEC_CERT_PATH,
    IPSEC_KEY_PATH,
    IPSEC_PSK_PATH,
)


@dataclass(frozen=True)
class TlsFiles:
    """dockerd's CA, server certificate and key as PEM text, for the opt-in to embed them."""

    ca: str = field(repr=False)
    cert: str = field(repr=False)
    key: str = field(repr=False)


@dataclass(frozen=True)
class EmbeddedFile:
    path: str
    mode: int
    contents: str = field(repr=False)


@dataclass(frozen=True)
class IpsecSecret:
    """One host's IPsec secret carried in its user-data (the opt-in; default: out of band).

    Either a PSK (the fleet's, one line) or this host's certificate, key and the CA, with the
    CN of every peer's certificate (certificate tunnels name the peer they expect).
    """

    psk: str | None = field(default=None, repr=False)
    cert: str | None = field(default=None, repr=False)
    key: str | None = field(default=None, repr=False)
    ca: str | None = field(default=None, repr=False)
    peer_names: tuple[tuple[str, str], ...] = ()  # (peer address, certificate CN)

    def embedded_files(self) -> list[EmbeddedFile]:
        """The files to write on the host: key and PSK readable by root only."""
        if self.psk is not None:
            return [EmbeddedFile(IPSEC_PSK_PATH, 0o600, self.psk + "\n")]
        # read_ipsec_pki, the only other maker, fills all three from the PKI directory
        assert self.ca is not None and self.cert is not None and self.key is not None, (
            "an IPsec secret without a PSK carries a certificate, its key and the CA"
        )
        return [
            EmbeddedFile(IPSEC_CA_PATH, 0o644, self.ca),
            EmbeddedFile(IPSEC_CERT_PATH, 0o644, self.cert),
            EmbeddedFile(IPSEC_KEY_PATH, 0o600, self.key),
        ]

    def setup_args(self) -> list[str]:
        """The `ovsnet ipsec ...` command that loads the embedded files (paths only)."""
        if self.psk is not None:
            return ["ipsec", "psk", "set", "--file", IPSEC_PSK_PATH]
        return [
            "ipsec", "cert", "--cert", IPSEC_CERT_PATH, "--key", IPSEC_KEY_PATH,
            "--ca", IPSEC_CA_PATH,
        ]  # fmt: skip


@dataclass(frozen=True)
class DockerTls:
    """dockerd's API on TCP with --tlsverify: where it listens, where its certificates are.

    By default the certificates are provisioned out of band (they are secrets, and user-data is
    readable by anyone who can read the instance's metadata); dockerd refuses to start until
    they exist. `embedded` is the opt-in to carry them in Ignition or cloud-init user-data.
    """

    directory: str = DEFAULT_DOCKER_TLS_DIR
    listen: str = DOCKER_TLS_LISTEN
    embedded: TlsFiles | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"tcp://{self.listen}"

    @property
    def files(self) -> dict[str, str]:
        """dockerd's option name -> the file's path on the host."""
        return {option: f"{self.directory}/{name}" for option, name in DOCKER_TLS_FILES.items()}

    @property
    def daemon_options(self) -> dict[str, str | bool]:
        """The daemon.json keys: TLS only, never "hosts" (see documents.docker_tls_socket)."""
        return {"tlsverify": True, **self.files}

    def embedded_files(self) -> list[EmbeddedFile]:
        """The files to write on the host when embedding: the key readable by root only."""
        if self.embedded is None:
            return []
        paths = self.files
        return [
            EmbeddedFile(paths["tlscacert"], 0o644, self.embedded.ca),
            EmbeddedFile(paths["tlscert"], 0o644, self.embedded.cert),
            EmbeddedFile(paths["tlskey"], 0o600, self.embedded.key),
        ]

    @property
    def flags(self) -> list[str]:
        """dockerd flags: the TCP listener and its TLS settings, for $DOCKER_OPTS."""
        return [
            f"--host={self.url}",
            "--tlsverify",
            *(f"--{option}={path}" for option, path in self.files.items()),
        ]
