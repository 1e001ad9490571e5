"""Stage specs: one TOML file per built-in stage (description, judge prompt, protocol, on_fail)."""

from __future__ import annotations

import string
import tomllib
from functools import lru_cache
from importlib import resources
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from funreason_refine.errors import ConfigError

PLACEHOLDERS = frozenset({"query", "tools", "answer", "cot"})
OnFail = Literal["discard", "regenerate", "hard_pool"]


def check_template(template: str) -> None:
    """Raise ValueError if the template uses a placeholder other than {query} {tools} {answer} {cot}."""
    try:
        fields = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
    except ValueError as exc:
        raise ValueError(f"malformed template ({exc}); write literal braces as {{{{ and }}}}") from None
    unknown = sorted(f for f in fields if f not in PLACEHOLDERS)
    if unknown:
        raise ValueError(
            f"unknown placeholder(s) {', '.join('{' + f + '}' for f in unknown)}; "
            f"use {{query}}, {{tools}}, {{answer}}, {{cot}} (write literal braces as {{{{ }}}})"
        )


class StageSpec(BaseModel):
    """A stage spec file. The judge uses ``prompt`` and ``protocol``; the engine ``on_fail``."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="Stage name, as used in [[stages]] name.")
    description: str = Field(description="One line: what the stage checks.")
    on_fail: OnFail = Field("discard", description="Default policy when the stage fails a record.")
    max_attempts: int = Field(3, ge=1, le=10, description="Regeneration attempts before a discard.")
    protocol: Literal["judge", "judge_newfc"] = Field(
        "judge", description="judge: <judge>True|False</judge> and <reason>; judge_newfc adds <NewFC>."
    )
    prompt: str = Field(description="Judge prompt template with {query} {tools} {answer} {cot}.")

    @field_validator("prompt")
    @classmethod
    def _template(cls, value: str) -> str:
        check_template(value)
        return value


@lru_cache(maxsize=1)
def builtin_specs() -> tuple[StageSpec, ...]:
    """The shipped specs, in file-name order (which is the paper's stage order)."""
    folder = resources.files("funreason_refine.stage_specs")
    specs = []
    problems = []
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".toml"):
            continue
        try:
            specs.append(StageSpec.model_validate(tomllib.loads(entry.read_text("utf-8"))))
        except (tomllib.TOMLDecodeError, ValidationError) as exc:
            problems.append(f"stage spec {entry.name}: {exc}")
    if problems:
        raise ConfigError(problems)
    return tuple(specs)


def spec_for(name: str) -> StageSpec | None:
    return next((s for s in builtin_specs() if s.name == name), None)
