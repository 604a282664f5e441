"""HTML from templates: shared by the web app and the self-contained static pages."""

from __future__ import annotations

import functools
from importlib import resources

from embedkit.evaluation.reference import format_percent
from embedkit.textsafe import printable


@functools.lru_cache(maxsize=1)
def environment():
    """The Jinja2 environment of embedkit's templates (HTML autoescaped)."""
    from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

    env = Environment(loader=PackageLoader("embedkit.server", "templates"), autoescape=select_autoescape(["html"]),
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["percent"] = format_percent
    env.filters["printable"] = printable
    env.filters["short_path"] = short_path
    return env


def stylesheet() -> str:
    """The app's CSS, for pages that carry it inline."""
    return resources.files("embedkit.server").joinpath("static", "app.css").read_text()


def render(template: str, **context) -> str:
    return environment().get_template(template).render(**context)


def short_path(path) -> str:
    """The file's folder and name only (``s1/8.pgm``): enough to find it, without the whole local path."""
    parts = str(path).replace("\\", "/").rstrip("/").split("/")
    return printable("/".join(parts[-2:]))
