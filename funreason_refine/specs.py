"""Stage specs: the judge's side of a stage as data (prompt, protocol), and overrides of its defaults."""

from __future__ import annotations

import string
import tomllib
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from funreason_refine.stages.base import OnFail

PLACEHOLDERS = frozenset({"query", "tools", "answer", "cot", "conversation"})


def check_template(template: str) -> None:
    """Raise ValueError if the template uses a placeholder other than {query} {tools} {answer} {cot}
    {conversation}."""
    try:
        fields = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
    except ValueError as exc:
        raise ValueError(f"malformed template ({exc}); write literal braces as {{{{ and }}}}") from None
    unknown = sorted(f for f in fields if f not in PLACEHOLDERS)
    if unknown:
        raise ValueError(
            f"unknown placeholder(s) {', '.join('{' + f + '}' for f in unknown)}; "
            f"use {{query}}, {{tools}}, {{answer}}, {{cot}}, {{conversation}} (write literal braces as {{{{ }}}})"
        )


class StageSpec(BaseModel):
    """A stage spec file: the judge's prompt and protocol; optional overrides of the stage's defaults.

    A spec named like a registered stage gives it a judge (and may override its description,
    on_fail and max_attempts); a spec with a new name is a judge-only stage.
    """

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="Stage name, as used in [[stages]] name.")
    description: str | None = Field(None, description="One line: what the stage checks.")
    on_fail: OnFail | None = Field(None, description="What a failing record leads to.")
    max_attempts: int | None = Field(None, ge=1, le=10, description="Regeneration attempts before a discard.")
    protocol: Literal["judge", "judge_newfc"] = Field(
        "judge", description="judge: <judge>True|False</judge> and <reason>; judge_newfc adds <NewFC>."
    )
    system: str | None = Field(
        None,
        description="System message sent as it is before every prompt of the stage (no placeholders): what is "
        "the same for every record and stage, so that a server's prefix cache computes it once.",
    )
    prompt: str = Field(description="Judge prompt template with {query} {tools} {answer} {cot} {conversation}.")
    rewrite_prompt: str | None = Field(
        None, description="Generator prompt that rewrites the field the stage names (its `regenerates`)."
    )

    @field_validator("prompt", "rewrite_prompt")
    @classmethod
    def _template(cls, value: str | None) -> str | None:
        if value is not None:
            check_template(value)
        return value


def read_spec(text: str, where: str, problems: list[str]) -> StageSpec | None:
    """Parse one spec file's text; a problem (naming ``where`` and the key) is added to ``problems``."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        problems.append(f"{where}: not valid TOML: {exc}")
        return None
    return spec_from(data, where, problems)


def spec_from(data: dict[str, object], where: str, problems: list[str]) -> StageSpec | None:
    """A spec from its parsed table (a file's, or an inline ``spec = {...}``)."""
    try:
        return StageSpec.model_validate(data)
    except ValidationError as exc:
        problems.extend(f"{where}: key {'.'.join(map(str, e['loc']))!r}: {e['msg']}" for e in exc.errors())
    return None


def not_utf8(path: object, exc: UnicodeDecodeError) -> str:
    """What to say of a file that is not UTF-8: where its first wrong byte is (from 0), and what to do."""
    return f"{path} is not UTF-8 (byte {exc.start}): save it as UTF-8"


def specs_in(folder: Traversable | Path, problems: list[str], where: str = "") -> dict[str, StageSpec]:
    """The specs of every ``*.toml`` file in ``folder``, by stage name; ``where`` starts a problem of a file that
    cannot be read (the pipeline file and its key)."""
    specs = {}
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".toml"):
            continue
        try:
            text = entry.read_text("utf-8")
        except UnicodeDecodeError as exc:
            problems.append(f"{where}{not_utf8(entry, exc)}")
            continue
        except OSError as exc:
            problems.append(f"{where}cannot read {entry} ({exc.strerror or exc})")
            continue
        spec = read_spec(text, str(entry), problems)
        if spec is not None:
            specs[spec.name] = spec
    return specs


def builtin_specs() -> dict[str, StageSpec]:
    """The specs shipped with the package (stage_specs/), by stage name."""
    problems: list[str] = []
    specs = specs_in(resources.files("funreason_refine.stage_specs"), problems)
    if problems:
        from funreason_refine.errors import ConfigError

        raise ConfigError(problems)
    return specs
