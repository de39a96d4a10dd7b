"""The jinja2 environment: templates are files under ovsnet/templates, never Python strings."""

from __future__ import annotations

import json
from functools import cache
from urllib.parse import quote


def _json(value) -> str:
    # jinja's own `tojson` escapes <, >, & and ' for HTML; these documents are not HTML.
    return json.dumps(value, ensure_ascii=False)


def _data_url(text: str) -> str:
    """RFC 2397 data URL, as Ignition wants file contents."""
    return "data:," + quote(text, safe="")


@cache
def environment():
    import jinja2  # imported here: `ovsnet --help` must stay fast

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("ovsnet", "templates"),
        undefined=jinja2.StrictUndefined,  # a missing context key is a bug, not an empty string
        autoescape=False,  # systemd units, YAML and JSON; JSON values go through `json`
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["json"] = _json
    env.filters["data_url"] = _data_url
    return env


def render_template(name: str, context: dict) -> str:
    return environment().get_template(name).render(context)
