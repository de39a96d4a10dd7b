"""Render for hosts of an inventory, and the examples in cloud-config/. Pure: text in, text out."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ovsnet import inventory as inv
from ovsnet.addressing import host_addressing
from ovsnet.errors import InvalidInput
from ovsnet.render.context import DEFAULT_IMAGE, DEFAULT_UNDERLAY_MTU, HostConfig, build_host_config
from ovsnet.render.documents import KINDS, render


@dataclass(frozen=True)
class Overrides:
    """Command-line settings that win over the inventory's (None: not given)."""

    underlay_mtu: int | None = None
    ipsec: bool | None = None
    image: str | None = None
    image_tarball: str | None = None
    docker_tls: bool | None = None
    docker_tls_dir: str | None = None


def host_config(inventory: inv.Inventory, name: str, overrides: Overrides) -> HostConfig:
    """One host of the inventory, with every other host as a peer (a full mesh)."""
    host = inventory.host(name)
    prefix = inventory.prefix_of(host)
    if prefix is None:
        raise InvalidInput(
            f"host {name} has no prefix yet", "run `ovsnet inventory allocate` on the inventory"
        )
    return build_host_config(
        prefix=prefix,
        supernet=str(inventory.supernet),
        underlay_mtu=_first(overrides.underlay_mtu, inventory.underlay_mtu, DEFAULT_UNDERLAY_MTU),
        peers=[str(peer) for peer in inventory.peers_of(name)],
        ipsec=_first(overrides.ipsec, inventory.ipsec, False),
        image=_first(overrides.image, inventory.image, DEFAULT_IMAGE),
        name=name,
        own_ip=host.ip,
        docker_tls=_first(overrides.docker_tls, inventory.docker_tls, False),
        docker_tls_dir=_first(overrides.docker_tls_dir, inventory.docker_tls_dir, None),
        image_tarball=overrides.image_tarball,
        peer_subnets=_peer_subnets(inventory, name),
    )


def _peer_subnets(inventory: inv.Inventory, name: str) -> list[str]:
    """Every peer's /24, in `peers_of` order, so each tunnel is pinned to its sources; none when
    a peer has no prefix yet (`ovsnet inventory allocate` gives every host one)."""
    prefixes = [inventory.prefix_of(host) for host in inventory.hosts if host.name != name]
    if None in prefixes:
        return []
    return [str(host_addressing(prefix=prefix, supernet=str(inventory.supernet)).subnet)
            for prefix in prefixes]  # fmt: skip


def _first(*values):
    return next((value for value in values if value is not None), None)


def file_name(kind: str, host: str) -> str:
    return host + KINDS[kind].suffix


def render_fleet(
    kind: str,
    inventory: inv.Inventory,
    overrides: Overrides,
    adjust: Callable[[HostConfig], HostConfig] = lambda config: config,
) -> dict[str, str]:
    """{file name: text}, one file per host of the inventory (`adjust`: e.g. embed its keys)."""
    return {
        file_name(kind, host.name): render(
            kind, adjust(host_config(inventory, host.name, overrides))
        )
        for host in inventory.hosts
    }


def render_examples(inventories: dict[str, str]) -> dict[str, str]:
    """Everything cloud-config/ holds, from its inventories ({file name: YAML text}).

    Returns {relative path: text}: each inventory as `allocate` leaves it, and for an
    inventory `NAME.yaml` every kind for every host under `NAME/`.
    """
    files: dict[str, str] = {}
    for file, text in sorted(inventories.items()):
        allocated = inv.allocate(inv.loads(text, file)).inventory
        files[file] = inv.dumps(allocated)
        folder = file.removesuffix(".yaml")
        for kind in KINDS:
            for name, rendered in render_fleet(kind, allocated, Overrides()).items():
                files[f"{folder}/{name}"] = rendered
    return files
