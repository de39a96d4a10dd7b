"""The kernel's ESP SAs as `ip xfrm state` lists them, parsed (pure).

Place: docs/architecture.md, "Layers": pure layer.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class KernelSa:
    """One ESP SA as `ip xfrm state` lists it: what `xfrm state delete` needs to name it."""

    src: str
    dst: str
    spi: str
    mark: str | None = None  # "value/mask", when the SA carries one

    @property
    def keyed(self) -> bool:
        """Not a larval acquire state (SPI 0): the kernel keeps one while charon negotiates,
        or after it dropped an acquire, and such a state carries no packet."""
        return int(self.spi, 16) != 0

    def delete_line(self) -> str:
        # A marked SA is only found with its mark, which iproute2 takes as `mark V mask M`: the
        # listing's "V/M" form is refused ("MARK value is invalid"), seen on iproute2 6.1.
        mark = ""
        if self.mark:
            value, _, mask = self.mark.partition("/")
            mark = f" mark {value}" + (f" mask {mask}" if mask else "")
        return f"xfrm state delete src {self.src} dst {self.dst} proto esp spi {self.spi}{mark}"


_SA_HEAD = re.compile(r"^src (?P<src>\S+) dst (?P<dst>\S+)\s*$")
_SA_ID = re.compile(r"^\s+proto esp spi (?P<spi>0x[0-9a-f]+)")
_SA_MARK = re.compile(r"^\s+mark (?P<mark>0x[0-9a-f]+/0x[0-9a-f]+)")


def parse_esp_states(listing: str) -> list[KernelSa]:
    """The ESP SAs in `ip xfrm state` output; other protocols are left out."""
    found: list[KernelSa] = []
    head: re.Match[str] | None = None
    for line in listing.splitlines():
        if sa_head := _SA_HEAD.match(line):
            head = sa_head
        elif head and (sa_id := _SA_ID.match(line)):
            found.append(KernelSa(head["src"], head["dst"], sa_id["spi"]))
        elif found and head and (mark := _SA_MARK.match(line)):
            last = found[-1]
            if (last.src, last.dst) == (head["src"], head["dst"]):
                found[-1] = KernelSa(last.src, last.dst, last.spi, mark["mark"])
    return found


def keyed_both_ways(sas: Iterable[KernelSa], remote: str) -> bool:
    """The kernel holds a keyed ESP SA from `remote` and one to it: what a working IPsec pair
    needs. Neither charon's report (it keeps calling a CHILD_SA installed after its kernel SAs
    were deleted under it) nor the presence of a selector (larval states have one) says that."""
    keyed = [sa for sa in sas if sa.keyed]
    return any(sa.src == remote for sa in keyed) and any(sa.dst == remote for sa in keyed)
