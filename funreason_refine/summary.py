"""summary.json as typed models that add up: what a run (or a shard, or a merge of shards) counted.

Every writer builds a :class:`Summary` and every reader loads one (``Summary.read(run_dir)``); no
code digs through the JSON by string keys. Parts add up: ``shard_a + shard_b`` is what the two
shards refined together (outcomes, verdicts, judge use, time); the dataset audits are not a sum
(they read the merged records in input order), so a sum has none until the merge runs them.
``refine schema summary`` prints the JSON Schema, for tools that read run folders; ``refine schema
selfrefine`` that of selfrefine.json, the rounds of self-refinement (selfrefine_summary.py).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_serializer, model_serializer

from funreason_refine.errors import RunFolderError

SCHEMA_VERSION = 3
"""1: summary.json before it was typed (no ``schema_version``); 2: typed, truncations counted apart; 3: answers
that broke the judge's answer protocol and their re-asks counted (``protocol_failures``, ``protocol_reasks``,
``judge.protocol`` per model), the wait in a server's queue apart from call time (``queue_seconds``), records
sent to errors.jsonl per stage and reason (``records_errored``), a scorer's scores per stage (``scores``), the target
of ``refine run --target-kept`` (``target``, written only for such a run)."""

SUMMARY = "summary.json"


class Section(BaseModel):
    """A section of summary.json: read strictly (a misspelt key is an error, not a silent zero)."""

    model_config = ConfigDict(extra="forbid")

    # Sections written only when they apply (a shard's part, a judge's servers): left out, not null.
    optional_keys: ClassVar[tuple[str, ...]] = ()

    @model_serializer(mode="wrap")
    def _leave_out_absent(self, handler: Any) -> Any:
        data = handler(self)
        for key in self.optional_keys:
            if data.get(key) is None:
                data.pop(key, None)
        return data


def mixed_formats(formats: list[str]) -> list[str] | None:
    """The formats, each once, first met first; None unless more than one."""
    found = list(dict.fromkeys(formats))
    return found if len(found) > 1 else None


def _add_counts(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
    """Two counts by name as one, most common first (as the run writes them)."""
    return dict((Counter(a) + Counter(b)).most_common())


SCORE_BIN = 0.05
"""Width of a histogram bin of scores: 20 bins over a probability; any range of raw rewards, with the same edges
in every shard, so that two histograms add up."""


def score_bin(score: float) -> str:
    """The histogram bin a score falls in, named by its lower edge ("0.85")."""
    edge = math.floor(round(score / SCORE_BIN, 9)) * SCORE_BIN
    return f"{edge:.2f}"


class ScoreStats(Section):
    """A scorer's scores at one stage: how many, their sum, range and histogram, and the threshold it cut at."""

    optional_keys = ("threshold",)

    count: int = Field(0, description="scores given (a record scored twice counts twice)")
    total: float = Field(0.0, description="their sum (the mean is total / count)")
    lowest: float | None = None
    highest: float | None = None
    bins: dict[str, int] = Field(
        default_factory=dict, description=f"scores per bin, by its lower edge (bins {SCORE_BIN} wide), in order"
    )
    threshold: float | None = Field(None, description="the scorer's threshold, when it has one")

    @property
    def mean(self) -> float | None:
        return self.total / self.count if self.count else None

    def add(self, score: float) -> None:
        self.count += 1
        self.total += score
        self.lowest = score if self.lowest is None else min(self.lowest, score)
        self.highest = score if self.highest is None else max(self.highest, score)
        key = score_bin(score)
        self.bins[key] = self.bins.get(key, 0) + 1

    def __add__(self, other: ScoreStats) -> ScoreStats:
        bins = Counter(self.bins) + Counter(other.bins)
        ends = [v for v in (self.lowest, other.lowest, self.highest, other.highest) if v is not None]
        return ScoreStats(
            count=self.count + other.count,
            total=self.total + other.total,
            lowest=min(ends) if ends else None,
            highest=max(ends) if ends else None,
            bins={k: bins[k] for k in sorted(bins, key=float)},
            threshold=self.threshold if self.threshold is not None else other.threshold,
        )

    @field_serializer("total")
    def _to_the_microunit(self, value: float) -> float:
        return round(value, 6)


