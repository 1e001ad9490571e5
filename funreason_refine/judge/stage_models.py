"""The models a pipeline's stages ask: each stage's judges (its panel), its generator and its scorer, read from
the pipeline file's tables and checked with the rest of the file, and the run-wide judge settings (Judging).

config.py reads a file with this module only when some table of it names a model or a prompt
(``_Loader._asks_models``): a rules-only pipeline imports neither it nor the judge's settings.
"""

from __future__ import annotations

import tomllib
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from funreason_refine.config import StageTable, error_fix, error_key, error_text
from funreason_refine.judge.scorer_settings import ScorerSettings
from funreason_refine.judge.settings import GenerateSettings, JudgeModel, JudgePanel, JudgeSettings, ModelSettings
from funreason_refine.plugin_manager import StageRegistry
from funreason_refine.specs import StageSpec, check_template, not_utf8
from funreason_refine.stages.base import JudgeOnlyStage, PipelineStage


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


def stage_models(stages: list[PipelineStage]) -> list[ModelSettings]:
    """Every judge and generator the stages ask."""
    judges = [j for s in stages if s.judge is not None for j in s.judge.judges]
    return judges + [s.generator for s in stages if s.generator is not None]


def litellm_models(stages: list[PipelineStage]) -> list[ModelSettings]:
    """Every model the stages ask through LiteLLM: judges, generators, yes/no scorers (the others call vLLM's
    pooling endpoints themselves)."""
    scorers = [s.scorer for s in stages if s.scorer is not None and s.scorer.kind == "yes_no"]
    return [*stage_models(stages), *scorers]


