"""Pipeline files (TOML): parsed into pydantic models and checked whole, every problem reported at once.

Relative paths in a pipeline file are relative to the file's own folder, so a pipeline runs the
same from any working directory.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from funreason_refine.audit.settings import AuditSettings
from funreason_refine.errors import ConfigError, PluginError
from funreason_refine.hub.paths import HubPath, is_hub_path
from funreason_refine.judge.scorer_settings import ScorerSettings
from funreason_refine.judge.settings import (
    GenerateSettings,
    JudgeModel,
    JudgePanel,
    JudgeSettings,
    ModelSettings,
    SourceSettings,
    Vote,
)
from funreason_refine.plugin_manager import StageRegistry, stage_registry
from funreason_refine.readers import DEFAULT_MAX_MESSAGES, InputConfig
from funreason_refine.specs import StageSpec, builtin_specs, check_template, spec_from, specs_in
from funreason_refine.stages.base import JudgeOnlyStage, OnFail, PipelineStage


class OutputConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dir: Path | None = Field(None, description="The run folder; default runs/<pipeline file name> beside the file.")


class StageTable(BaseModel):
    """One ``[[stages]]`` table; keys other than these go to the stage's own Config."""

    model_config = ConfigDict(extra="allow")

    name: str = Field(description="A registered stage name (see `refine stages`).")
    on_fail: OnFail | None = Field(
        None, description="discard, regenerate, hard_pool or truncate; default: the stage's."
    )
    max_attempts: int | None = Field(None, ge=1, le=10, description="Regenerations before a discard.")
    timeout: float | None = Field(None, gt=0, description="Seconds one check may take; default from the stage.")
    judge: bool | dict[str, Any] | None = Field(
        None, description="false: no judge for this stage; a table: keys overriding [judge] for this stage."
    )
    judges: list[dict[str, Any]] | None = Field(None, description="An ensemble: tables overriding [judge].")
    vote: Vote = Field("unanimous", description="How an ensemble decides: unanimous or majority.")
    prompt: str | None = Field(None, description="Judge prompt template overriding the stage spec's.")
    prompt_file: Path | None = Field(None, description="A file holding the judge prompt template.")
    generate: bool | dict[str, Any] | None = Field(
        None, description="false: no generator here; a table: keys overriding [generate] for this stage."
    )
    spec: dict[str, Any] | None = Field(None, description="An inline stage spec: a judge-only stage with no code.")
    scorer: dict[str, Any] | None = Field(
        None,
        description="A model that scores the records the stage's rules pass, and the cut (docs/scorers.md): "
        "{kind, model, api_base, threshold, ...}. A name no stage has makes a scorer-only stage.",
    )


class PipelineFile(BaseModel):
    """The pipeline file but its ``[[stages]]``, which are checked one table at a time."""

    model_config = ConfigDict(extra="forbid")

    input: InputConfig = Field(description="The input file and how to read it.")
    output: OutputConfig = Field(default_factory=OutputConfig, description="Where the run folder goes.")
    judge: JudgeSettings | None = Field(None, description="The default judge of every stage with a prompt.")
    generate: GenerateSettings | None = Field(
        None, description="The default generator of stages that rewrite a field (the CoT stage's CoTs)."
    )
    max_cost: float | None = Field(
        None,
        gt=0,
        description="USD; the run stops cleanly, resumable, when reached (`refine selfrefine`: over all its rounds, "
        "samples and judges together).",
    )
    source: SourceSettings | None = Field(None, description="Self-refinement: the model that samples candidates.")
    stage_specs_dir: Path | None = Field(
        None, description="A folder of stage spec TOML files (judge-only stages, or new prompts for code stages)."
    )
    audit: AuditSettings = Field(
        default_factory=AuditSettings, description="Dataset audits: eval sets, and which findings drop a record."
    )