class StageCounts(Section):
    """One stage's verdicts over a run: each verdict it gave, and where records left it."""

    optional_keys = ("records_errored", "scores")

    passed: int = Field(0, description="pass verdicts (a record checked twice counts twice)")
    regenerated: int = Field(0, description="regenerate verdicts")
    discarded: int = Field(0, description="discard verdicts of records that then left the run")
    truncated: int = Field(
        0, description="discard verdicts on a conversation turn that was cut off (on_fail = truncate): kept"
    )
    reasons: dict[str, dict[str, int]] = Field(
        default_factory=dict, description="reason codes per verdict (pass, regenerate, discard, truncate)"
    )
    records_discarded: dict[str, int] = Field(
        default_factory=dict, description="records that left the run at this stage, by reason"
    )
    records_errored: dict[str, int] | None = Field(
        None,
        description="records that went to errors.jsonl at this stage, by reason: context_window_exceeded (no retry "
        "alone fixes it), failed (a call or check that failed; refine retry may get past it); left out when none",
    )
    scores: ScoreStats | None = Field(None, description="a stage with a scorer: the scores it gave")

    def __add__(self, other: StageCounts) -> StageCounts:
        verdicts = list(dict.fromkeys([*self.reasons, *other.reasons]))
        scores = [s for s in (self.scores, other.scores) if s is not None]
        return StageCounts(
            passed=self.passed + other.passed,
            regenerated=self.regenerated + other.regenerated,
            discarded=self.discarded + other.discarded,
            truncated=self.truncated + other.truncated,
            reasons={v: _add_counts(self.reasons.get(v, {}), other.reasons.get(v, {})) for v in verdicts},
            records_discarded=_add_counts(self.records_discarded, other.records_discarded),
            records_errored=_add_counts(self.records_errored or {}, other.records_errored or {}) or None,
            scores=sum(scores[1:], scores[0]) if scores else None,
        )


def _add_stages(a: dict[str, StageCounts], b: dict[str, StageCounts]) -> dict[str, StageCounts]:
    names = list(dict.fromkeys([*a, *b]))
    return {n: a.get(n, StageCounts()) + b.get(n, StageCounts()) for n in names}


class JudgeUsage(Section):
    """What the models of a run (or of one stage) were asked and what it cost.

    ``cost_usd`` and the token counts are what this run paid for; the ``cached_*`` fields are what
    answers taken from the cache cost when they were first asked."""

    calls: int = Field(0, description="model calls that got an answer (cached ones included)")
    cached: int = Field(0, description="answers taken from the run's answer cache (paid nothing)")
    retries: int = Field(
        0, description="calls sent again after a failure of the call (429, 5xx, timeout); re-asks are counted apart"
    )
    protocol_failures: int = Field(
        0, description="answers that were not a verdict (cut off, no verdict, two verdicts, not the JSON asked for)"
    )
    protocol_reasks: int = Field(
        0, description="calls that asked again after such an answer, telling the model what was wrong"
    )
    prompt_tokens: int = Field(0, description="prompt tokens paid for")
    completion_tokens: int = Field(0, description="completion tokens paid for")
    cost_usd: float = Field(0.0, description="what the calls cost (LiteLLM's prices, or [judge] prices)")
    seconds: float = Field(
        0.0,
        description="time the calls took, added up (not the run's wall time); for streamed answers "
        "(first_token_timeout) from their first token on, the wait before it being in queue_seconds",
    )
    queue_seconds: float = Field(
        0.0,
        description="time streamed answers waited for their first token (the server's queue and its reading of "
        "the prompt), added up; 0 when answers are not streamed (their wait is part of seconds)",
    )
    cached_prompt_tokens: int = Field(0, description="prompt tokens of the cached answers when first asked")
    cached_completion_tokens: int = Field(0, description="completion tokens of the cached answers")
    cached_cost_usd: float = Field(0.0, description="what the cached answers cost when first asked")
    cached_seconds: float = Field(0.0, description="time the cached answers took when first asked")
    reusable_prefix_tokens: int = Field(0, description="prompt tokens that repeat an earlier prompt's prefix")

    def __add__(self, other: JudgeUsage) -> JudgeUsage:
        return type(self).model_validate(_add_fields(self, other, JudgeUsage.model_fields))

    def __iadd__(self, other: JudgeUsage) -> JudgeUsage:
        for name in JudgeUsage.model_fields:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        return self

    def add_retry(self) -> None:
        """A call sent again (the judge client counts each as it happens)."""
        self.retries += 1

    @field_serializer("cost_usd", "seconds", "queue_seconds", "cached_cost_usd", "cached_seconds")
    def _to_the_microunit(self, value: float) -> float:
        return round(value, 6)  # sums of many small floats: written without their noise


