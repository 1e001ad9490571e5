"""The HTML pages' one Jinja2 environment: the templates in funreason_refine/templates, autoescaped.

Python hands a template plain data and never builds markup; a key the template asks for and the
context lacks fails loudly (StrictUndefined) instead of printing nothing.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import jinja2


def render(template: str, /, **context: Any) -> str:
    """The template (a path under funreason_refine/templates) rendered with ``context``."""
    return environment().get_template(template).render(context)


@cache
def environment() -> jinja2.Environment:
    """Created on first use, then shared: jinja2 is imported only by the commands that write a page."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("funreason_refine", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        finalize=_printable,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["fmt"] = format  # {{ x|fmt(".1%") }}: Python's format spec, as the f-strings had
    return env


def _printable(value: Any) -> Any:
    """Each printed value as UTF-8 can hold it (record text may carry lone surrogates, legal JSON escapes) and as
    a person should see it: a bidirectional or control character written as its escape (report.data.shown)."""
    from markupsafe import Markup

    from funreason_refine.report.data import clean, shown

    printed = clean(shown(value))
    return Markup(printed) if isinstance(value, Markup) else printed
