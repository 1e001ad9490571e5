"""A funreason-refine stage: every argument value of the answer must be stated in the query.

A reference answer whose values come from nowhere teaches a model to invent them. The stage
compares strings case- and whitespace-insensitively, numbers as written (3, 3.0 and "3" all
match "3"), and looks inside lists and objects. Booleans and nulls are not checked: queries
imply them ("in stock", "without a filter") more often than they state them.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import Field

from funreason_refine import Record, Stage, StageConfig, Verdict, hookimpl

__version__ = "0.1.0"
_SPACE = re.compile(r"\s+")


def _norm(text: str) -> str:
    return _SPACE.sub(" ", text).strip().casefold()


def _number_forms(value: float | int) -> list[str]:
    forms = {repr(value), str(value)}
    if isinstance(value, float) and value.is_integer():
        forms.add(str(int(value)))
    return sorted(forms)


def _leaves(value: Any) -> list[Any]:
    if isinstance(value, list):
        return [leaf for item in value for leaf in _leaves(item)]
    if isinstance(value, dict):
        return [leaf for item in value.values() for leaf in _leaves(item)]
    return [value]


class ValuesInQuery(Stage):
    """Every string and number argument of the answer appears in the query."""

    name = "values_in_query"
    timeout = 5.0

    class Config(StageConfig):
        ignore_parameters: list[str] = Field(
            default_factory=list, description="Parameters never checked (e.g. units, language)."
        )
        check_numbers: bool = Field(True, description="Also require numbers to appear in the query.")
        min_length: int = Field(2, ge=1, description="Strings shorter than this are not checked.")
        check_enums: bool = Field(
            False,
            description="Also check parameters with an enum: their values are "
            'choices a query implies ("largest first" -> "desc").',
        )

    config: Config

    def check(self, record: Record) -> Verdict:
        query = _norm(record.query)
        tools = {t.get("name"): t for t in record.tools}
        for call in record.calls:
            properties = (tools.get(call.name, {}).get("parameters") or {}).get("properties") or {}
            for parameter, value in call.arguments.items():
                if parameter in self.config.ignore_parameters:
                    continue
                if not self.config.check_enums and "enum" in (properties.get(parameter) or {}):
                    continue
                for leaf in _leaves(value):
                    if isinstance(leaf, bool) or leaf is None:
                        continue
                    if isinstance(leaf, str):
                        if len(leaf.strip()) < self.config.min_length or _norm(leaf) in query:
                            continue
                    elif isinstance(leaf, (int, float)):
                        if not self.config.check_numbers or any(f in query for f in _number_forms(leaf)):
                            continue
                    return Verdict.discard(
                        "value_not_in_query", f"{call.name}({parameter}={leaf!r}): the query never states this value"
                    )
        return Verdict.passed()


@hookimpl
def register_stages(register):
    register(ValuesInQuery)