class StageModels:
    """What each stage of one pipeline file asks of models; problems go to the loader's list (``problems``),
    each naming the file and the table (``where``)."""

    def __init__(
        self,
        path: Path,
        problems: list[str],
        judge: JudgeSettings | None,
        generate: GenerateSettings | None,
        wrong: Collection[str] = (),
    ):
        self.path = path
        self.base = path.parent
        self.problems = problems
        self.judge = judge  # [judge]: the default judge of every stage with a prompt
        self.generate = generate  # [generate]: the default generator
        self.wrong = wrong  # "judge", "generate": given but wrong (and said so); a key missing here may be there
        self.warnings: list[str] = []  # what is allowed but likely not meant, said before a run

    def register_scorer_only(
        self, registry: StageRegistry, specs: dict[str, StageSpec], tables: list[StageTable]
    ) -> None:
        """A [[stages]] table with a scorer that names no stage (nor spec) is a scorer-only stage."""
        for table in tables:
            if table.scorer is None or registry.get(table.name) is not None or table.name in specs:
                continue
            model = table.scorer.get("model", "its scorer")
            registry.register(JudgeOnlyStage.named(table.name, f"scored by {model}"), plugin="scorer")

    def attach(self, where: str, table: StageTable, spec: StageSpec | None, stage: PipelineStage) -> None:
        """The stage's scorer, judges and generator, as its table and the defaults say."""
        stage.scorer = self._scorer(where, table)
        stage.judge = self._panel(where, table, spec, stage.stage.judge_may_change_calls)
        stage.generator = self._generator(where, table, spec, stage)

    def check(self, stages: list[PipelineStage], unread: set[str]) -> None:
        """What holds across the stages: [generate] is used, the relative cuts group records one way; a [judge]
        that no stage asks is said (``warnings``). ``unread``: the keys of [[stages]] tables that were wrong (and
        said so), on which the use of [generate] is not judged."""
        if self.judge is not None and not any(s.judge for s in stages):
            names = ", ".join(s.name for s in stages) or "none"
            self.warnings.append(
                f"{self.path}: [judge] {self.judge.model}: no stage asks it (none of {names} has a judge: the "
                "built-in stages and stage specs have a prompt, a stage of code alone has none, and judge = false "
                "takes a stage's away); the stages' rules decide alone"
            )
        if self.generate is not None and not any(s.generator for s in stages) and not unread & {"on_fail", "generate"}:
            self.problems.append(
                f"{self.path}: [generate]: no stage writes with it. To write CoTs for records without one and "
                'rewrite failing ones, set on_fail = "regenerate" and required = true in the [[stages]] table of cot'
            )
        keys = sorted({s.scorer.relative.by for s in stages if s.scorer is not None and s.scorer.relative is not None})
        if len(keys) > 1:
            self.problems.append(
                f"{self.path}: the relative cuts of the scorers group records by different meta keys "
                f"({', '.join(keys)}); give every relative table the same `by`"
            )

    def judging(self, stages: list[PipelineStage], max_cost: float | None) -> Judging | None:
        """The run-wide settings, when some stage asks a model; None: rules only."""
        if not any(s.judge is not None or s.generator is not None or s.scorer is not None for s in stages):
            return None
        batch_records = max((m.batch_max_requests for m in stage_models(stages) if m.batch), default=0)
        # the calls in flight the scorers' tables allow (their max_concurrency, else their servers' summed one)
        allowed = [s.scorer.max_concurrency or s.scorer.endpoint_capacity() for s in stages if s.scorer is not None]
        scorers = max((a for a in allowed if a is not None), default=None)
        return Judging(self.judge, max_cost, batch_records, scorers)

    # --- one stage -----------------------------------------------------------------------

    def _scorer(self, where: str, table: StageTable) -> ScorerSettings | None:
        """The stage's scorer, when its table has one."""
        if table.scorer is None:
            return None
        try:
            return ScorerSettings.model_validate(table.scorer)
        except ValidationError as exc:
            for e in exc.errors():
                key = ".".join(["scorer", *map(str, e["loc"])]) if e["loc"] else "scorer"
                self.problems.append(f"{where} key {key!r}: {error_text(e)} ({error_fix(e)})")
            return None

    def _panel(
        self, where: str, table: StageTable, spec: StageSpec | None, calls_may_change: bool
    ) -> JudgePanel | None:
        """How the stage asks its judges, or None when it asks none; ``calls_may_change``: the stage's
        judge_may_change_calls."""
        template = self._template(where, table, spec)
        default = self.judge
        if table.judge is True and template is None:
            self.warnings.append(
                f"{where}: it has judge = true but no prompt to ask a judge with (no stage spec names "
                f"{table.name}): give it prompt or prompt_file, or remove judge"
            )
        if table.judge is False or template is None:
            return None
        if table.judges is not None:
            tables, key = table.judges, "judges"
        elif isinstance(table.judge, dict):
            tables, key = [table.judge], "judge"
        else:
            tables, key = ([{}] if default is not None else []), "judge"
        if not tables:
            self._no_judge(where, table)
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
        return JudgePanel(
            template=template,
            allow_newfc=allow_newfc,
            judges=chosen,
            calls_may_change=calls_may_change,
            vote=table.vote,
            system=system,
        )

    def _no_judge(self, where: str, table: StageTable) -> None:
        """Say that a stage that asks for a judge (its prompt, or judge = true) has none: no [judge] table."""
        given = [key for key in ("prompt", "prompt_file") if getattr(table, key) is not None]
        if table.judge is True:
            given.append("judge = true")
        if given:
            self.warnings.append(
                f"{where}: it has {' and '.join(given)} but no judge to ask (no [judge] table, no judge table of its "
                "own): the stage's rules decide alone; add a [judge] table or run with --judge-model"
            )

    def _generator(
        self, where: str, table: StageTable, spec: StageSpec | None, stage: PipelineStage
    ) -> GenerateSettings | None:
        """The model that rewrites the field the stage names, when its records fail and on_fail is regenerate."""
        field = stage.stage.regenerates
        asked = table.generate is True or isinstance(table.generate, dict)  # generate = true, or a table
        if asked and field is None:
            self.problems.append(f"{where} key 'generate': stage {table.name} names no field a generator could write")
            return None
        if asked and stage.on_fail != "regenerate" and "on_fail" not in table.unread:
            self.problems.append(
                f"{where} key 'generate': no record is rewritten with it, as on_fail is {stage.on_fail!r}. To rewrite "
                f'the {field} of failing records, set on_fail = "regenerate" in this table; else remove generate'
            )
            return None
        default = self.generate
        if field is None or stage.on_fail != "regenerate" or table.generate is False:
            return None
        if not isinstance(table.generate, dict) and default is None:
            if table.generate is True:  # it was dropped in silence: failing records were discarded, never rewritten
                self.problems.append(
                    f"{where} key 'generate': true, but the file has no [generate] table to take the model from: add "
                    "[generate] model = ..., or give generate = {model = ...} in this table"
                )
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
            default = "generate" if key == "generate" else "judge"
            for e in exc.errors():
                if e["type"] == "missing" and default in self.wrong:
                    continue  # given in [judge] (or [generate]), which is wrong: said there
                hint = f" (set [{default}] model or give model in this table)" if e["type"] == "missing" else ""
                self.problems.append(f"{where} key '{label}.{error_key(e)}': {error_text(e)}{hint}")
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
            except UnicodeDecodeError as exc:
                self.problems.append(f"{where} key 'prompt_file': {not_utf8(prompt_path, exc)}")
                return None
            if _is_spec(text):
                self.problems.append(
                    f"{where} key 'prompt_file': {prompt_path} is a stage spec (TOML with a prompt), which would be "
                    "sent whole as the prompt: put it in a folder and name that folder with stage_specs_dir at the "
                    "top of the pipeline file (the spec's name says its stage), or give prompt_file a file holding "
                    "the prompt's text alone"
                )
                return None
        if text is None:
            return spec.prompt if spec else None
        try:
            check_template(text)
        except ValueError as exc:
            self.problems.append(f"{where} key {key!r}: {exc}")
            return None
        return text


def _is_spec(text: str) -> bool:
    """Whether a prompt file's text is a stage spec (stage_specs/*.toml) rather than a prompt."""
    try:
        return isinstance(tomllib.loads(text).get("prompt"), str)
    except tomllib.TOMLDecodeError:
        return False


def models_payload(stage: PipelineStage) -> dict[str, Any]:
    """What of the stage's judges, generator and scorer decides its results (config._payload)."""
    payload: dict[str, Any] = {}
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
