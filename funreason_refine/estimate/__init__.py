"""`refine estimate`: the calls, tokens, cost and time of a judged run, worked out before it spends anything.

The input is walked once (twice when probes or measured rewrites change what the run would ask), each
record's calls summed as they come: memory does not grow with the input (sums.py, records.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from funreason_refine.config import Pipeline
from funreason_refine.errors import ConfigError
from funreason_refine.estimate.dry import DryRunner, RecordCalls, record_calls
from funreason_refine.estimate.figures import (
    DEFAULT_OUTPUT_TOKENS,
    OUTPUT_TOKENS_PER_SECOND,
    SECONDS_FIRST_TOKEN,
    Answers,
    Figures,
    Key,
    Span,
    Tally,
    assumed,
    batch_waves,
    wall_seconds,
)
from funreason_refine.estimate.findings import Findings
from funreason_refine.estimate.probe import FirstCalls, cached_answer, open_cache, probe
from funreason_refine.estimate.prompts import LongPrompts, long_prompts
from funreason_refine.estimate.records import EstimateInput
from funreason_refine.estimate.repairs import Repair, given_up, repairs
from funreason_refine.estimate.sums import CallSums
from funreason_refine.estimate.timing import ServerTime, probe_lines, reask_rates, server_times, time_lines
from funreason_refine.estimate.tokens import TokenCounter
from funreason_refine.judge.library import load_litellm
from funreason_refine.judge.prices import Price, price_of
from funreason_refine.record import Record
from funreason_refine.run_identity import RUN_FILE


@dataclass
class Estimate:
    """Per stage and in total: calls, cached calls, tokens, cost and wall time, each as a range; per model its
    servers' time (calls at once, a call's own seconds, its wait in their queue); what a probe found; the records
    whose prompts are too long for their model."""

    pipeline: str
    records: int
    sampled: int
    stages: dict[str, Figures]
    total: Figures
    models: dict[str, dict[str, Any]]
    assumptions: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    batch_waves: int | None = None
    concurrency: int = 1
    servers: dict[str, ServerTime] = field(default_factory=dict)
    time_notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    findings: Findings | None = None
    long_prompts: LongPrompts = field(default_factory=LongPrompts)
    repairs: list[Repair] = field(default_factory=list)  # what repairing judges' failing verdicts adds (apart)
    given_up: dict[str, float] = field(default_factory=dict)  # per stage, records to errors.jsonl at the probe's rate

    def as_dict(self) -> dict[str, Any]:
        scale = self.records / self.sampled if self.sampled else 0.0
        return {
            "pipeline": self.pipeline,
            "records": self.records,
            "sampled": self.sampled,
            "range": {
                "low": "the rules' pass rates, every judge passing",
                "high": "every record at every stage",
                "repairs": "apart: what repairing judges' failing verdicts adds",
            },
            "stages": {name: figures.as_dict() for name, figures in self.stages.items()},
            "total": self.total.as_dict(),
            "models": self.models,
            "concurrency": self.concurrency,
            "servers": {model: t.as_dict() for model, t in self.servers.items()},
            "probe": asdict(self.findings) if self.findings is not None else None,
            "long_prompts": self.long_prompts.as_dict(scale),
            "repairs": [repair.as_dict() for repair in self.repairs],
            "given_up": {stage: round(records) for stage, records in self.given_up.items()},
            "batch_waves": self.batch_waves,
            "assumptions": self.assumptions,
            "notes": self.notes,
            "warnings": self.warnings,
        }


def estimate(
    pipeline: Pipeline, sample: int | None = None, output_tokens: int | None = None, probes: int | None = None
) -> Estimate:
    """Estimate a run of ``pipeline``: on every input record, or on a seeded random ``sample`` scaled up.
    ``probes`` real calls per stage (paid, cached for the run) measure the answers, the server's concurrency and
    the protocol's re-asks (kept in the run folder's probe.json for later estimates); else ``output_tokens``
    per call, else what the answer cache knows, else an assumption that the estimate states."""
    if pipeline.judging is None:
        raise ConfigError([f"{pipeline.path}: no stage asks a model; a rules-only run costs nothing to estimate"])
    counter = TokenCounter(load_litellm())
    records = EstimateInput(pipeline, sample)
    written = output_tokens or DEFAULT_OUTPUT_TOKENS
    findings = _probe(pipeline, records, written, probes) if probes else Findings.load(pipeline.output_dir)
    cache = open_cache(pipeline.output_dir)
    try:
        sums, long = _sums(pipeline, records, written, counter, cache)
        if output_tokens is None:  # rewritten fields as long as the generator's measured answers
            rewrites = [a for key, a in sums.found().items() if key[2]]
            if rewrites and round(_mean_output(rewrites)) != written:
                sums, long = _sums(pipeline, records, round(_mean_output(rewrites)), counter, cache)
        result = _result(pipeline, sums, counter, output_tokens, records.total, records.drawn, findings)
        result.long_prompts = long
        return result
    finally:
        if cache is not None:
            cache.close()


def _probe(pipeline: Pipeline, records: EstimateInput, written: int, probes: int) -> Findings:
    """The first ``probes`` calls of each kind made for real; what they found, saved in the run folder."""
    assert pipeline.judging is not None
    first = FirstCalls(probes)
    _dry_run(pipeline, records, written, lambda record, calls: first.add(calls.rules), asks=True)
    judging = pipeline.judging
    findings = asyncio.run(probe(first.calls(), pipeline.output_dir, judging.max_concurrency, judging.protocol_retries))
    findings.save(pipeline.output_dir)
    return findings


def _sums(
    pipeline: Pipeline, records: EstimateInput, written: int, counter: TokenCounter, cache: Any
) -> tuple[CallSums, LongPrompts]:
    """One pass: every record's calls, summed; the records whose prompts are too long for their model."""
    sums = CallSums(counter.count, lambda call: cached_answer(cache, call))
    long = long_prompts(pipeline, load_litellm())

    def take(record: Record, calls: RecordCalls) -> None:
        sums.add(calls)
        long.add(record, calls.finished)

    _dry_run(pipeline, records, written, take, counter)
    return sums, long