class ProtocolCounts(Section):
    """One model's answers that were not verdicts: how many, how many were asked again, and what was wrong."""

    failures: int = Field(0, description="answers that did not follow the answer protocol")
    reasks: int = Field(0, description="calls that asked again after one")
    problems: dict[str, int] = Field(
        default_factory=dict, description="failures by problem: cut_off, no_answer, no_verdict, several_verdicts, ..."
    )

    def __add__(self, other: ProtocolCounts) -> ProtocolCounts:
        return ProtocolCounts(
            failures=self.failures + other.failures,
            reasks=self.reasks + other.reasks,
            problems=_add_counts(self.problems, other.problems),
        )

    def add(self, problem: str, reasked: bool) -> None:
        """One answer that was not a verdict; ``reasked``: the model was asked again."""
        self.failures += 1
        self.reasks += reasked
        self.problems = _add_counts(self.problems, {problem: 1})


def _add_fields(a: BaseModel, b: BaseModel, names: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in names:
        total = getattr(a, name) + getattr(b, name)
        out[name] = round(total, 6) if isinstance(total, float) else total
    return out


class ServerStats(Section):
    """One server of a model: its calls and errors, 429s, latency, time out of rotation."""

    model: str | None = None
    api_base: str
    calls: int = 0
    errors: int = 0
    rate_limited: int = 0
    latency_p50_s: float | None = Field(None, description="median latency; after a merge, the shards' highest")
    latency_p95_s: float | None = Field(None, description="95th percentile; after a merge, the shards' highest")
    out_of_rotation_s: float = 0.0
    times_out_of_rotation: int = 0
    in_rotation: bool = True

    def __add__(self, other: ServerStats) -> ServerStats:
        def highest(a: float | None, b: float | None) -> float | None:
            return max((x for x in (a, b) if x is not None), default=None)

        return self.model_copy(
            update={
                **_add_fields(self, other, ("calls", "errors", "rate_limited", "times_out_of_rotation")),
                "out_of_rotation_s": round(self.out_of_rotation_s + other.out_of_rotation_s, 3),
                "latency_p50_s": highest(self.latency_p50_s, other.latency_p50_s),
                "latency_p95_s": highest(self.latency_p95_s, other.latency_p95_s),
                "in_rotation": self.in_rotation and other.in_rotation,
            }
        )


def _add_servers(a: list[ServerStats], b: list[ServerStats]) -> list[ServerStats]:
    """One row per server, in the order first seen, counts added up."""
    rows: dict[str, ServerStats] = {}
    for row in [*a, *b]:
        rows[row.api_base] = rows[row.api_base] + row if row.api_base in rows else row
    return list(rows.values())


def _join(a: list[str], b: list[str]) -> list[str]:
    return list(dict.fromkeys([*a, *b]))


class JudgeSection(JudgeUsage):
    """The ``judge`` section: the run's models and their use, per stage and per server."""

    optional_keys = ("generator", "tokens_counted_locally", "protocol", "endpoints", "batches")

    model: str | None = Field(None, description="the [judge] model (None: rules only)")
    generator: str | None = Field(None, description="the models that rewrote fields, comma-separated")
    per_stage: dict[str, JudgeUsage] = Field(default_factory=dict, description="the same figures per stage")
    tokens_counted_locally: dict[str, int] | None = Field(
        None,
        description="per model, the calls whose tokens were counted here because its server reported no usage "
        "(or left out the output's or the prompt's tokens)",
    )
    protocol: dict[str, ProtocolCounts] | None = Field(
        None, description="per model, its answers that were not verdicts and the re-asks they took"
    )
    endpoints: dict[str, list[ServerStats]] | None = Field(None, description="per model, its servers")
    batches: dict[str, int] | None = Field(None, description="provider batch jobs: submitted, in progress, done")
    notes: list[str] = Field(default_factory=list, description="what the figures leave out (unpriced models)")

    def __add__(self, other: JudgeUsage) -> JudgeSection:
        assert isinstance(other, JudgeSection)
        usage = self.usage() + other.usage()
        stages = list(dict.fromkeys([*self.per_stage, *other.per_stage]))
        return JudgeSection(
            **usage.model_dump(),
            model=self.model or other.model,
            generator=self.generator or other.generator,
            per_stage={s: self.per_stage.get(s, JudgeUsage()) + other.per_stage.get(s, JudgeUsage()) for s in stages},
            tokens_counted_locally=_add_models(self.tokens_counted_locally, other.tokens_counted_locally),
            protocol=_add_protocol(self.protocol, other.protocol),
            endpoints=_add_endpoints(self.endpoints, other.endpoints),
            batches=dict(Counter(self.batches or {}) + Counter(other.batches or {})) or None,
            notes=_join(self.notes, other.notes),
        )

    def usage(self) -> JudgeUsage:
        """The run's totals, without the per-stage and per-server breakdowns."""
        return JudgeUsage.model_validate({k: getattr(self, k) for k in JudgeUsage.model_fields})


def _add_models(a: dict[str, int] | None, b: dict[str, int] | None) -> dict[str, int] | None:
    """Counts per model as one, by model name (as the run writes them); None when neither has any."""
    return dict(sorted((Counter(a or {}) + Counter(b or {})).items())) or None


def _add_protocol(
    a: dict[str, ProtocolCounts] | None, b: dict[str, ProtocolCounts] | None
) -> dict[str, ProtocolCounts] | None:
    if not a and not b:
        return None
    a, b = a or {}, b or {}
    return {m: a.get(m, ProtocolCounts()) + b.get(m, ProtocolCounts()) for m in sorted({*a, *b})}


def _add_endpoints(
    a: dict[str, list[ServerStats]] | None, b: dict[str, list[ServerStats]] | None
) -> dict[str, list[ServerStats]] | None:
    if not a and not b:
        return None
    a, b = a or {}, b or {}
    return {m: _add_servers(a.get(m, []), b.get(m, [])) for m in dict.fromkeys([*a, *b])}


class InputInfo(Section):
    optional_keys = ("formats",)

    path: str = Field(description="the input file, absolute")
    format: str = Field(description="xlam, bfcl, openai or sharegpt: the pipeline's, else the first record's")
    formats: list[str] | None = Field(
        None,
        description="without [input] format, the formats records were read in, first met first, when more than "
        "one (a file that mixes them; left out otherwise). A shard's lists each format it met, even one: the merge "
        "lists those of every shard",
    )
    records: int | None = Field(
        None,
        description="input records read and refined (to --limit, or to the record that reached --target-kept; None "
        "while a stopped run has not read them all)",
    )
    limit: int | None = Field(None, description="--limit of the run")


class Timings(Section):
    optional_keys = ("merge_seconds",)

    started: str | None = Field(None, description="when the last run on the folder started (UTC, ISO 8601)")
    finished: str | None = Field(None, description="when it finished")
    seconds: float = Field(0.0, description="its wall time (after a merge: the shards' added up)")
    records_this_run: int = 0
    resumed_records: int = Field(0, description="records already done when it started")
    records_per_second: float | None = None
    workers: int = Field(1, description="processes that refined records")
    merge_seconds: float | None = Field(None, description="how long refine merge took")

    def __add__(self, other: Timings) -> Timings:
        seconds = round(self.seconds + other.seconds, 3)
        records = self.records_this_run + other.records_this_run
        return Timings(
            started=min((t for t in (self.started, other.started) if t), default=None),
            finished=max((t for t in (self.finished, other.finished) if t), default=None),
            seconds=seconds,
            records_this_run=records,
            resumed_records=self.resumed_records + other.resumed_records,
            records_per_second=round(records / seconds, 1) if seconds > 0 else None,
            workers=self.workers + other.workers,
        )


class InputPart(Section):
    """A shard's part of the input: records [first_index, first_index + records) of shard number/count."""

    number: int
    count: int
    first_index: int
    records: int
    input_bytes: int = Field(description="the size of the input file the split was made for")
    first_line: int = Field(1, description="JSONL: the line number of the part's first line")
    start: int = Field(0, description="JSONL: the byte offset of the part's first line")
    end: int | None = Field(None, description="JSONL: the byte offset past the part's last line")


class ShardEntry(Section):
    """A merged run's shard: which records of the input it refined, when it finished, its outcomes."""

    shard: str = Field(description="I/N")
    name: str
    first_index: int
    records: int
    finished: str | None = None
    seconds: float | None = None
    outcomes: dict[str, int] | None = None


class DuplicateAudit(Section):
    drop: bool
    drop_near: bool
    near_threshold: float
    exact: int
    near: int | None = Field(description="None: near-duplicates were not looked for")
    examples: list[dict[str, Any]]


class EvalSetInfo(Section):
    path: str
    queries: int
    unreadable: int


class ContaminationAudit(Section):
    drop: bool
    ngram: int
    threshold: float
    eval_sets: list[EvalSetInfo]
    records: int
    examples: list[dict[str, Any]]


class CallMix(Section):
    """Kept answers by kind. Per record, a conversation counts as its last assistant turn; ``turns``
    counts every assistant turn of every kept record (a single-turn record is one turn)."""

    optional_keys = ("turns",)

    records: int = 0
    text: int = 0
    no_call: int = 0
    one_call: int = 0
    parallel: int = 0
    several_functions: int = 0
    missing: list[str] = Field(default_factory=list, description="kinds of answer no kept turn has")
    turns: dict[str, int] | None = Field(None, description="assistant turns of the kept records, by kind")


class DatasetSection(Section):
    """The dataset audits over the kept records: duplicates, contamination, the call mix."""

    audited: int
    dropped: dict[str, int]
    duplicates: DuplicateAudit
    contamination: ContaminationAudit
    call_mix: CallMix
    warnings: list[str]


RunStoppedBy = Literal["target", "input", "limit", "max_cost", "unread"]


class KeptTarget(Section):
    """`refine run --target-kept N`: the kept records asked for, and how near the run came."""

    kept: int = Field(description="--target-kept: the kept records asked for (the first N in input order)")
    reached: bool = Field(description="kept.jsonl holds exactly that many")
    missing: int = Field(0, description="how many kept records it is short of")
    stopped_by: RunStoppedBy = Field(
        description="target (reached), input (it ended first), limit (--limit reached first), max_cost, or unread "
        "(the input could not be read on: a cut-off JSON array)"
    )
    stopped: str = Field(description="why the run stopped reading, in words")


class Summary(Section):
    """summary.json of a run folder."""

    optional_keys = ("shard", "shards", "dataset", "configurations", "target")

    schema_version: int = Field(SCHEMA_VERSION, description="changes when a reader must change")
    version: str = Field(description="funreason-refine's version that wrote it")
    pipeline: str = Field(description="the pipeline file")
    config_hash: str = Field(description="hash of the pipeline's configuration (run.json holds it whole)")
    complete: bool = Field(description="every input record (to --limit or --target-kept) has its outcome")
    stopped: str | None = Field(None, description="why the run stopped early (max_cost), or None")
    input: InputInfo
    outcomes: dict[str, int] = Field(description="records per outcome file")
    stages: dict[str, StageCounts] = Field(description="per stage, in pipeline order")
    judge: JudgeSection = Field(default_factory=JudgeSection)
    timings: Timings = Field(default_factory=Timings)
    configurations: list[dict[str, Any]] | None = Field(
        None, description="when records were refined under several configurations: each hash and its records"
    )
    shard: InputPart | None = Field(None, description="a shard's own summary: its part of the input")
    shards: list[ShardEntry] | None = Field(None, description="a merged run: its shards")
    dataset: DatasetSection | None = Field(None, description="the dataset audits (None in a shard)")
    target: KeptTarget | None = Field(None, description="refine run --target-kept: the target and how near it came")

    def __add__(self, other: Summary) -> Summary:
        """Two parts of one run as one: counts, judge use and time added; the audits are not a sum."""
        if other.config_hash != self.config_hash:
            raise ValueError("summaries of different configurations do not add up")
        outcomes = Counter(self.outcomes) + Counter(other.outcomes)
        records = [p.records for p in (self.input, other.input)]
        return self.model_copy(
            update={
                "complete": self.complete and other.complete,
                "stopped": self.stopped or other.stopped,
                "input": self.input.model_copy(
                    update={
                        "records": None if None in records else sum(r or 0 for r in records),
                        "formats": mixed_formats([*(self.input.formats or []), *(other.input.formats or [])]),
                    }
                ),
                "outcomes": {k: outcomes[k] for k in dict.fromkeys([*self.outcomes, *other.outcomes])},
                "stages": _add_stages(self.stages, other.stages),
                "judge": self.judge + other.judge,
                "timings": self.timings + other.timings,
                "shard": None,
                "shards": [*(self.shards or []), *(other.shards or [])] or None,
                "dataset": None,
            }
        )

    def mixed_note(self) -> str | None:
        """What to tell a person when the records were refined under several configurations."""
        if not self.configurations:
            return None
        hashes = list(dict.fromkeys(c["config_hash"] for c in self.configurations))
        parts = ", ".join(
            f"{c['records']} under {c['config_hash'][:12]}" + (f" (shard {c['shard']})" if "shard" in c else "")
            for c in self.configurations
        )
        return (
            f"the records of this run were refined under {len(hashes)} configurations ({parts}): "
            "--accept-changes kept the records refined before the change. For one configuration, run again "
            "with --fresh"
        )

    @property
    def errors(self) -> int:
        """Records stopped by infrastructure failures (errors.jsonl)."""
        return self.outcomes.get("errors", 0)

    @property
    def records(self) -> int:
        return sum(self.outcomes.values())

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), indent=2) + "\n"

    def as_dict(self) -> dict[str, Any]:
        """The JSON value of summary.json (what the run_finished hook is given)."""
        return dict(self.model_dump(mode="json"))

    @classmethod
    def read(cls, run_dir: Path) -> Summary:
        """A run folder's summary.json; an error naming the file when it is missing or unreadable."""
        path = Path(run_dir) / SUMMARY
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise RunFolderError(
                f"{path} does not exist: the run has not finished (or is still running). Run `refine run` "
                "on the pipeline again to finish it"
            ) from None
        return cls.parse(text, str(path))

    @classmethod
    def parse(cls, text: str, where: str = SUMMARY) -> Summary:
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise RunFolderError(f"{where} is not JSON ({exc}): run `refine run` again to write it anew") from None
        version = data.get("schema_version", 1) if isinstance(data, dict) else None
        if isinstance(version, int) and version > SCHEMA_VERSION:
            raise RunFolderError(
                f"{where} was written by a newer funreason-refine (summary schema {version}, this one reads up "
                f"to {SCHEMA_VERSION}): upgrade with `pip install -U funreason-refine`"
            )
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            key = ".".join(str(p) for p in first["loc"])
            raise RunFolderError(
                f"{where}: {key}: {first['msg']}; it was not written by this tool (or was edited): "
                "run `refine run` again to write it anew"
            ) from None


def schema(what: str = "summary") -> dict[str, Any]:
    """The JSON Schema of summary.json (``refine schema summary``) or selfrefine.json (``selfrefine``)."""
    model: type[BaseModel] = Summary
    if what == "selfrefine":
        from funreason_refine.selfrefine_summary import SelfRefineSummary

        model = SelfRefineSummary
    return model.model_json_schema(mode="validation")


__all__ = [
    "SCHEMA_VERSION",
    "CallMix",
    "DatasetSection",
    "InputInfo",
    "JudgeSection",
    "JudgeUsage",
    "KeptTarget",
    "ProtocolCounts",
    "ServerStats",
    "InputPart",
    "ScoreStats",
    "RunStoppedBy",
    "ShardEntry",
    "StageCounts",
    "Summary",
    "Timings",
    "schema",
]