@dataclass
class Judging:
    """The run-wide judge settings: one client serves every stage's judges and generators."""

    defaults: JudgeSettings | None
    max_cost: float | None
    batch_records: int = 0  # with a model whose calls go as batch jobs: its batch_max_requests
    scorer_concurrency: int | None = None  # without [judge]: what the scorers' tables allow

    @property
    def max_concurrency(self) -> int:
        if self.defaults:
            return self.defaults.max_concurrency
        return self.scorer_concurrency or 16

    @property
    def protocol_retries(self) -> int:
        return self.defaults.protocol_retries if self.defaults else 2

    @property
    def window(self) -> int:
        """Records in flight at once: enough to keep every call slot busy, and with batch calls a batch's worth."""
        return max(64, 4 * self.max_concurrency, self.batch_records)


@dataclass
class Pipeline:
    path: Path
    input: InputConfig
    output_dir: Path
    stages: list[PipelineStage]
    config_hash: str
    judging: Judging | None = None  # None: no stage asks a model (the rules-only, offline case)
    config: dict[str, Any] | None = None  # what the hash covers, kept for saying what changed
    source: SourceSettings | None = None
    audit: AuditSettings = field(default_factory=AuditSettings)
    input_given: str | None = None  # `--input`: read in place of [input] path (absolute, or an hf:// path)
    max_cost: float | None = None  # the file's max_cost, also without a judge (self-refinement's samples cost too)


def config_hash(payload: dict[str, Any]) -> str:
    """The identity of a configuration: what decides a run's results."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def output_folder(path: Path, configured: Path | str | None) -> Path:
    """The run folder of the pipeline file ``path`` whose [output] dir is ``configured`` (relative to
    the file), runs/<file name> beside the file when it names none."""
    return path.parent / (configured if configured is not None else Path("runs") / path.stem)


def load_pipeline(
    path: Path, out_dir: Path | None = None, judge_model: str | None = None, input_path: str | None = None
) -> Pipeline:
    """Read and check a pipeline file; raise ConfigError listing every problem found.

    ``judge_model`` and ``input_path`` are the command line's --judge-model and --input: they replace the
    file's judges and its [input] path (a relative ``input_path`` starts at the current folder)."""
    path = Path(path)
    data = _read_toml(path)
    if judge_model:
        from funreason_refine.judge_swap import swap_judge

        data = swap_judge(data, judge_model)
    given = given_input(input_path)
    if given is not None:
        section = data.get("input")
        data = {**data, "input": {**(section if isinstance(section, dict) else {}), "path": given}}
    loaded = _Loader(path, data).load(out_dir)
    loaded.input_given = given
    return loaded


def given_input(input_path: str | Path | None) -> str | None:
    """A command-line input as the pipeline records it: an hf:// path as given, a file made absolute."""
    if input_path is None:
        return None
    text = str(input_path)
    return text if is_hub_path(text) else str(Path(text).resolve())


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        raise ConfigError([f"{path}: pipeline file not found"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{path}: cannot read the pipeline file ({exc})"]) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path}: not valid TOML: {exc}"]) from None