def _dry_run(
    pipeline: Pipeline,
    records: EstimateInput,
    written_tokens: int,
    take: Callable[[Record, RecordCalls], None],
    counter: TokenCounter | None = None,
    asks: bool = False,
) -> None:
    """Each record's calls to ``take``, one record at a time; with ``counter``, prompts are counted as they are
    made (and checked against their model's context window); ``asks``: judges' calls say which ask they are of
    (what a probe's votes need)."""
    assert pipeline.judging is not None
    runner = DryRunner(pipeline.judging.protocol_retries, written_tokens, counter.count if counter else None, asks)

    async def walk() -> None:
        for record in records:
            take(record, await record_calls(record, pipeline.stages, runner))

    asyncio.run(walk())


def _mean_output(found: list[Answers]) -> float:
    return sum(a.output_tokens for a in found) / len(found)


def _answers(
    sums: CallSums, output_tokens: int | None, findings: Findings | None
) -> tuple[dict[Key, Answers], list[str]]:
    """Per kind of call, what its answers are like, and the assumptions made to say so. A probe's timing of a
    kind (calls made one at a time) is a call's own time: it is preferred to the cached answers' seconds, which
    may hold a wait in the server's queue."""
    found = sums.found()
    kinds = list(sums.kinds)
    answers: dict[Key, Answers] = {}
    for key in kinds:
        known = found.get(key)
        if output_tokens is not None:
            fallback = assumed(output_tokens)
            answers[key] = Answers(output_tokens, known.seconds if known else fallback.seconds,
                                   known.prompt_ratio if known else 1.0)  # fmt: skip
        else:
            answers[key] = known or assumed(DEFAULT_OUTPUT_TOKENS)
        timed = findings.timing(key) if findings is not None else None
        if timed is not None:
            answers[key] = replace(answers[key], seconds=timed)
    assumptions = []
    if output_tokens is not None:
        assumptions.append(f"{output_tokens} output tokens a call (--output-tokens)")
    elif len(found) < len(kinds):
        assumptions.append(
            f"{DEFAULT_OUTPUT_TOKENS} output tokens a call where no answer was measured (give --output-tokens K "
            "or --probe P: judges that think first write far more)"
        )
    if found:
        assumptions.append(
            f"for {len(found)} of {len(kinds)} kind(s) of call (stage, model), the answers in the run folder's cache "
            "(probes included) give the output tokens, the seconds a call takes and the model's own prompt token count"
        )
    if len(found) < len(kinds):
        assumptions.append(
            f"where no answer was timed, a call takes {SECONDS_FIRST_TOKEN:g} s plus {OUTPUT_TOKENS_PER_SECOND:g} "
            "output tokens a second"
        )
    return answers, assumptions


