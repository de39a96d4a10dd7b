"""The real-kernel lab: Debian 12 VMs under qemu with the kernel OVS datapath, GRE and IPsec.

`VmLab.up(vms=3)` boots VMs from a cached base image (see `image.py`), joined by taps on a Linux
bridge inside a network namespace of their own; `down()` removes everything by PID and name.

Place: docs/architecture.md, "Packages and what they own":
the real-kernel VM lab (test tooling shipped as `ovsnet vmlab`).
"""

from __future__ import annotations


def __getattr__(name: str):
    # Lazy, so `python -m ovsnet.vmlab.image` and the CLI's --help stay light.
    if name in ("Vm", "VmLab"):
        from ovsnet.vmlab import lab

        return getattr(lab, name)
    raise AttributeError(name)


__all__ = ["Vm", "VmLab"]
