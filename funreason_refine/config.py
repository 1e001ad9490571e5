"""Pipeline files (TOML): parsed into pydantic models, every problem reported at once.

Relative paths in a pipeline file are relative to the file's own folder, so a pipeline runs
the same from any working directory.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from funreason_refine.errors import ConfigError, PluginError
from funreason_refine.judge.runner import StageJudge
from funreason_refine.judge.settings import GenerateSettings, JudgeSettings, ModelSettings, SourceSettings, Vote
from funreason_refine.plugin_manager import StageEntry, stage_registry
from funreason_refine.readers import DEFAULT_MAX_RECORD_BYTES, FORMATS
from funreason_refine.specs import OnFail, StageSpec, builtin_specs, check_template
from funreason_refine.stages.base import Stage, spec_stage


class InputConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: Path = Field(description="Input file: JSON array, JSONL or Parquet.")
    format: Literal[FORMATS] | None = Field(
        None, description="xlam or bfcl; detected from the first record when omitted."
    )  # type: ignore[valid-type]
    answers: Path | None = Field(
        None, description="BFCL ground truth; default possible_answer/<file name> beside path."
    )
    max_record_bytes: int = Field(DEFAULT_MAX_RECORD_BYTES, ge=1024, description="Larger records are quarantined.")


class OutputConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dir: Path = Field(description="The run folder.")


class StageEntryConfig(BaseModel):
    """One ``[[stages]]`` table; keys other than these go to the stage's own Config."""

    model_config = ConfigDict(extra="allow")

    name: str = Field(description="A registered stage name (see `refine stages`).")
    on_fail: OnFail | None = Field(None, description="discard or regenerate; default from the stage spec.")
    max_attempts: int | None = Field(None, ge=1, le=10, description="Regenerations before a discard.")
    timeout: float | None = Field(None, gt=0, description="Seconds one check may take; default from the stage.")
    judge: bool | dict[str, Any] | None = Field(
        None, description="false: no judge for this stage; a table: keys overriding [judge] for this stage."
    )
    judges: list[dict[str, Any]] | None = Field(None, description="An ensemble: tables overriding [judge].")
    vote: Vote = Field("unanimous", description="How an ensemble decides: unanimous or majority.")
    prompt: str | None = Field(None, description="Judge prompt template overriding the stage spec's.")
    prompt_file: Path | None = Field(None, description="A file holding the judge prompt template.")
    spec: dict[str, Any] | None = Field(None, description="An inline stage spec: a judge-only stage with no code.")


class PipelineFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    input: InputConfig
    output: OutputConfig
    judge: JudgeSettings | None = Field(None, description="The default judge of every stage with a prompt.")
    generate: GenerateSettings | None = Field(None, description="Writes CoTs for records without one.")
    max_cost: float | None = Field(None, gt=0, description="USD; the run stops cleanly, resumable, when reached.")
    source: SourceSettings | None = Field(None, description="Self-refinement: the model that samples candidates.")
    stage_specs_dir: Path | None = Field(
        None, description="A folder of stage spec TOML files (judge-only stages, or new prompts for code stages)."
    )
    stages: list[StageEntryConfig] = Field(default_factory=list, description="Ordered; default: all built-in stages.")


@dataclass
class ConfiguredStage:
    """A stage ready to run: the instance plus the engine's policy for it."""

    name: str
    stage: Stage
    plugin: str
    on_fail: str
    max_attempts: int
    timeout: float | None = None


@dataclass
class Judging:
    """Everything LLM-related of a pipeline; absent when it runs on rules alone."""

    defaults: JudgeSettings | None
    stages: dict[str, StageJudge]
    generator: GenerateSettings | None
    max_cost: float | None

    @property
    def max_concurrency(self) -> int:
        return self.defaults.max_concurrency if self.defaults else 16

    @property
    def protocol_retries(self) -> int:
        return self.defaults.protocol_retries if self.defaults else 2


@dataclass
class Pipeline:
    path: Path
    input: InputConfig
    output_dir: Path
    stages: list[ConfiguredStage]
    config_hash: str
    judging: Judging | None = None
    config: dict[str, Any] | None = None  # what the hash covers, kept for saying what changed
    source: SourceSettings | None = None


def _loc(file: Path, loc: tuple[Any, ...], data: dict[str, Any]) -> str:
    if len(loc) >= 2 and loc[0] == "stages" and isinstance(loc[1], int):
        entry = data.get("stages", [])[loc[1]] if isinstance(data.get("stages"), list) else {}
        name = entry.get("name") if isinstance(entry, dict) else None
        rest = ".".join(str(p) for p in loc[2:])
        label = f"[[stages]] #{loc[1] + 1}" + (f" (name = {name!r})" if name else "")
        return f"{file}: {label}" + (f" key {rest!r}" if rest else "")
    section = f"[{loc[0]}]" if loc else ""
    rest = ".".join(str(p) for p in loc[1:])
    return f"{file}: {section}" + (f" key {rest!r}" if rest else "")


