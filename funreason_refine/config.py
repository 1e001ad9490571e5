"""Pipeline files (TOML): parsed into pydantic models and checked whole, every problem reported at once.

Relative paths in a pipeline file are relative to the file's own folder, so a pipeline runs the
same from any working directory.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator

from funreason_refine.audit.settings import AuditSettings
from funreason_refine.errors import ConfigError, InputError, PluginError
from funreason_refine.hub.paths import HubPath, is_hub_path
from funreason_refine.plugin_manager import DEFAULT_PLUGINS, StageRegistry, stage_registry
from funreason_refine.readers import DEFAULT_MAX_MESSAGES, InputConfig
from funreason_refine.stages.base import JudgeOnlyStage, OnFail, PipelineStage, Vote

if TYPE_CHECKING:
    from funreason_refine.judge.settings import GenerateSettings, JudgeSettings, SourceSettings
    from funreason_refine.judge.stage_models import Judging, StageModels
    from funreason_refine.specs import StageSpec

MODEL_TABLES = ("judge", "generate", "source")
"""The tables of a pipeline file that set a model, checked by their models in judge/settings.py, which is imported
only when a file has one of them (``_Loader._model_tables``)."""


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
        None,
        description="false: no judge for this stage; true: the [judge] table's judge (as when left out); a table: "
        "keys overriding [judge] for this stage.",
    )
    judges: list[dict[str, Any]] | None = Field(None, description="An ensemble: tables overriding [judge].")
    vote: Vote = Field("unanimous", description="How an ensemble decides: unanimous or majority.")
    prompt: str | None = Field(None, description="Judge prompt template overriding the stage spec's.")
    prompt_file: Path | None = Field(None, description="A file holding the judge prompt template (UTF-8).")
    generate: bool | dict[str, Any] | None = Field(
        None,
        description="false: no generator here; true: [generate]'s (which the file must have); a table: keys "
        "overriding [generate] for this stage.",
    )
    spec: dict[str, Any] | None = Field(None, description="An inline stage spec: a judge-only stage with no code.")
    scorer: dict[str, Any] | None = Field(
        None,
        description="A model that scores the records the stage's rules pass, and the cut (docs/scorers.md): "
        "{kind, model, api_base, threshold, ...}. A name no stage has makes a scorer-only stage.",
    )

    # The keys left out because they were wrong (and said so): the rest of the table is checked all the same, and
    # what depends on a key left out is not judged (a generate table under an on_fail that could not be read).
    _unread: set[str] = PrivateAttr(default_factory=set)

    @property
    def unread(self) -> set[str]:
        return self._unread

    @field_validator("judge", "generate", mode="before")
    @classmethod
    def _flag_or_table(cls, value: Any) -> Any:
        if value is None or isinstance(value, bool | dict):
            return value
        raise ValueError("true, false or a table ({model = ...}) is wanted")  # not pydantic's words for each type


class PipelineFile(BaseModel):
    """The pipeline file but its ``[[stages]]``, which are checked one table at a time."""

    model_config = ConfigDict(extra="forbid")

    input: InputConfig = Field(description="The input file and how to read it.")
    output: OutputConfig = Field(default_factory=OutputConfig, description="Where the run folder goes.")
    judge: dict[str, Any] | None = Field(None, description="The default judge of every stage with a prompt.")
    generate: dict[str, Any] | None = Field(
        None, description="The default generator of stages that rewrite a field (the CoT stage's CoTs)."
    )
    max_cost: float | None = Field(
        None,
        gt=0,
        description="USD; what the run folder's model calls cost, over every command run on it (a rerun of a "
        "stopped run counts what the earlier ones spent; `--fresh` keeps the answer cache and what it cost): the "
        "run stops cleanly, resumable, when reached; the calls then in flight (up to `max_concurrency`, a batch's "
        "lines) go on and may pass it, and the stop says what was spent (`refine selfrefine`: over all its "
        "rounds, samples and judges together; a shard: its own folder).",
    )
    source: dict[str, Any] | None = Field(None, description="Self-refinement: the model that samples candidates.")
    stage_specs_dir: Path | None = Field(
        None,
        description="A folder of stage spec TOML files (UTF-8; judge-only stages, or new prompts for code stages).",
    )
    audit: AuditSettings = Field(
        default_factory=AuditSettings, description="Dataset audits: eval sets, and which findings drop a record."
    )

    @field_validator(*MODEL_TABLES, mode="plain")
    @classmethod
    def _checked_by_their_models(cls, value: Any) -> Any:
        return value  # by JudgeSettings, GenerateSettings and SourceSettings (_Loader._model_tables)


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
    warnings: list[str] = field(default_factory=list)  # allowed, but likely not meant: said before a run

    @property
    def input_name(self) -> str:
        """The input as its records' ``source.file`` name it, whatever the current folder: a file in the
        pipeline file's folder (or below it) from that folder, another file by its absolute path, an hf://
        path as written."""
        path = self.input.path
        if not isinstance(path, Path):
            return str(path)
        absolute = os.path.abspath(path)  # as written: a symlink is not followed to where it points
        below = os.path.relpath(absolute, os.path.abspath(self.path.parent))
        return absolute if below == os.pardir or below.startswith(os.pardir + os.sep) else below


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
    loaded = _Loader(path, data, given).load(out_dir)
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

    def __init__(self, path: Path, data: dict[str, Any], given: str | None = None):
        self.path = path
        self.base = path.parent
        self.data = data
        # where the input's path comes from: the command line's --input (in place of [input] path), or the file
        self.input_key = "--input" if given is not None else "[input] key 'path'"
        self.problems: list[str] = []
        self.parsed: PipelineFile | None = None
        self.tables: list[tuple[int, StageTable]] = []
        self.broken: set[str] = set()  # stages whose inline spec (or scorer) is wrong
        self.judge: JudgeSettings | None = None  # [judge], [generate], [source]: checked by _model_tables
        self.generate: GenerateSettings | None = None
        self.source: SourceSettings | None = None
        self.models: StageModels | None = None  # what the stages ask of models; None: no table names one

    def load(self, out_dir: Path | None) -> Pipeline:
        self.parsed = self._parse_file()
        self.tables = self._parse_tables()
        try:
            registry = stage_registry().copy()
        except PluginError as exc:
            raise ConfigError([str(exc)]) from None
        asks_models = self._asks_models()
        specs = self._specs(builtin=asks_models)
        self._register_judge_only(registry, specs)
        if asks_models:
            from funreason_refine.judge.stage_models import StageModels

            self.models = StageModels(self.path, self.problems, self.judge, self.generate, self._wrong_defaults())
            self.models.register_scorer_only(registry, specs, [t for _, t in self.tables])
        stages = self._stages(registry, specs)
        if self.problems:
            raise ConfigError(self.problems)
        assert self.parsed is not None
        return self._pipeline(self.parsed, stages, out_dir)

    # --- the file and its tables ---------------------------------------------------------

    def _parse_file(self) -> PipelineFile | None:
        top = {key: value for key, value in self.data.items() if key != "stages"}
        errors: list[Any] = []
        parsed: PipelineFile | None = None
        try:
            parsed = PipelineFile.model_validate(top)
        except ValidationError as exc:
            errors = exc.errors()
        errors += self._model_tables(top)
        if errors:  # in the order of the file's keys, as one model would give them (unknown keys last)
            keys = list(PipelineFile.model_fields)
            errors.sort(key=lambda e: keys.index(e["loc"][0]) if e["loc"] and e["loc"][0] in keys else len(keys))
            self.problems += [f"{self._where(tuple(e['loc']))}: {error_text(e)} ({error_fix(e)})" for e in errors]
            return None
        assert parsed is not None
        if parsed.input.answers is not None:
            parsed.input.answers = self.base / parsed.input.answers
        if not isinstance(parsed.input.path, HubPath):  # an hf:// path is pinned with the output folder (_pipeline)
            parsed.input.path = self.base / parsed.input.path
            self._check_input(parsed.input.path)
        self._check_answers(parsed.input)
        self._resolve_eval_sets(parsed.audit)
        return parsed

    def _check_answers(self, config: InputConfig) -> None:
        """A BFCL input's answer file is there, as the run reads it: the one [input] answers names, else BFCL's
        possible_answer/ file beside a local input whose format is "bfcl"."""
        if config.answers is not None:
            if not config.answers.is_file():
                self.problems.append(
                    f"{self.path}: [input] key 'answers': file {config.answers} not found (relative paths start at "
                    "the pipeline file's folder)"
                )
        elif config.format == "bfcl" and isinstance(config.path, Path) and config.path.is_file():
            from funreason_refine.readers.bfcl import default_answers_path, missing_answers

            problem = missing_answers(default_answers_path(config.path))
            if problem is not None:
                self.problems.append(f"{self.path}: [input] key 'format': {problem}")

    def _check_input(self, path: Path) -> None:
        """The input file is there, and not compressed."""
        from funreason_refine.readers.raw import detect_container

        if not path.is_file():
            start = "the current folder" if self.input_key == "--input" else "the pipeline file's folder"
            self.problems.append(
                f"{self.path}: {self.input_key}: file {path} not found (relative paths start at {start})"
            )
            return
        try:
            detect_container(path)
        except InputError as exc:  # compressed
            self.problems.append(f"{self.path}: {self.input_key}: {exc}")

    def _model_tables(self, top: dict[str, Any]) -> list[Any]:
        """[judge], [generate] and [source] read with their models, when given; the errors, each under its table."""
        given = [key for key in MODEL_TABLES if top.get(key) is not None]
        if not given:
            return []
        from funreason_refine.judge.settings import GenerateSettings, JudgeSettings, SourceSettings

        models: dict[str, type[BaseModel]] = {
            "judge": JudgeSettings,
            "generate": GenerateSettings,
            "source": SourceSettings,
        }
        errors: list[Any] = []
        for key in given:
            try:
                setattr(self, key, models[key].model_validate(top[key]))  # self.judge, self.generate, self.source
            except ValidationError as exc:
                errors += [{**e, "loc": (key, *e["loc"])} for e in exc.errors()]
        return errors

    def _asks_models(self) -> bool:
        """Whether the file names a model or a prompt: a default judge or generator, or a [[stages]] table with a
        judge, judges, generator, scorer, prompt or prompt_file. Without, no stage asks a model (rules only)."""
        if self.judge is not None or self.generate is not None or self._wrong_defaults():
            return True
        return any(
            t.scorer is not None
            or t.prompt is not None
            or t.prompt_file is not None
            or t.judges is not None
            or t.judge is True
            or isinstance(t.judge, dict)
            or t.generate is True
            or isinstance(t.generate, dict)
            for _, t in self.tables
        )

    def _wrong_defaults(self) -> set[str]:
        """[judge] and [generate] when given but wrong (and said so): the stages' tables over them are checked
        without them, and what they would have given is not asked for again."""
        return {key for key in ("judge", "generate") if self.data.get(key) is not None and getattr(self, key) is None}

    def _resolve_eval_sets(self, audit: AuditSettings) -> None:
        audit.eval_sets = [(self.base / p).resolve() for p in audit.eval_sets]  # the same in every shard
        for i, eval_set in enumerate(audit.eval_sets):
            if not eval_set.is_file():
                self.problems.append(
                    f"{self.path}: [audit] key 'eval_sets[{i}]': file {eval_set} not found "
                    "(relative paths start at the pipeline file's folder)"
                )
            else:
                self._check_eval_set(i, eval_set)

    def _check_eval_set(self, i: int, eval_set: Path) -> None:
        """The eval set's format can be told, as the run tells it (from its first records)."""
        from funreason_refine.audit.evalsets import eval_set_format

        try:
            eval_set_format(eval_set)
        except InputError as exc:
            self.problems.append(f"{self.path}: [audit] key 'eval_sets[{i}]': {exc}")

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
                self.problems += [
                    f"{where} key {error_key(e)!r}: {error_text(e)} ({error_fix(e)})" for e in exc.errors()
                ]
                rest = self._without(table, {e["loc"][0] for e in exc.errors() if e["loc"]})
                if rest is not None:
                    tables.append((number, rest))
        return tables

    def _without(self, table: dict[str, Any], wrong: set[Any]) -> StageTable | None:
        """The table without its wrong common keys, so that its other keys (the stage's own, its judges) are
        checked too; None when its name is wrong. A stage whose spec or scorer is wrong is not looked up."""
        if "name" in wrong:
            return None
        try:
            rest = StageTable.model_validate({k: v for k, v in table.items() if k not in wrong})
        except ValidationError:
            return None
        rest._unread = {str(key) for key in wrong}
        if rest.unread & {"spec", "scorer"}:
            self.broken.add(rest.name)
        return rest

    # --- specs and judge-only stages -----------------------------------------------------

    def _specs(self, builtin: bool) -> dict[str, StageSpec]:
        """Stage specs as this pipeline sees them: built-in, overlaid by stage_specs_dir, by inline specs.

        The built-in specs hold only judge prompts of code stages (a test holds them to that), so a file
        that names no model (``builtin`` False) does without them: a rules-only run reads no prompt file."""
        specs_dir = self.parsed.stage_specs_dir if self.parsed is not None else None
        if not builtin and specs_dir is None and all(t.spec is None for _, t in self.tables):
            return {}
        from funreason_refine.specs import builtin_specs, spec_from, specs_in

        specs = builtin_specs() if builtin else {}
        if specs_dir is not None:
            folder = self.base / specs_dir
            if folder.is_dir():
                specs.update(specs_in(folder, self.problems, f"{self.path}: key 'stage_specs_dir': "))
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
        if self.models is not None:
            self.models.check(stages, unread=set().union(*(t.unread for _, t in tables)))
        return stages

    def _stage(
        self, where: str, table: StageTable, registry: StageRegistry, spec: StageSpec | None
    ) -> PipelineStage | None:
        found = registry.get(table.name)
        if found is None and table.name in self.broken:
            return None  # its inline spec is wrong, and said so
        if found is None:
            close = difflib.get_close_matches(table.name, registry.names(), n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            if os.environ.get("FUNREASON_REFINE_NO_PLUGINS"):
                hint += "installed plugins are not loaded (FUNREASON_REFINE_NO_PLUGINS is set); "
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
                f"{where} key {error_key(e)!r}: {error_text(e)} ({error_fix(e)}; this stage's own keys: {allowed})"
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
            # the package's own stages, and judge-only stages, whose check passes every record as it is
            trusted=found.plugin in DEFAULT_PLUGINS or cls.check is JudgeOnlyStage.check,
        )
        if self.models is not None:
            self.models.attach(where, table, spec, stage)
        # a judge-only stage needs a judge, unless the keys that give it one are wrong (and said so)
        judge_wrong = (
            bool(table.unread & {"judge", "judges", "prompt", "prompt_file"}) or "judge" in self._wrong_defaults()
        )
        if issubclass(cls, JudgeOnlyStage) and stage.judge is None and table.scorer is None and not judge_wrong:
            self.problems.append(
                f"{where}: a judge-only stage (a spec, no code) needs a judge: add a [judge] table or run with "
                "--judge-model"
            )
        return stage

    # --- the result ----------------------------------------------------------------------

    def _pipeline(self, parsed: PipelineFile, stages: list[PipelineStage], out_dir: Path | None) -> Pipeline:
        output_dir = out_dir if out_dir is not None else output_folder(self.path, parsed.output.dir)
        self._check_output(parsed, output_dir, out_dir is not None)
        if self.problems:
            raise ConfigError(self.problems)
        warnings = list(self.models.warnings) if self.models is not None else []
        if isinstance(parsed.input.path, HubPath):  # at the commit the run folder read, or its revision's now
            from funreason_refine.hub.pin import held_out_files, pin

            parsed.input.path = pin(parsed.input.path, output_dir)
            warnings += held_out_files(parsed.input.path)
        payload = _payload(parsed, stages)
        return Pipeline(
            path=self.path,
            input=parsed.input,
            output_dir=output_dir,
            stages=stages,
            config_hash=config_hash(payload),
            judging=self.models.judging(stages, parsed.max_cost) if self.models is not None else None,
            config=payload,
            source=self.source,
            audit=parsed.audit,
            max_cost=parsed.max_cost,
            warnings=warnings,
        )

    def _check_output(self, parsed: PipelineFile, output_dir: Path, given: bool) -> None:
        """The run folder can be made (no file stands where it or a folder above it goes), and the run reads none
        of the files it writes there (``given``: the folder is the command line's --out)."""
        from funreason_refine.run_folder import own_file

        where = f"--out {output_dir}" if given else f"{self.path}: [output] key 'dir'"
        existing = next((p for p in (output_dir, *output_dir.parents) if p.exists()), None)
        if existing is not None and not existing.is_dir():
            below = "" if existing == output_dir else f" (the run folder {output_dir} would be inside it)"
            self.problems.append(
                f"{where}: {existing} is a file, not a folder{below}: choose another [output] dir (or --out)"
            )
        read = [
            (self.input_key, parsed.input.path),
            ("[input] key 'answers'", parsed.input.answers),
            *((f"[audit] key 'eval_sets[{i}]'", p) for i, p in enumerate(parsed.audit.eval_sets)),
        ]
        for key, file in read:
            problem = own_file(output_dir, file) if isinstance(file, Path) else None
            if problem is not None:
                self.problems.append(f"{self.path}: {key}: {problem}")

    def _entry(self, number: int, name: Any) -> str:
        return f"{self.path}: [[stages]] #{number}" + (f" (name = {name!r})" if name else "")

    def _where(self, loc: tuple[Any, ...]) -> str:
        if len(loc) == 1 and loc[0] in self.data and not isinstance(self.data[loc[0]], dict):
            return f"{self.path}: key {loc[0]!r}"  # a key of the top level (max_cost), not a table
        section = f"[{loc[0]}]" if loc else ""
        rest = ".".join(str(p) for p in loc[1:])
        return f"{self.path}: {section}" + (f" key {rest!r}" if rest else "")


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
    if stage.judge is not None or stage.generator is not None or stage.scorer is not None:
        from funreason_refine.judge.stage_models import models_payload

        payload.update(models_payload(stage))
    return payload


def error_key(err: Any) -> str:
    """Where a validation error is, as a key of the table: ``judge.model``."""
    return ".".join(str(p) for p in err["loc"])


def error_text(err: Any) -> str:
    """A validation error's message in a pipeline author's words: without pydantic's "Value error, ", and a
    path's type said plainly (not as Python's class)."""
    if err["type"] == "path_type":
        return "a path (text) is wanted"
    if err["type"] in ("dict_type", "model_type"):
        return "a table is wanted"
    return str(err["msg"]).removeprefix("Value error, ")


def error_fix(err: Any) -> str:
    """What to do about a validation error, in a few words."""
    kind = err["type"]
    if kind == "missing":
        return "add this key"
    if kind == "extra_forbidden":
        return "remove it or check its spelling"
    return f"got {err.get('input')!r}"
