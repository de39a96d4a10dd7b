"""`ovsnet render` and `ovsnet render-examples`: read inputs, render, write files (the I/O side)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ovsnet.errors import InvalidInput, OperationFailed
from ovsnet.render.context import (
    DEFAULT_IMAGE,
    DEFAULT_UNDERLAY_MTU,
    HostConfig,
    build_host_config,
    embed_docker_tls,
    embed_ipsec_secret,
)
from ovsnet.render.documents import EMBEDDING_KINDS, IPSEC_EMBEDDING_KINDS, KINDS, render
from ovsnet.render.fleet import Overrides, file_name, host_config, render_examples, render_fleet
from ovsnet.render.host_layout import DOCKER_TLS_FILES
from ovsnet.render.host_secrets import IpsecSecret, TlsFiles


@dataclass(frozen=True)
class RenderRequest:
    kind: str
    prefix: str | None = None
    subnet: str | None = None
    supernet: str | None = None
    underlay_mtu: int | None = None
    peers: tuple[str, ...] = ()
    ipsec: bool = False
    image: str | None = None
    image_tarball: str | None = None
    docker_tls: bool = False
    docker_tls_dir: str | None = None
    docker_tls_embed: Path | None = None  # opt-in: carry the server key in the rendered file
    ipsec_psk_embed: Path | None = None  # opt-in: carry the (fleet's) PSK in the rendered file
    ipsec_pki_embed: Path | None = None  # opt-in: carry the host's certificate and key (a PKI)
    inventory: Path | None = None
    host: str | None = None
    all_hosts: bool = False
    output: Path | None = None
    dry_run: bool = False


@dataclass
class FileOutcome:
    path: str
    status: str  # written | unchanged | would write | stale | missing | extra

    def as_json(self) -> dict:
        return {"path": self.path, "status": self.status}


@dataclass
class RenderResult:
    kind: str
    files: list[FileOutcome] = field(default_factory=list)
    text: str | None = None  # set when rendering to stdout

    def as_json(self) -> dict:
        data: dict = {"kind": self.kind, "files": [f.as_json() for f in self.files]}
        if self.text is not None:
            data["text"] = self.text
        return data

    def render(self, console) -> None:
        if self.text is not None:
            console.file.write(self.text)
            return
        changed = [f for f in self.files if f.status != "unchanged"]
        for outcome in changed:
            console.print(f"{outcome.status}: {outcome.path}")
        unchanged = len(self.files) - len(changed)
        if not changed:
            console.print(f"nothing to do: {unchanged} file(s) already up to date")
        elif unchanged:
            console.print(f"{unchanged} other file(s) already up to date")


def run_render(request: RenderRequest) -> RenderResult:
    """Render one host (from flags or an inventory) or every host of an inventory."""
    if request.kind not in KINDS:
        raise InvalidInput(f"unknown kind {request.kind!r}", f"choose one of: {', '.join(KINDS)}")
    _check_embedding(request)
    if request.inventory is None:
        config = _embedded(request, _config_from_flags(request), host=None)
        config = _with_ipsec_secret(request, config, None)
        return _single(request, render(request.kind, config))
    inventory = _load_inventory(request)
    overrides = Overrides(
        underlay_mtu=request.underlay_mtu,
        ipsec=request.ipsec or None,
        image=request.image,
        image_tarball=request.image_tarball,
        docker_tls=request.docker_tls or None,
        docker_tls_dir=request.docker_tls_dir,
    )
    if not request.all_hosts:
        assert request.host is not None  # checked by _load_inventory
        config = _embedded(request, host_config(inventory, request.host, overrides), request.host)
        config = _with_ipsec_secret(request, config, inventory)
        return _single(request, render(request.kind, config))
    assert request.output is not None  # checked by _load_inventory
    files = render_fleet(
        request.kind,
        inventory,
        overrides,
        adjust=lambda config: _with_ipsec_secret(
            request, _embedded(request, config, config.name, fleet=True), inventory
        ),
    )
    private = _private(request)
    outcomes = [
        write_file(request.output / name, text, request.dry_run, private)
        for name, text in files.items()
    ]
    return RenderResult(kind=request.kind, files=outcomes)


def _private(request: RenderRequest) -> bool:
    """Whether the rendered files hold a secret (then written 0600, never to stdout)."""
    embeds = (request.docker_tls_embed, request.ipsec_psk_embed, request.ipsec_pki_embed)
    return any(value is not None for value in embeds)


def _check_embedding(request: RenderRequest) -> None:
    _check_ipsec_embedding(request)
    if request.docker_tls_embed is None:
        return
    if request.kind not in EMBEDDING_KINDS:
        raise InvalidInput(
            f"{request.kind} cannot carry Docker's certificates",
            f"embed them in {' or '.join(EMBEDDING_KINDS)}, or copy them to the host yourself",
        )
    if request.output is None:
        # The rendered file then holds a private key: never on stdout, in --json or a pipe.
        raise InvalidInput(
            "--docker-tls-embed puts a private key in the file", "give -o FILE (written 0600)"
        )


def _embedded(
    request: RenderRequest, config: HostConfig, host: str | None, fleet: bool = False
) -> HostConfig:
    """With --docker-tls-embed, the host's config carrying its Docker server certificate."""
    if request.docker_tls_embed is None:
        return config
    folder = _server_folder(request.docker_tls_embed, host, fleet)
    return embed_docker_tls(config, read_server_tls(folder))