def _result(
    pipeline: Pipeline,
    sums: CallSums,
    counter: TokenCounter,
    output_tokens: int | None,
    records: int,
    sampled: int,
    findings: Findings | None = None,
) -> Estimate:
    assert pipeline.judging is not None
    answers, assumptions = _answers(sums, output_tokens, findings)
    litellm = load_litellm()
    prices: dict[str, Price | None] = {model: price_of(litellm, settings) for model, settings in sums.priced.items()}
    reasks = reask_rates(findings)
    tally = sums.tally(answers, prices, reasks)
    scale = records / sampled if sampled else 0.0
    names = [s.name for s in pipeline.stages if s.name in tally.stages]
    stages = {name: tally.stages[name].scaled(scale) for name in names}
    total = Figures()
    for figures in stages.values():
        for name in total.__dataclass_fields__:
            span, add = getattr(total, name), getattr(figures, name)
            span.low, span.high = span.low + add.low, span.high + add.high
    concurrency = pipeline.judging.max_concurrency
    servers = server_times(tally, concurrency, findings)
    at_once = {model: t.at_once for model, t in servers.items() if t.at_once}
    total.seconds = wall_seconds(tally, scale, concurrency, at_once)
    for figures in stages.values():
        figures.seconds = Span(*(_share(total, figures, s) for s in ("low", "high")))
    assumptions.append(
        "prompt tokens counted by LiteLLM's token_counter, offline, with the tokenizers LiteLLM ships "
        "(a model's own tokenizer may count differently; probes measure the difference)"
    )
    models = _models(tally, counter, prices)
    estimate = Estimate(str(pipeline.path), records, sampled, stages, total, models, assumptions)
    estimate.concurrency, estimate.servers, estimate.findings = concurrency, servers, findings
    ran = (pipeline.output_dir / RUN_FILE).exists()  # a run began here: the cached verdicts were given
    estimate.repairs = repairs(pipeline.stages, sums, answers, prices, reasks, scale, findings, ran)
    estimate.given_up = given_up(pipeline.stages, sums, scale, findings, ran)
    estimate.time_notes, estimate.warnings = time_lines(servers, tally)
    estimate.time_notes += probe_lines(findings)
    estimate.notes = [f"{model}: not in LiteLLM's price list; its cost counts as 0 (set prices in its table)"
                      for model, found in prices.items() if found is None]  # fmt: skip
    if findings is not None and findings.protocol and not findings.verdicts:
        estimate.notes.append(
            "probe.json is older than its count of verdicts: the repairs are shown at an assumed share; "
            "refine estimate --probe P measures it"
        )
    estimate.notes += [f"{model}: LiteLLM cannot count its tokens; {counter.tokenizer(model)}"
                       for model in sorted(counter.approximated)]  # fmt: skip
    batched = [s.model for s in tally.settings.values() if s.batch]
    if batched:
        estimate.batch_waves = batch_waves(tally, records, pipeline.judging.window)
        estimate.notes.append(
            f"calls to {', '.join(batched)} go as batch jobs: about {estimate.batch_waves} round(s) of batches, "
            "each done within 24 h (often much sooner); the time shown is that of the other calls"
        )
    return estimate


def _models(tally: Tally, counter: TokenCounter, prices: dict[str, Price | None]) -> dict[str, dict[str, Any]]:
    out = {}
    for model, settings in tally.settings.items():
        price = prices.get(model)
        out[model] = {
            "tokenizer": counter.tokenizer(model),
            "price": None if price is None else {"input_per_million": price.input * 1e6,
                                                 "output_per_million": price.output * 1e6, "source": price.source},
            "batch": settings.batch,
        }  # fmt: skip
    return out


def _share(total: Figures, stage: Figures, scenario: str) -> float:
    """A stage's part of the wall time: as much as its calls take of all the call-seconds."""
    work = getattr(total.work, scenario)
    return getattr(total.seconds, scenario) * getattr(stage.work, scenario) / work if work else 0.0
