"""First-boot configuration: CoreOS cloud-config, Ignition, cloud-init, daemon.json, drop-in.

`context` derives what a host needs (pure, with `host_layout`, `host_secrets` and `safe_text`),
`documents` renders it through the jinja2 templates in ovsnet/templates, `validate` checks
rendered files with the real tools (and `docker_settings`, `coreos_schema` what no tool checks).

Place: docs/architecture.md, "Packages and what they own":
first-boot rendering (pure contexts, templates, validators).
"""

from ovsnet.render.context import DEFAULT_IMAGE, HostConfig, build_host_config
from ovsnet.render.documents import KINDS, render, units

__all__ = ["DEFAULT_IMAGE", "KINDS", "HostConfig", "build_host_config", "render", "units"]
