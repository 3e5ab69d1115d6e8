"""The one Jinja2 environment of the HTML reports.

Templates live in `workbench/report/templates/` (package data). Autoescape is on for
every template, so any value a template prints is HTML-escaped unless it is a
`markupsafe.Markup`; an unknown variable raises instead of printing nothing; `None`
prints as an empty string.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, Template


def _finalize(value: Any) -> Any:
    return "" if value is None else value


@cache
def environment() -> Environment:
    return Environment(
        loader=PackageLoader("workbench.report", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        finalize=_finalize,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def template(name: str) -> Template:
    return environment().get_template(name)


def render(name: str, **context: Any) -> str:
    """Render the template `name` (e.g. "index.html.j2") with `context`."""
    return template(name).render(**context)
