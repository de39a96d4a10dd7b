"""The multi-host lab: emulated hosts in network namespaces, each with its own OVS and dockerd.

The README's demo ground, the test suite's fixtures (`ovsnet.lab.pytest_plugin`) and the
benchmarks' ground. Standard library only, so `import ovsnet.lab` stays cheap.

Place: docs/architecture.md, "Packages and what they own":
the netns lab (test and demo tooling shipped as `ovsnet lab`).
"""

from ovsnet.lab.container import LabContainer
from ovsnet.lab.host import LabHost
from ovsnet.lab.lab import Lab, list_labs, prune_labs
from ovsnet.lab.proc import LabCommandError, LabError

__all__ = [
    "Lab",
    "LabCommandError",
    "LabContainer",
    "LabError",
    "LabHost",
    "list_labs",
    "prune_labs",
]