def _check_ipsec_embedding(request: RenderRequest) -> None:
    if request.ipsec_psk_embed is None and request.ipsec_pki_embed is None:
        return
    if request.ipsec_psk_embed is not None and request.ipsec_pki_embed is not None:
        raise InvalidInput(
            "--ipsec-psk-embed and --ipsec-pki-embed both given",
            "a host authenticates all its tunnels one way: choose one",
        )
    if request.kind not in IPSEC_EMBEDDING_KINDS:
        raise InvalidInput(
            f"{request.kind} cannot carry the IPsec secret",
            f"embed it in {', '.join(IPSEC_EMBEDDING_KINDS)}, or provision it out of band",
        )
    if request.output is None:
        # The rendered file then holds a secret: never on stdout, in --json or a pipe.
        raise InvalidInput(
            "embedding the IPsec secret puts it in the file", "give -o FILE (written 0600)"
        )
    if request.ipsec_pki_embed is not None and request.inventory is None:
        raise InvalidInput(
            "--ipsec-pki-embed needs --inventory",
            "its host names are the certificates' CNs each tunnel must expect",
        )


def _with_ipsec_secret(request: RenderRequest, config: HostConfig, inventory) -> HostConfig:
    """With --ipsec-psk-embed / --ipsec-pki-embed, the host's config carrying its secret."""
    if request.ipsec_psk_embed is not None:
        from ovsnet.services.ipsec import read_psk_file

        psk = read_psk_file(request.ipsec_psk_embed).psk
        return embed_ipsec_secret(config, IpsecSecret(psk=psk.value))
    if request.ipsec_pki_embed is not None:
        return embed_ipsec_secret(
            config, read_ipsec_pki(request.ipsec_pki_embed, config, inventory)
        )
    return config


def read_ipsec_pki(directory: Path, config: HostConfig, inventory) -> IpsecSecret:
    """This host's certificate and key from an `ovsnet pki` folder, checked as `ovsnet ipsec
    cert` would (chain, key pair, RSA), and every peer's CN (its inventory name)."""
    from ovsnet.pki import store as pki_store
    from ovsnet.services.ipsec import check_certificate_files

    name = config.name
    assert name is not None, "--ipsec-pki-embed needs --inventory, whose hosts all have names"
    cert, key = pki_store.host_paths(directory, name)
    ca = pki_store.ca_cert_path(directory, "ike")  # the IKE CA only: the host trusts nothing else
    if not cert.is_file():
        raise InvalidInput(
            f"no IPsec certificate for {name} in {directory}",
            f"run `ovsnet pki issue {name} --key-type rsa --dir {directory}`",
        )
    check_certificate_files(str(cert), str(key), str(ca))
    names = tuple((str(host.ip), host.name) for host in inventory.hosts)
    try:
        texts = [path.read_text() for path in (cert, key, ca)]
    except OSError as exc:
        raise InvalidInput(f"cannot read {directory}: {exc.strerror}") from None
    return IpsecSecret(cert=texts[0], key=texts[1], ca=texts[2], peer_names=names)


def _server_folder(base: Path, host: str | None, fleet: bool) -> Path:
    """A host's folder in a PKI directory (docker/HOST/server), or the folder given itself."""
    from ovsnet.pki import store as pki_store

    if host is not None:
        per_host = pki_store.docker_dirs(base, host)[0]
        if per_host.is_dir():
            return per_host
        if fleet:  # one folder for every host would give them all the same certificate
            raise InvalidInput(
                f"no Docker server certificate for {host} in {base}",
                f"run `ovsnet pki issue-docker {host} --ip ADDR --dir {base}`",
            )
    return base


def read_server_tls(folder: Path) -> TlsFiles:
    """A dockerd server certificate folder, checked: purposes (server certificate, client CA),
    key pair, validity."""
    from ovsnet.pki import checks as pki_checks
    from ovsnet.pki import profile as pki_profile
    from ovsnet.pki import reading as pki_reading

    names = DOCKER_TLS_FILES.values()
    missing = [name for name in names if not (folder / name).is_file()]
    if missing:
        raise InvalidInput(
            f"{folder} lacks {', '.join(missing)}",
            "give the server folder `ovsnet pki issue-docker` wrote (docker/HOST/server)",
        )
    try:
        ca, cert, key = ((folder / name).read_bytes() for name in names)
    except OSError as exc:
        raise InvalidInput(f"cannot read {folder}: {exc.strerror}") from None
    certificate = pki_reading.load_certificate(cert, f"{folder}/cert.pem")
    pki_checks.check_key_matches(
        certificate, pki_reading.load_private_key(key, f"{folder}/key.pem")
    )
    # ca.pem is whom dockerd lets in (the docker-client CA), not the server certificate's
    # issuer: check each for its purpose, so no IKE or all-purpose CA ends up trusted.
    pki_checks.check_purpose(certificate, "docker-server", f"{folder}/cert.pem")
    pki_checks.check_purpose(
        pki_reading.load_certificate(ca, f"{folder}/ca.pem"), "docker-client", f"{folder}/ca.pem"
    )
    summary = pki_reading.summarize(certificate)
    if summary.expired(pki_profile.utcnow()):
        raise InvalidInput(
            f"{folder}/cert.pem is not valid now (until {summary.not_after:%Y-%m-%d})",
            "renew it with `ovsnet pki renew HOST --purpose docker-server`",
        )
    return TlsFiles(ca=ca.decode(), cert=cert.decode(), key=key.decode())


