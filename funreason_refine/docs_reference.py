"""The reference pages generated from the code: docs/configuration.md from the settings models and
docs/cli.md from ``refine --help``.

Each page is hand-written down to a marker line and generated below it. Rewrite both with
``python -m funreason_refine.docs_reference``; ``--check`` only says what is out of date (exit 1).
tests/test_docs_reference.py runs the check, so a key or an option cannot be added undocumented.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import types
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from funreason_refine.hub.paths import HubPath

MARKER = "<!-- Generated below by `python -m funreason_refine.docs_reference`: edit the code, not this. -->"
COMMAND = "python -m funreason_refine.docs_reference"
HELP_WIDTH = 100  # help text is wrapped at a fixed width, so that the page does not depend on the terminal

_SIMPLE = {str: "string", int: "integer", float: "number", bool: "boolean", Path: "path", Any: "any"}
_SIMPLE[HubPath] = "hf:// path"
# pydantic keeps ge=, gt=, le=, lt= as annotated_types' Ge, Gt, Le, Lt, each with its bound under that name
_BOUNDS = (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<"))


# --- the configuration reference -----------------------------------------------------------------


def type_name(annotation: Any) -> str:
    """A field's type as a pipeline file's author reads it: TOML's words, not Python's."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin in (Union, types.UnionType):
        return " or ".join(type_name(a) for a in args if a is not type(None))
    if origin is Literal:
        return " or ".join(json.dumps(a) for a in args)
    if origin is list:
        return f"list of {_plural(type_name(args[0]))}"
    if origin is dict or (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
        return "table"
    return _SIMPLE.get(annotation, getattr(annotation, "__name__", str(annotation)))


def _plural(name: str) -> str:
    return name if " or " in name else name + "s"


def _bounds(field: FieldInfo) -> str:
    found = [f"{sign} {getattr(m, attr)}" for m in field.metadata for attr, sign in _BOUNDS if hasattr(m, attr)]
    return f" ({', '.join(found)})" if found else ""


def default_text(field: FieldInfo) -> str:
    if field.is_required():
        return "required"
    value = field.get_default(call_default_factory=True)
    if value is None:
        return "not set"
    if isinstance(value, BaseModel):
        return "see below"
    return f"`{json.dumps(value, default=str)}`"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def key_table(model: type[BaseModel], skip: Iterable[str] = ()) -> list[str]:
    """One row per key of ``model``: name, type, default, description. A key without a description
    is an error: the reference is what users read."""
    rows = ["| key | type | default | description |", "|---|---|---|---|"]
    for name, field in model.model_fields.items():
        if name in skip:
            continue
        if not field.description:
            raise ValueError(f"{model.__name__}.{name} has no description: give it Field(description=...)")
        key = field.alias or name
        kind = type_name(field.annotation) + _bounds(field)
        rows.append(f"| `{key}` | {_cell(kind)} | {default_text(field)} | {_cell(field.description)} |")
    return rows


def _section(heading: str, intro: str, model: type[BaseModel], skip: Iterable[str] = ()) -> list[str]:
    return [f"## {heading}", "", intro, "", *key_table(model, skip), ""]


def _stage_sections() -> list[str]:
    """Each built-in stage's own keys, in the default pipeline's order."""
    from funreason_refine.plugin_manager import DEFAULT_PLUGINS, stage_registry

    registry = stage_registry()
    builtin = [registry[n] for n in registry.default_pipeline() if registry[n].plugin in DEFAULT_PLUGINS]
    lines = [
        "## Each built-in stage's own keys",
        "",
        "A stage's own keys sit in its `[[stages]]` table beside the keys above (`refine stages` lists "
        "them for every registered stage, plugins' included).",
        "",
    ]
    for entry in builtin:
        cls = entry.cls
        lines += [f"### `{cls.name}`", "", f"{cls.summary()} Default `on_fail`: `{cls.on_fail}`.", ""]
        lines += [*key_table(cls.Config), ""] if cls.Config.model_fields else ["No keys of its own.", ""]
    return lines


def configuration_reference() -> str:
    """Every key a pipeline file takes, from the models that check it."""
    from funreason_refine.audit.settings import AuditSettings
    from funreason_refine.config import OutputConfig, PipelineFile, StageTable
    from funreason_refine.judge import settings as judge
    from funreason_refine.judge.scorer_settings import RelativeCut, ScorerSettings
    from funreason_refine.readers import InputConfig
    from funreason_refine.specs import StageSpec

    shared = judge.JudgeModel.model_fields
    run_wide = " and ".join(f"`{k}`" for k in judge.JudgeSettings.model_fields if k not in shared)
    lines = [
        *_section("Top level", "Keys before the first `[table]`, and the tables.", PipelineFile),
        "`[[stages]]`: the ordered stages (below); without any, the built-in stages run in the paper's order "
        "(`conversation` first, for conversations). Whatever the stages, a record whose answer could not be read "
        "is never kept: without `classification`, which discards it, it is discarded as stage `input`, reason "
        "`malformed_answer`.",
        "",
        *_section("`[input]`", "The records to refine.", InputConfig),
        *_section("`[output]`", "Where the run folder goes (`--out` overrides it).", OutputConfig),
        *_section(
            "`[judge]`",
            "The default judge of every stage with a prompt. A stage's `judge = {...}`, and each table of its "
            f"`judges = [...]`, take the same keys but {run_wide}, which hold for the whole run.",
            judge.JudgeSettings,
        ),
        *_section(
            "`[[judge.endpoints]]`",
            "One server of a model, in any model table (`[judge]`, `[generate]`, `[source]`, a stage's `judge`).",
            judge.Endpoint,
        ),
        *_section("`prices`", "In any model table: `prices = {input_per_million = ..., ...}`.", judge.Prices),
        *_section(
            "`[generate]`",
            "The model that rewrites a field a stage names (the `cot` stage's CoTs); a stage's "
            "`generate = {...}` takes the same keys.",
            judge.GenerateSettings,
        ),
        *_section("`[source]`", "`refine selfrefine`: the model that samples candidate answers.", judge.SourceSettings),
        *_section("`[audit]`", "The dataset audits of the kept set.", AuditSettings),
        *_section("`[[stages]]`", "One table per stage, in order; the keys every stage takes.", StageTable),
        *_section(
            "`scorer`",
            "A stage's `scorer = {...}` ([scorers.md](scorers.md)): a model that returns a number, and the cut. "
            "It takes the keys of any model table (servers, rate limits, retries, `prices`) and these.",
            ScorerSettings,
            skip=[k for k in shared if k not in ("model",)],
        ),
        *_section("`relative`", "In a scorer table: `relative = {by = ..., margin = ...}`.", RelativeCut),
        *_section(
            "Stage specs",
            "A file in `stage_specs_dir`, or a stage's inline `spec = {...}` (without `name`, which the table gives).",
            StageSpec,
        ),
        *_stage_sections(),
    ]
    return "\n".join(lines).rstrip() + "\n"


# --- the command-line reference ------------------------------------------------------------------


def cli_reference() -> str:
    """``--help`` of ``refine`` and of every command it has without installed plugins (a group's
    commands after it)."""
    from funreason_refine.cli import main

    return "\n".join(_help(main, "refine", None)).rstrip() + "\n"


def _help(command: Any, name: str, parent: Any) -> list[str]:
    import click

    ctx = click.Context(command, info_name=name, parent=parent, terminal_width=HELP_WIDTH, max_content_width=HELP_WIDTH)
    path = ctx.command_path
    lines = [f"## `{path}`", "", "```text", command.get_help(ctx), "```", ""]
    if isinstance(command, click.Group):
        for sub in command.list_commands(ctx):  # loads each command (refine's are loaded when asked for)
            lines += _help(command.get_command(ctx, sub), sub, ctx)
    return lines


# --- pages: hand-written head, generated tail ----------------------------------------------------


def pages() -> dict[str, str]:
    """The generated part of each page, by file name under docs/."""
    return {"configuration.md": configuration_reference(), "cli.md": cli_reference()}


def rewrite(text: str, generated: str) -> str:
    """The page with everything after its marker line replaced."""
    head, found, _ = text.partition(MARKER)
    if not found:
        raise ValueError(f"the page has no marker line; add this line where the generated part starts:\n{MARKER}")
    return f"{head}{MARKER}\n\n{generated}"


def documented_names(text: str) -> set[str]:
    """What a page documents: `## heading: key` for each table row, `## heading: --option` for each option."""
    names: set[str] = set()
    heading = ""
    for line in text.partition(MARKER)[2].splitlines():
        if line.startswith("#"):
            heading = line.lstrip("# ").replace("`", "")
        elif row := re.match(r"\| `([^`]+)` \|", line):
            names.add(f"{heading}: {row.group(1)}")
        elif line.startswith("  -"):  # an option of click's help: "  -o, --output FILE  What it is."
            names.update(f"{heading}: {option}" for option in re.findall(r"--?\w[\w-]*", line.split("  ")[1]))
    return names


def stale(docs: Path) -> list[str]:
    """One line per page that differs from what the code generates, naming what it lacks or has extra."""
    problems = []
    for name, generated in pages().items():
        path = docs / name
        text = path.read_text("utf-8") if path.is_file() else ""
        if rewrite(text or MARKER, generated) == text:
            continue
        want, have = documented_names(MARKER + generated), documented_names(text)
        missing = ", ".join(sorted(want - have)) or "-"
        extra = ", ".join(sorted(have - want)) or "-"
        problems.append(
            f"{path} is out of date (not documented: {missing}; documented but gone: {extra}); "
            f"run `{COMMAND}` to regenerate it"
        )
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=COMMAND, description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--docs", type=Path, default=Path("docs"), help="the docs folder (default: docs)")
    parser.add_argument("--check", action="store_true", help="say which pages are out of date; write nothing")
    args = parser.parse_args(argv)
    if args.check:
        problems = stale(args.docs)
        print("\n".join(problems) or "the reference pages are up to date")
        return 1 if problems else 0
    for name, generated in pages().items():
        path = args.docs / name
        text = path.read_text("utf-8") if path.is_file() else MARKER
        path.write_text(rewrite(text, generated), "utf-8")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    # The reference documents refine as installed, without the plugins installed beside it.
    os.environ["FUNREASON_REFINE_NO_PLUGINS"] = "1"
    sys.exit(main())