def _fix(err: dict[str, Any]) -> str:
    kind = err["type"]
    if kind == "missing":
        return "add this key"
    if kind == "extra_forbidden":
        return "remove it or check its spelling"
    return f"got {err.get('input')!r}"


def _pydantic_problems(file: Path, exc: ValidationError, data: dict[str, Any]) -> list[str]:
    return [f"{_loc(file, tuple(e['loc']), data)}: {e['msg']} ({_fix(e)})" for e in exc.errors()]


def _resolve(base: Path, path: Path) -> Path:
    return path if path.is_absolute() else (base / path)


def _entries(parsed: PipelineFile) -> list[StageEntryConfig]:
    """The [[stages]] tables; without any, the built-in stages in spec order."""
    return parsed.stages or [StageEntryConfig(name=s.name) for s in builtin_specs()]


def _pipeline_specs(file: Path, parsed: PipelineFile, problems: list[str]) -> dict[str, StageSpec]:
    """Stage specs as this pipeline sees them: built-in, overlaid by stage_specs_dir, by inline specs."""
    specs = {s.name: s for s in builtin_specs()}
    if parsed.stage_specs_dir is not None:
        folder = _resolve(file.parent, parsed.stage_specs_dir)
        if not folder.is_dir():
            problems.append(f"{file}: key 'stage_specs_dir': folder {folder} not found")
        else:
            for spec_file in sorted(folder.glob("*.toml")):
                try:
                    spec = StageSpec.model_validate(tomllib.loads(spec_file.read_text("utf-8")))
                except tomllib.TOMLDecodeError as exc:
                    problems.append(f"{spec_file}: not valid TOML: {exc}")
                    continue
                except ValidationError as exc:
                    problems.extend(
                        f"{spec_file}: key {'.'.join(map(str, e['loc']))!r}: {e['msg']} ({_fix(e)})"
                        for e in exc.errors()
                    )
                    continue
                specs[spec.name] = spec
    for number, entry in enumerate(parsed.stages, 1):
        if entry.spec is None:
            continue
        try:
            specs[entry.name] = StageSpec.model_validate({"name": entry.name, **entry.spec})
        except ValidationError as exc:
            problems.extend(
                f"{file}: [[stages]] #{number} (name = {entry.name!r}) key "
                f"'spec.{'.'.join(map(str, e['loc']))}': {e['msg']} ({_fix(e)})"
                for e in exc.errors()
            )
    return specs