def _config_from_flags(request: RenderRequest):
    if request.host is not None or request.all_hosts:
        raise InvalidInput("--host and --all need --inventory FILE")
    return build_host_config(
        prefix=request.prefix,
        subnet=request.subnet,
        supernet=request.supernet or "10.0.0.0/8",
        underlay_mtu=request.underlay_mtu or DEFAULT_UNDERLAY_MTU,
        peers=request.peers,
        ipsec=request.ipsec,
        image=request.image or DEFAULT_IMAGE,
        docker_tls=request.docker_tls,
        docker_tls_dir=request.docker_tls_dir,
        image_tarball=request.image_tarball,
    )


def _load_inventory(request: RenderRequest):
    from ovsnet import inventory

    given = [
        flag
        for flag, value in (
            ("--prefix", request.prefix),
            ("--subnet", request.subnet),
            ("--supernet", request.supernet),
            ("--peer", request.peers or None),
        )
        if value is not None
    ]
    if given:
        raise InvalidInput(
            f"{given[0]} cannot be combined with --inventory",
            "the inventory decides subnets, supernet and peers: edit it there",
        )
    if request.all_hosts == (request.host is not None):
        raise InvalidInput("with --inventory give either --host NAME or --all")
    if request.all_hosts and request.output is None:
        raise InvalidInput("--all writes one file per host", "give the folder with -o DIR")
    output = request.output
    if request.all_hosts and output is not None and output.exists() and not output.is_dir():
        raise InvalidInput(f"{request.output} is not a folder", "with --all, -o names a folder")
    assert request.inventory is not None  # called only with --inventory
    return inventory.load(request.inventory)


def _single(request: RenderRequest, text: str) -> RenderResult:
    if request.output is None:
        return RenderResult(kind=request.kind, text=text)
    path = request.output
    if path.is_dir():
        path = path / file_name(request.kind, request.host or "host")
    private = _private(request)
    return RenderResult(kind=request.kind, files=[write_file(path, text, request.dry_run, private)])


def write_file(path: Path, text: str, dry_run: bool, private: bool = False) -> FileOutcome:
    """Write only when the content differs, so a second identical run changes nothing.

    A private file (it holds a key) is written 0600 from its first byte, and a copy of it left
    readable by others counts as differing.
    """
    if path.is_file() and path.read_text() == text and not (private and _loose(path)):
        return FileOutcome(str(path), "unchanged")
    if dry_run:
        return FileOutcome(str(path), "would write")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if private:
            from ovsnet.files import write_atomically

            write_atomically(path, text.encode(), 0o600)
        else:
            path.write_text(text)
    except OSError as exc:
        raise OperationFailed(f"cannot write {path}: {exc.strerror}") from None
    return FileOutcome(str(path), "written")


def _loose(path: Path) -> bool:
    return path.stat().st_mode & 0o077 != 0


def run_render_examples(folder: Path, check: bool = False) -> RenderResult:
    """Regenerate cloud-config/ from its inventories, or with check=True report what is stale."""
    if not folder.is_dir():
        raise InvalidInput(f"{folder} is not a folder", "give the cloud-config/ folder")
    inventories = {path.name: path.read_text() for path in sorted(folder.glob("*.yaml"))}
    if not inventories:
        raise InvalidInput(f"{folder} holds no inventory (*.yaml)")
    expected = render_examples(inventories)
    outcomes = [write_file(folder / name, text, dry_run=check) for name, text in expected.items()]
    outcomes += _extra_files(folder, expected, dry_run=check)
    if check:
        for outcome in outcomes:
            if outcome.status == "would write":
                outcome.status = "stale"
        stale = [o.path for o in outcomes if o.status != "unchanged"]
        if stale:
            raise OperationFailed(
                f"{len(stale)} example file(s) are stale: {', '.join(stale)}",
                "run `make render-examples` and commit the result",
            )
    return RenderResult(kind="examples", files=outcomes)


def _extra_files(folder: Path, expected: dict[str, str], dry_run: bool) -> list[FileOutcome]:
    """Files in an inventory's rendered folder that it no longer produces (a host was removed)."""
    folders = {name.rsplit("/", 1)[0] for name in expected if "/" in name}
    extra = []
    for sub in sorted(folders):
        for path in sorted((folder / sub).glob("*")):
            if f"{sub}/{path.name}" not in expected:
                if not dry_run:
                    path.unlink()
                extra.append(FileOutcome(str(path), "extra" if dry_run else "removed"))
    return extra
