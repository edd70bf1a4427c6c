"""HTML and CSS templates of cvas, loaded by name and rendered with Jinja2 (autoescaped)."""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from typing import Any

import jinja2


@lru_cache(maxsize=None)
def load_template(name: str) -> str:
    """The text of `cvas/templates/<name>` (a page, or a stylesheet it inlines)."""
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")


@lru_cache(maxsize=None)
def _environment() -> jinja2.Environment:
    # Every value is escaped: text reaches the page as text, and markup comes from the
    # templates (inline SVG and the stylesheet come in as markupsafe.Markup from their makers).
    return jinja2.Environment(loader=jinja2.FunctionLoader(load_template), autoescape=True,
                              undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                              keep_trailing_newline=True)


def render(name: str, **context: Any) -> str:
    """`cvas/templates/<name>` rendered with `context`."""
    return _environment().get_template(name).render(**context)