def _build_stages(
    file: Path, parsed: PipelineFile, registry: dict[str, StageEntry], problems: list[str], specs: dict[str, StageSpec]
) -> list[ConfiguredStage]:
    stages: list[ConfiguredStage] = []
    seen: set[str] = set()
    for number, entry in enumerate(_entries(parsed), 1):
        where = f"{file}: [[stages]] #{number} (name = {entry.name!r})"
        if entry.name in seen:
            problems.append(f"{where}: stage listed twice; each stage may appear once")
            continue
        seen.add(entry.name)
        found = registry.get(entry.name)
        if found is None and entry.name in specs:
            if parsed.judge is None and not entry.judge and not entry.judges:
                problems.append(
                    f"{where}: a judge-only stage (a spec, no code) needs a judge: add a [judge] table "
                    "or run with --judge-model"
                )
                continue
            found = StageEntry(
                name=entry.name, cls=spec_stage(entry.name, specs[entry.name].description), plugin="spec"
            )
        if found is None:
            close = difflib.get_close_matches(entry.name, list(registry), n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            problems.append(
                f"{where}: no such stage; {hint}registered stages: {', '.join(registry)} (see `refine stages`)"
            )
            continue
        options = dict(entry.model_extra or {})
        try:
            config = found.cls.Config.model_validate(options)
        except ValidationError as exc:
            allowed = ", ".join(found.cls.Config.model_fields) or "none"
            for e in exc.errors():
                key = ".".join(str(p) for p in e["loc"])
                problems.append(f"{where} key {key!r}: {e['msg']} ({_fix(e)}; this stage's own keys: {allowed})")
            continue
        spec = specs.get(entry.name)
        on_fail = entry.on_fail or (spec.on_fail if spec else "discard")
        max_attempts = entry.max_attempts or (spec.max_attempts if spec else 3)
        stages.append(
            ConfiguredStage(
                name=entry.name,
                stage=found.cls(config),
                plugin=found.plugin,
                on_fail=on_fail,
                max_attempts=max_attempts,
                timeout=entry.timeout or found.cls.timeout,
            )
        )
    return stages


def _template(
    file: Path, base: Path, number: int, entry: StageEntryConfig, problems: list[str], specs: dict[str, StageSpec]
) -> str | None:
    where = f"{file}: [[stages]] #{number} (name = {entry.name!r})"
    if entry.prompt is not None and entry.prompt_file is not None:
        problems.append(f"{where}: give prompt or prompt_file, not both")
        return None
    text = entry.prompt
    key = "prompt"
    if entry.prompt_file is not None:
        key = "prompt_file"
        prompt_path = _resolve(base, entry.prompt_file)
        try:
            text = prompt_path.read_text("utf-8")
        except OSError as exc:
            problems.append(f"{where} key 'prompt_file': cannot read {prompt_path} ({exc.strerror or exc})")
            return None
    if text is None:
        spec = specs.get(entry.name)
        return spec.prompt if spec else None
    try:
        check_template(text)
    except ValueError as exc:
        problems.append(f"{where} key {key!r}: {exc}")
        return None
    return text


def _stage_judges(
    file: Path, parsed: PipelineFile, problems: list[str], specs: dict[str, StageSpec]
) -> dict[str, StageJudge]:
    """Which stages ask a judge, with which prompt and models."""
    base = file.parent
    judged: dict[str, StageJudge] = {}
    defaults = (
        parsed.judge.model_dump(exclude_unset=True, exclude={"max_concurrency", "protocol_retries"})
        if parsed.judge
        else {}
    )
    for number, entry in enumerate(_entries(parsed), 1):
        where = f"{file}: [[stages]] #{number} (name = {entry.name!r})"
        template = _template(file, base, number, entry, problems, specs)
        if entry.judge is False or template is None:
            continue
        tables = (
            entry.judges
            if entry.judges is not None
            else ([entry.judge] if isinstance(entry.judge, dict) else ([{}] if parsed.judge else []))
        )
        if not tables:
            continue
        settings = []
        for i, table in enumerate(tables):
            try:
                settings.append(ModelSettings.over(defaults, table))
            except ValidationError as exc:
                key = "judges" if entry.judges is not None else "judge"
                for e in exc.errors():
                    loc = ".".join(str(p) for p in e["loc"])
                    hint = " (set [judge] model or give model in this table)" if e["type"] == "missing" else ""
                    problems.append(
                        f"{where} key '{key}'{f'[{i}]' if entry.judges is not None else ''}.{loc}: {e['msg']}{hint}"
                    )
        spec = specs.get(entry.name)
        judged[entry.name] = StageJudge(
            stage=entry.name,
            template=template,
            allow_newfc=bool(spec and spec.protocol == "judge_newfc"),
            judges=settings,
            vote=entry.vote,
        )
    return judged


def load_pipeline(path: Path, out_dir: Path | None = None, judge_model: str | None = None) -> Pipeline:
    """Read and check a pipeline file; raise ConfigError listing every problem found."""
    path = Path(path)
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        raise ConfigError([f"{path}: pipeline file not found"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{path}: cannot read the pipeline file ({exc})"]) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path}: not valid TOML: {exc}"]) from None
    problems: list[str] = []
    if judge_model:
        # --judge-model swaps the model of [judge] for this run, or adds a [judge] with it.
        table = data.get("judge") if isinstance(data.get("judge"), dict) else {}
        data = {**data, "judge": {**table, "model": judge_model}}
    try:
        parsed = PipelineFile.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_pydantic_problems(path, exc, data)) from None
    base = path.parent
    parsed.input.path = _resolve(base, parsed.input.path)
    if parsed.input.answers is not None:
        parsed.input.answers = _resolve(base, parsed.input.answers)
    if not parsed.input.path.is_file():
        problems.append(
            f"{path}: [input] key 'path': file {parsed.input.path} not found "
            "(relative paths start at the pipeline file's folder)"
        )
    try:
        registry = stage_registry()
    except PluginError as exc:
        raise ConfigError([str(exc)]) from None
    specs = _pipeline_specs(path, parsed, problems)
    stages = _build_stages(path, parsed, registry, problems, specs)
    stage_judges = _stage_judges(path, parsed, problems, specs)
    if problems:
        raise ConfigError(problems)
    output_dir = out_dir if out_dir is not None else _resolve(base, parsed.output.dir)
    judging = None
    if stage_judges or parsed.generate is not None:
        judging = Judging(
            defaults=parsed.judge, stages=stage_judges, generator=parsed.generate, max_cost=parsed.max_cost
        )
    config = _config(parsed, stages, judging)
    config_hash = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()
    return Pipeline(
        path=path,
        input=parsed.input,
        output_dir=output_dir,
        stages=stages,
        config_hash=config_hash,
        judging=judging,
        config=config,
        source=parsed.source,
    )


def _config(parsed: PipelineFile, stages: list[ConfiguredStage], judging: Judging | None) -> dict[str, Any]:
    """What decides the results: input, stages, policies, configs, judges and prompts (not the output dir)."""
    payload: dict[str, Any] = {
        "input": parsed.input.model_dump(mode="json"),
        "stages": [
            {
                "name": s.name,
                "on_fail": s.on_fail,
                "max_attempts": s.max_attempts,
                "config": s.stage.config.model_dump(mode="json"),
            }
            for s in stages
        ],
    }
    if judging is not None:
        payload["judges"] = {
            name: {"template": sj.template, "vote": sj.vote, "judges": [j.sampling() for j in sj.judges]}
            for name, sj in judging.stages.items()
        }
        payload["generate"] = judging.generator.model_dump(mode="json") if judging.generator else None
    return json.loads(json.dumps(payload, default=str))