class _Loader:
    """One pipeline file checked whole: each part is checked even when another part is wrong."""

    def __init__(self, path: Path, data: dict[str, Any]):
        self.path = path
        self.base = path.parent
        self.data = data
        self.problems: list[str] = []
        self.parsed: PipelineFile | None = None
        self.tables: list[tuple[int, StageTable]] = []
        self.broken: set[str] = set()  # stages whose inline spec is wrong

    def load(self, out_dir: Path | None) -> Pipeline:
        self.parsed = self._parse_file()
        self.tables = self._parse_tables()
        try:
            registry = stage_registry().copy()
        except PluginError as exc:
            raise ConfigError([str(exc)]) from None
        specs = self._specs()
        self._register_judge_only(registry, specs)
        self._register_scorer_only(registry, specs)
        stages = self._stages(registry, specs)
        if self.problems:
            raise ConfigError(self.problems)
        assert self.parsed is not None
        return self._pipeline(self.parsed, stages, out_dir)

    # --- the file and its tables ---------------------------------------------------------

    def _parse_file(self) -> PipelineFile | None:
        top = {key: value for key, value in self.data.items() if key != "stages"}
        try:
            parsed = PipelineFile.model_validate(top)
        except ValidationError as exc:
            self.problems += [f"{self._where(tuple(e['loc']))}: {e['msg']} ({_fix(e)})" for e in exc.errors()]
            return None
        if parsed.input.answers is not None:
            parsed.input.answers = self.base / parsed.input.answers
        if not isinstance(parsed.input.path, HubPath):  # an hf:// path is pinned with the output folder (_pipeline)
            parsed.input.path = self.base / parsed.input.path
            if not parsed.input.path.is_file():
                self.problems.append(
                    f"{self.path}: [input] key 'path': file {parsed.input.path} not found "
                    "(relative paths start at the pipeline file's folder)"
                )
        self._resolve_eval_sets(parsed.audit)
        return parsed

    def _resolve_eval_sets(self, audit: AuditSettings) -> None:
        audit.eval_sets = [self.base / p for p in audit.eval_sets]
        for i, eval_set in enumerate(audit.eval_sets):
            if not eval_set.is_file():
                self.problems.append(
                    f"{self.path}: [audit] key 'eval_sets[{i}]': file {eval_set} not found "
                    "(relative paths start at the pipeline file's folder)"
                )

    def _parse_tables(self) -> list[tuple[int, StageTable]]:
        raw = self.data.get("stages", [])
        if not isinstance(raw, list) or not all(isinstance(t, dict) for t in raw):
            self.problems.append(f"{self.path}: 'stages' must be [[stages]] tables, one per stage")
            return []
        tables = []
        for number, table in enumerate(raw, 1):
            try:
                tables.append((number, StageTable.model_validate(table)))
            except ValidationError as exc:
                where = self._entry(number, table.get("name"))
                self.problems += [f"{where} key {_key(e)!r}: {e['msg']} ({_fix(e)})" for e in exc.errors()]
        return tables

    # --- specs and judge-only stages -----------------------------------------------------

    def _specs(self) -> dict[str, StageSpec]:
        """Stage specs as this pipeline sees them: built-in, overlaid by stage_specs_dir, by inline specs."""
        specs = builtin_specs()
        if self.parsed is not None and self.parsed.stage_specs_dir is not None:
            folder = self.base / self.parsed.stage_specs_dir
            if folder.is_dir():
                specs.update(specs_in(folder, self.problems))
            else:
                self.problems.append(f"{self.path}: key 'stage_specs_dir': folder {folder} not found")
        for number, table in self.tables:
            if table.spec is not None:
                where = f"{self._entry(number, table.name)} key 'spec'"
                spec = spec_from({"name": table.name, **table.spec}, where, self.problems)
                if spec is not None:
                    specs[table.name] = spec
                else:
                    self.broken.add(table.name)
        return specs

    def _register_judge_only(self, registry: StageRegistry, specs: dict[str, StageSpec]) -> None:
        """A spec that names no registered stage is a judge-only stage, registered like any other."""
        for name, spec in specs.items():
            if registry.get(name) is not None:
                continue
            if spec.description is None:
                self.problems.append(
                    f"{self.path}: stage spec {name!r} key 'description': Field required (a judge-only stage "
                    "needs one line saying what it checks)"
                )
            registry.register(JudgeOnlyStage.named(name, spec.description or ""), plugin="stage spec")

    def _register_scorer_only(self, registry: StageRegistry, specs: dict[str, StageSpec]) -> None:
        """A [[stages]] table with a scorer that names no stage (nor spec) is a scorer-only stage."""
        for _, table in self.tables:
            if table.scorer is None or registry.get(table.name) is not None or table.name in specs:
                continue
            model = table.scorer.get("model", "its scorer")
            registry.register(JudgeOnlyStage.named(table.name, f"scored by {model}"), plugin="scorer")

    # --- the stages ----------------------------------------------------------------------

    def _stages(self, registry: StageRegistry, specs: dict[str, StageSpec]) -> list[PipelineStage]:
        tables = self.tables or [(n, StageTable(name=name)) for n, name in enumerate(registry.default_pipeline(), 1)]
        stages: list[PipelineStage] = []
        seen: set[str] = set()
        for number, table in tables:
            where = self._entry(number, table.name)
            if table.name in seen:
                self.problems.append(f"{where}: stage listed twice; each stage may appear once")
                continue
            seen.add(table.name)
            stage = self._stage(where, table, registry, specs.get(table.name))
            if stage is not None:
                stages.append(stage)
        self._check_generate_is_used(stages)
        self._check_relative_cuts(stages)
        return stages

    def _check_relative_cuts(self, stages: list[PipelineStage]) -> None:
        keys = sorted({s.scorer.relative.by for s in stages if s.scorer is not None and s.scorer.relative is not None})
        if len(keys) > 1:
            self.problems.append(
                f"{self.path}: the relative cuts of the scorers group records by different meta keys "
                f"({', '.join(keys)}); give every relative table the same `by`"
            )

    def _stage(
        self, where: str, table: StageTable, registry: StageRegistry, spec: StageSpec | None
    ) -> PipelineStage | None:
        found = registry.get(table.name)
        if found is None and table.name in self.broken:
            return None  # its inline spec is wrong, and said so
        if found is None:
            close = difflib.get_close_matches(table.name, registry.names(), n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            self.problems.append(
                f"{where}: no such stage; {hint}registered stages: {', '.join(registry.names())} (see `refine stages`)"
            )
            return None
        cls = found.cls
        try:
            config = cls.Config.model_validate(dict(table.model_extra or {}))
        except ValidationError as exc:
            allowed = ", ".join(cls.Config.model_fields) or "none"
            self.problems += [
                f"{where} key {_key(e)!r}: {e['msg']} ({_fix(e)}; this stage's own keys: {allowed})"
                for e in exc.errors()
            ]
            return None
        on_fail = table.on_fail or (spec.on_fail if spec and spec.on_fail else cls.on_fail)
        stage = PipelineStage(
            stage=cls(config),
            plugin=found.plugin,
            on_fail=on_fail,
            max_attempts=table.max_attempts or (spec.max_attempts if spec and spec.max_attempts else cls.max_attempts),
            timeout=table.timeout or cls.timeout,
        )
        stage.scorer = self._scorer(where, table)
        stage.judge = self._panel(where, table, spec)
        stage.generator = self._generator(where, table, spec, stage)
        if issubclass(cls, JudgeOnlyStage) and stage.judge is None and table.scorer is None:
            self.problems.append(
                f"{where}: a judge-only stage (a spec, no code) needs a judge: add a [judge] table or run with "
                "--judge-model"
            )
        return stage

    def _scorer(self, where: str, table: StageTable) -> ScorerSettings | None:
        """The stage's scorer, when its table has one."""
        if table.scorer is None:
            return None
        try:
            return ScorerSettings.model_validate(table.scorer)
        except ValidationError as exc:
            for e in exc.errors():
                key = ".".join(["scorer", *map(str, e["loc"])]) if e["loc"] else "scorer"
                self.problems.append(f"{where} key {key!r}: {e['msg'].removeprefix('Value error, ')} ({_fix(e)})")
            return None

    def _panel(self, where: str, table: StageTable, spec: StageSpec | None) -> JudgePanel | None:
        """How the stage asks its judges, or None when it asks none."""
        template = self._template(where, table, spec)
        default = self.parsed.judge if self.parsed is not None else None
        if table.judge is False or template is None:
            return None
        if table.judges is not None:
            tables, key = table.judges, "judges"
        elif isinstance(table.judge, dict):
            tables, key = [table.judge], "judge"
        else:
            tables, key = ([{}] if default is not None else []), "judge"
        if not tables:
            return None
        base = (
            default.model_dump(exclude_unset=True, exclude={"max_concurrency", "protocol_retries"}) if default else {}
        )
        judges = [
            self._model(JudgeModel, where, base, t, key, i if table.judges else None) for i, t in enumerate(tables)
        ]
        allow_newfc = bool(spec and spec.protocol == "judge_newfc")
        chosen = [j.asking(allow_newfc) for j in judges if j is not None]
        system = spec.system if spec else None  # a table's own prompt keeps the spec's system message
        return JudgePanel(template=template, allow_newfc=allow_newfc, judges=chosen, vote=table.vote, system=system)

    def _generator(
        self, where: str, table: StageTable, spec: StageSpec | None, stage: PipelineStage
    ) -> GenerateSettings | None:
        """The model that rewrites the field the stage names, when its records fail and on_fail is regenerate."""
        field = stage.stage.regenerates
        if isinstance(table.generate, dict) and field is None:
            self.problems.append(f"{where} key 'generate': stage {table.name} names no field a generator could write")
            return None
        default = self.parsed.generate if self.parsed is not None else None
        if field is None or stage.on_fail != "regenerate" or table.generate is False:
            return None
        if not isinstance(table.generate, dict) and default is None:
            return None
        base = default.model_dump(exclude_unset=True) if default else {}
        override = table.generate if isinstance(table.generate, dict) else {}
        settings = self._model(GenerateSettings, where, base, override, "generate", None)
        if settings is None:
            return None
        prompt = settings.prompt or (spec.rewrite_prompt if spec else None)
        if prompt is None:
            self.problems.append(
                f"{where}: stage {table.name} has no prompt to rewrite its {field} with: set prompt in [generate] "
                "or rewrite_prompt in its stage spec"
            )
            return None
        return settings.model_copy(update={"prompt": prompt})

    def _model(
        self, model: type[ModelSettings], where: str, base: dict[str, Any], table: Any, key: str, i: int | None
    ) -> Any:
        try:
            return model.over(base, table)  # a table that names its own servers replaces the default's
        except ValidationError as exc:
            label = f"{key}[{i}]" if i is not None else key
            for e in exc.errors():
                hint = f" (set [{key}] model or give model in this table)" if e["type"] == "missing" else ""
                self.problems.append(f"{where} key '{label}.{_key(e)}': {e['msg']}{hint}")
            return None

    def _template(self, where: str, table: StageTable, spec: StageSpec | None) -> str | None:
        if table.prompt is not None and table.prompt_file is not None:
            self.problems.append(f"{where}: give prompt or prompt_file, not both")
            return None
        text, key = table.prompt, "prompt"
        if table.prompt_file is not None:
            key = "prompt_file"
            prompt_path = self.base / table.prompt_file
            try:
                text = prompt_path.read_text("utf-8")
            except OSError as exc:
                self.problems.append(f"{where} key 'prompt_file': cannot read {prompt_path} ({exc.strerror or exc})")
                return None
        if text is None:
            return spec.prompt if spec else None
        try:
            check_template(text)
        except ValueError as exc:
            self.problems.append(f"{where} key {key!r}: {exc}")
            return None
        return text

    def _check_generate_is_used(self, stages: list[PipelineStage]) -> None:
        if self.parsed is None or self.parsed.generate is None or any(s.generator for s in stages):
            return
        self.problems.append(
            f"{self.path}: [generate]: no stage writes with it. To write CoTs for records without one and rewrite "
            'failing ones, set on_fail = "regenerate" and required = true in the [[stages]] table of cot'
        )

    # --- the result ----------------------------------------------------------------------

    def _pipeline(self, parsed: PipelineFile, stages: list[PipelineStage], out_dir: Path | None) -> Pipeline:
        output_dir = out_dir if out_dir is not None else output_folder(self.path, parsed.output.dir)
        if isinstance(parsed.input.path, HubPath):  # at the commit the run folder read, or its revision's now
            from funreason_refine.hub.pin import pin

            parsed.input.path = pin(parsed.input.path, output_dir)
        judged = any(s.judge is not None or s.generator is not None or s.scorer is not None for s in stages)
        payload = _payload(parsed, stages)
        judging = Judging(parsed.judge, parsed.max_cost, _batch_records(stages), _scorer_concurrency(stages))
        return Pipeline(
            path=self.path,
            input=parsed.input,
            output_dir=output_dir,
            stages=stages,
            config_hash=config_hash(payload),
            judging=judging if judged else None,
            config=payload,
            source=parsed.source,
            audit=parsed.audit,
            max_cost=parsed.max_cost,
        )

    def _entry(self, number: int, name: Any) -> str:
        return f"{self.path}: [[stages]] #{number}" + (f" (name = {name!r})" if name else "")

    def _where(self, loc: tuple[Any, ...]) -> str:
        section = f"[{loc[0]}]" if loc else ""
        rest = ".".join(str(p) for p in loc[1:])
        return f"{self.path}: {section}" + (f" key {rest!r}" if rest else "")


def stage_models(stages: list[PipelineStage]) -> list[ModelSettings]:
    """Every judge and generator the stages ask."""
    judges = [j for s in stages if s.judge is not None for j in s.judge.judges]
    return judges + [s.generator for s in stages if s.generator is not None]


def _scorer_concurrency(stages: list[PipelineStage]) -> int | None:
    """The calls in flight the scorers' tables allow (their max_concurrency, else their servers' summed one)."""
    allowed = [s.scorer.max_concurrency or s.scorer.endpoint_capacity() for s in stages if s.scorer is not None]
    return max((a for a in allowed if a is not None), default=None)


def _batch_records(stages: list[PipelineStage]) -> int:
    """The largest batch_max_requests of the models whose calls go as batch jobs (0: none)."""
    return max((m.batch_max_requests for m in stage_models(stages) if m.batch), default=0)


def _payload(parsed: PipelineFile, stages: list[PipelineStage]) -> dict[str, Any]:
    """What decides the results: the input file, the stages, their policies, configs, judges and prompts,
    the dataset audits.

    Not the output folder, and not where a model is served (its endpoints): moving a judge to
    another server is not a new pipeline. Paths are compared as the files they resolve to.
    """
    data = parsed.input.model_dump(mode="json")
    if data["max_messages"] == DEFAULT_MAX_MESSAGES:  # a pipeline that does not set it is the one it was before
        del data["max_messages"]
    if isinstance(parsed.input.path, HubPath):  # the path as written, and the commit it is pinned to
        data.update(path=parsed.input.path.url, commit=parsed.input.path.commit)
    else:
        data["path"] = str(parsed.input.path.resolve())
    if parsed.input.answers is not None:
        data["answers"] = str(parsed.input.answers.resolve())
    audit = parsed.audit.model_dump(mode="json")
    audit["eval_sets"] = [str(p.resolve()) for p in parsed.audit.eval_sets]
    payload = {"input": data, "stages": [_stage_payload(s) for s in stages], "audit": audit}
    return json.loads(json.dumps(payload, default=str))


def _stage_payload(stage: PipelineStage) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "name": stage.name,
        "on_fail": stage.on_fail,
        "max_attempts": stage.max_attempts,
        "config": stage.stage.config.model_dump(mode="json"),
    }
    if stage.judge is not None:
        payload["judge"] = {
            **({"system": stage.judge.system} if stage.judge.system is not None else {}),
            "template": stage.judge.template,
            "vote": stage.judge.vote,
            "judges": [_model_payload(j) for j in stage.judge.judges],
        }
    if stage.generator is not None:
        payload["generator"] = {**_model_payload(stage.generator), "prompt": stage.generator.prompt}
    if stage.scorer is not None:
        payload["scorer"] = {**_model_payload(stage.scorer), **stage.scorer.cut()}
    return payload


def _model_payload(settings: ModelSettings) -> dict[str, Any]:
    """What of a model's settings decides results: its sampling, and max_prompt_tokens when set (it discards
    records; a pipeline that does not set it is the one it was before)."""
    limit = {"max_prompt_tokens": settings.max_prompt_tokens} if settings.max_prompt_tokens is not None else {}
    return {**settings.sampling(), **limit}


def _key(err: Any) -> str:
    return ".".join(str(p) for p in err["loc"])


def _fix(err: Any) -> str:
    kind = err["type"]
    if kind == "missing":
        return "add this key"
    if kind == "extra_forbidden":
        return "remove it or check its spelling"
    return f"got {err.get('input')!r}"
