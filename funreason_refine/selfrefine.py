"""Self-refinement (the paper's loop): a model samples answers, the pipeline keeps the good ones.

Each round writes ``round-<n>/candidates.jsonl`` (xLAM records with a ``meta`` of round, sample,
model and query) and runs the pipeline on it into the same folder. A query leaves the pool once
a sample survives. With a stage whose ``on_fail`` is ``hard_pool``, the queries a round sampled
stay in the pool only when their samples went to ``hard.jsonl`` (the paper's hard-data
re-sampling); without one, every query without a survivor is sampled again. A query with a candidate
that got no verdict (in the round's errors.jsonl) and no survivor is held out of the pool until `refine
retry` on the round gives it one. With a yield target,
a round draws only part of the pool (:mod:`~funreason_refine.yield_target` says how much; the
queries drawn fewest times first, in input order), and the rounds' kept records are trimmed to the
target in ``<output dir>/kept.jsonl``.

Everything a round did is read back from its folder: a killed run resumes to the same records.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from funreason_refine.call_text import calls_from_text
from funreason_refine.config import Pipeline, config_hash
from funreason_refine.engine import Progress, RunResult, run_pipeline
from funreason_refine.errors import ConfigError, RefineError, RunFolderError
from funreason_refine.jsonl import json_line, read_jsonl
from funreason_refine.judge.answer import Answer
from funreason_refine.judge.cache import spent
from funreason_refine.judge.client import BudgetStop, JudgeCallError, LLMClient
from funreason_refine.judge.limits import PromptTooLong, check_prompt
from funreason_refine.judge.settings import SourceSettings
from funreason_refine.readers import InputConfig, InputStream
from funreason_refine.record import Outcome, Record
from funreason_refine.run_folder import ConfigChanged
from funreason_refine.selfrefine_summary import SelfRefineRound, SelfRefineSummary
from funreason_refine.summary import Summary
from funreason_refine.targets import funreason_messages
from funreason_refine.yield_target import Caps, Stop, Tally, budget_left, cost_stop, draw_size, select, stop_before

CANDIDATES = "candidates.jsonl"
SAMPLING_ERRORS = "sampling_errors.jsonl"
SUMMARY = "selfrefine.json"


def _candidate(record: Record, answer: Answer, round_no: int, sample: int, model: str) -> dict[str, Any]:
    # The sampled reasoning (a <think> block, a lone </think>, or the response's reasoning field) is the CoT.
    cot, rest = answer.reasoning, answer.text
    try:
        calls = calls_from_text(rest)
    except (ValueError, KeyError, TypeError):
        calls = None
    # Not a call list: the text goes in as it is; classification rules on it (a "[..." that does not
    # parse is a malformed answer, other text a text answer).
    answers = json.dumps([c.model_dump() for c in calls]) if calls is not None else rest.strip()
    row = {
        "id": f"{record.id}#r{round_no}s{sample}",
        "query": record.query,
        "tools": json.dumps(record.tools),
        "answers": answers,
        "meta": {"round": round_no, "sample": sample, "model": model, "query_id": record.id},
    }
    if cot:
        row["cot"] = cot
    return row


@dataclass(frozen=True)
class Sampled:
    """What drawing a round gave: candidates, failed calls, and whether max_cost stopped it."""

    candidates: int
    errors: int
    stopped: str | None = None  # max_cost reached while drawing: nothing is written, the round is not drawn


async def sample_round(
    draw: list[tuple[Record, int]], source: SourceSettings, round_no: int, folder: Path, budget: float | None = None
) -> Sampled:
    """Ask for each (query, sample number) of ``draw``; write folder/candidates.jsonl (and
    sampling_errors.jsonl for calls that failed). The answers are cached in ``folder``, so that a round
    drawn again after a kill or a cost stop pays for none twice; ``budget``: USD the calls may spend."""
    from funreason_refine.judge.cache import AnswerCache

    client = LLMClient(
        max_concurrency=source.max_concurrency,
        cache=AnswerCache(folder),
        max_cost=None if budget is None else max(budget, 0.0),
        batch_dir=folder.parent,
    )

    async def one(record: Record, k: int) -> dict[str, Any]:
        messages = funreason_messages(record.tools, [{"role": "user", "content": record.query}])
        try:
            if source.max_prompt_tokens is not None:  # a query too long for the source model is not sampled
                check_prompt("sample", source, client.count_prompt(source.model, messages))
            variant = f"round-{round_no}/sample-{k}"
            answer = await client.complete(source, messages, "sample", priority=record.index, variant=variant)
            if answer.cut_off:  # a truncated answer is no candidate; not kept in the cache: asked again next time
                client.forget(source, messages, variant)
                raise JudgeCallError(
                    f"{source.model}'s answer was cut off by the token limit (finish_reason length): raise the "
                    "[source] max_tokens"
                )
        except (JudgeCallError, PromptTooLong) as exc:
            return {"error": str(exc), "query_id": record.id, "sample": k}
        except BudgetStop as exc:
            return {"budget": str(exc)}
        return _candidate(record, answer, round_no, k, source.model)

    try:
        rows = await asyncio.gather(*(one(r, k) for r, k in draw))
    finally:
        await client.aclose()
    stopped = next((r["budget"] for r in rows if "budget" in r), None)
    if stopped is not None:
        return Sampled(0, 0, stopped)
    return _write_round(folder, [r for r in rows if "error" not in r], [r for r in rows if "error" in r])


def _write_round(folder: Path, candidates: list[dict[str, Any]], errors: list[dict[str, Any]]) -> Sampled:
    """The round's input exists whole or not at all; a round whose every call failed is not written (drawn
    again by the next run)."""
    failed = folder / SAMPLING_ERRORS
    if errors:
        failed.write_text("".join(json.dumps(e) + "\n" for e in errors), encoding="utf-8")
    else:
        failed.unlink(missing_ok=True)  # left by an earlier try at this round
    if candidates:
        tmp = folder / f"{CANDIDATES}.tmp"
        tmp.write_text("".join(json_line(r) + "\n" for r in candidates), encoding="utf-8")
        os.replace(tmp, folder / CANDIDATES)
    return Sampled(len(candidates), len(errors))


def _round_pipeline(pipeline: Pipeline, folder: Path, budget: float | None, recorded: str | None = None) -> Pipeline:
    """The pipeline over the round's candidates, into its folder; its judges may spend ``budget`` USD.
    ``recorded``: the candidates' path as the round's run.json spells it (a retry run from another folder)."""
    candidates = folder / CANDIDATES
    config = {**(pipeline.config or {}), "input": {"path": recorded or str(candidates), "format": "xlam"}}
    judging = pipeline.judging
    if judging is not None and budget is not None:
        judging = dataclasses.replace(judging, max_cost=max(budget, 0.0))
    return dataclasses.replace(
        pipeline,
        input=InputConfig(path=candidates, format="xlam", max_record_bytes=pipeline.input.max_record_bytes),
        output_dir=folder,
        config=config,
        config_hash=config_hash(config),
        judging=judging,
    )


def _spelled(folder: Path) -> str | None:
    """The round's candidates path as its run.json spells it (from the folder an earlier command ran in), so that
    the same command from elsewhere is the same configuration; None for a new round."""
    from funreason_refine.run_identity import read_run_file

    return _candidates_in(read_run_file(folder))


def _candidates_in(run_file: dict[str, Any]) -> str | None:
    """The candidates path a round's run.json records as its input; None when it records no such input."""
    path = ((run_file.get("config") or {}).get("input") or {}).get("path")
    return path if isinstance(path, str) and Path(path).name == CANDIDATES else None


def round_pipeline(run_dir: Path, run_file: dict[str, Any], judge_model: str | None) -> Pipeline | None:
    """The pipeline that refined a round of `refine selfrefine` in ``run_dir`` (for `refine retry`), or None when
    the folder is not such a round."""
    from funreason_refine.config import load_pipeline

    path, pipeline = _candidates_in(run_file), run_file.get("pipeline")
    is_round = run_dir.name.startswith("round-") and (run_dir / CANDIDATES).is_file()
    if not (is_round and path is not None and isinstance(pipeline, str)):
        return None
    return _round_pipeline(load_pipeline(Path(pipeline), judge_model=judge_model), run_dir, None, recorded=path)


def _query_ids(folder: Path, kind: str) -> set[str]:
    file = folder / f"{kind}.jsonl"
    if not file.exists():
        return set()
    return {line.get("meta", {}).get("query_id") for line in read_jsonl(file)}


def _lines(file: Path) -> list[dict[str, Any]]:
    return list(read_jsonl(file)) if file.exists() else []


class SelfRefinement:
    """The rounds of one self-refinement: the pool of queries, the caps, what each round did."""

    def __init__(self, pipeline: Pipeline, caps: Caps, progress: Progress | None = None):
        assert pipeline.source is not None
        self.pipeline, self.caps, self.progress = pipeline, caps, progress
        self.source = pipeline.source
        items = list(InputStream.open(pipeline.input, pipeline.input_name).items())
        records = [r for r in items if isinstance(r, Record)]
        self.unreadable = [f"{q.source.file}:{q.source.line}: {q.error}" for q in items if not isinstance(q, Record)]
        # Sampling a conversation's turns would need an environment that runs its tools: out of scope.
        queries = [r for r in records if not r.is_conversation]
        self.queries, self.conversations = len(queries), len(records) - len(queries)
        self.pool = {q.id: q for q in queries}  # in input order
        if len(self.pool) < len(queries):
            raise RefineError(_repeated_ids(queries))
        self.times_drawn: Counter[str] = Counter()
        self.held: set[str] = set()  # queries with a candidate in a round's errors.jsonl and no survivor
        self.hard_pool = any(s.on_fail == "hard_pool" for s in pipeline.stages)
        self.base = pipeline.output_dir
        self.rounds: list[SelfRefineRound] = []
        self.undrawn_spent = 0.0  # samples paid for in a round that was not drawn whole (max_cost, failures)

    def run(self) -> SelfRefineSummary:
        self.base.mkdir(parents=True, exist_ok=True)
        round_no = 1
        while (stop := self._next(round_no)) is None:
            round_no += 1
        return self._finish(stop)

    def _next(self, round_no: int) -> Stop | None:
        """Round ``round_no`` if nothing stops it before; why drawing stops, or None to go on."""
        tally = Tally.of(self.rounds)
        return stop_before(self.caps, tally, round_no, len(self.pool), len(self.held)) or self._round(round_no, tally)

    def _round(self, round_no: int, tally: Tally) -> Stop | None:
        """Draw (unless drawn before), refine and count one round; why drawing stops after it, or None."""
        folder = self.base / f"round-{round_no}"
        folder.mkdir(exist_ok=True)
        if not (folder / CANDIDATES).exists():
            draw = list(
                itertools.islice(self._pairs(), draw_size(self.caps, tally, len(self.pool) * self.source.samples))
            )
            budget = budget_left(self.caps, tally.spent + spent(folder))
            sampled = asyncio.run(sample_round(draw, self.source, round_no, folder, budget))
            self.undrawn_spent = 0.0 if sampled.candidates else spent(folder)
            if sampled.stopped is not None:
                assert self.caps.max_cost is not None
                return cost_stop(self.caps.max_cost, Tally(tally.drawn, tally.kept, tally.spent + self.undrawn_spent))
            if not sampled.candidates:
                return Stop(
                    "sampling",
                    f"every sampling call of round {round_no} failed ({folder / SAMPLING_ERRORS} says why): fix "
                    "the cause and run again to draw the round",
                )
        # What the round's folder spent already (its samples, an earlier try at its judging) the run counts itself.
        budget = budget_left(self.caps, tally.spent)
        refining = _round_pipeline(self.pipeline, folder, budget, recorded=_spelled(folder))
        result = self._refine(refining)
        self.rounds.append(self._count(round_no, folder, result.summary))
        if result.stopped is not None and self.caps.max_cost is not None:
            return cost_stop(self.caps.max_cost, Tally.of(self.rounds))
        return None

    def _refine(self, refining: Pipeline) -> RunResult:
        """Refine a round's candidates; a round refined before under another configuration is refused with
        selfrefine's own remedies (it has neither refine run's --accept-changes nor --fresh)."""
        try:
            return run_pipeline(refining, progress=self.progress)
        except ConfigChanged as exc:
            raise RunFolderError(
                f"{exc.what}\nThe rounds of {self.base} go on only under the configuration they were refined "
                f"with: put {self.pipeline.path} back as it was (the lines above say what changed), or start the "
                f"rounds over in a new folder (another [output] dir, or delete {self.base})."
            ) from None

    def _pairs(self) -> Iterator[tuple[Record, int]]:
        """Every candidate the pool offers: the queries drawn fewest times first, then in input order (a query
        that never survives is not drawn again before the others were drawn as often); each sample of each."""
        for query in sorted(self.pool.values(), key=lambda q: self.times_drawn[q.id]):
            for sample in range(self.source.samples):
                yield query, sample

    def _count(self, round_no: int, folder: Path, summary: Summary) -> SelfRefineRound:
        """The round's figures, and the pool after it (from the round's files: the same in a resumed run)."""
        candidates = _lines(folder / CANDIDATES)
        errors = _lines(folder / SAMPLING_ERRORS)
        drawn = {c["meta"]["query_id"] for c in candidates} | {e["query_id"] for e in errors}
        self.times_drawn.update(drawn)
        held = self._leave_pool(drawn, folder)
        return SelfRefineRound(
            round=round_no,
            queries_sampled=len(drawn),
            candidates=len(candidates),
            sampling_errors=len(errors),
            kept=summary.outcomes[Outcome.KEPT],
            errors=summary.outcomes[Outcome.ERRORS],
            errors_per_stage={
                name: sum(s.records_errored.values()) for name, s in summary.stages.items() if s.records_errored
            },
            queries_with_a_survivor=len(_query_ids(folder, Outcome.KEPT) & drawn),
            pool_after=len(self.pool),
            queries_held=held,
            pass_rate={
                name: round(s.passed / (s.passed + s.discarded), 4) if s.passed + s.discarded else None
                for name, s in summary.stages.items()
            },
            cost_usd=round(spent(folder), 6),  # a sum of many small floats, without its noise
            complete=summary.complete,
            run_dir=str(folder),
        )

    def _leave_pool(self, drawn: set[str], folder: Path) -> int:
        """Take out of the pool the queries of the round that have a survivor, or a candidate without a verdict
        (in errors.jsonl: held until `refine retry` redoes it, neither sampled and paid for again nor let go),
        and with a hard_pool stage every other one drawn whose samples did not go to hard.jsonl; returns how many
        were held."""
        survived = _query_ids(folder, Outcome.KEPT) & set(self.pool)
        held = (_query_ids(folder, Outcome.ERRORS) & set(self.pool)) - survived
        hard = _query_ids(folder, Outcome.HARD)
        for query_id in survived | held:
            self.pool.pop(query_id)
        self.held |= held
        if self.hard_pool:  # a query sampled this round stays only when its samples went to hard.jsonl
            self.pool = {q: r for q, r in self.pool.items() if q not in drawn or q in hard}
        return len(held)

    def _finish(self, stop: Stop) -> SelfRefineSummary:
        """selfrefine.json, and with a target the kept records trimmed to it (<dir>/kept.jsonl)."""
        tally, target = Tally.of(self.rounds), self.caps.target
        selected, trimmed = None, 0
        if target is not None:
            selected, trimmed = select(self.base, [Path(r.run_dir) for r in self.rounds], target)
        summary = SelfRefineSummary(
            model=self.source.model,
            samples=self.source.samples,
            queries=self.queries,
            conversations_skipped=self.conversations,
            unreadable=len(self.unreadable),
            unreadable_first=self.unreadable[0] if self.unreadable else None,
            target_kept=target,
            max_candidates=self.caps.max_candidates,
            max_cost=self.caps.max_cost,
            candidates_drawn=tally.drawn,
            kept=tally.kept,
            errors=sum(r.errors for r in self.rounds),
            selected=selected,
            trimmed=trimmed,
            missing=max(target - tally.kept, 0) if target is not None else 0,
            cost_usd=round(tally.spent + self.undrawn_spent, 6),
            cap_hit=stop.cap_hit,
            stopped_by=stop.by,
            stopped=stop.message,
            rounds=self.rounds,
        )
        tmp = self.base / f".{SUMMARY}.tmp"
        tmp.write_text(summary.model_dump_json(indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, self.base / SUMMARY)
        return summary


def _repeated_ids(queries: list[Record]) -> str:
    lines: dict[str, list[str]] = {}
    for q in queries:
        lines.setdefault(q.id, []).append(str(q.source.line))
    twice = [f"{rid!r} (lines {', '.join(at)})" for rid, at in lines.items() if len(at) > 1]
    return (
        f"refine selfrefine tells queries apart by their id, and {len(twice)} id(s) of the input name more than one "
        f"query: {'; '.join(twice[:5])}{' ...' if len(twice) > 5 else ''}. Give each query its own id"
    )


def selfrefine(
    pipeline: Pipeline, rounds: int | None = 2, progress: Progress | None = None, target: int | None = None
) -> SelfRefineSummary:
    """Run rounds until ``target`` candidates are kept (with a target), ``rounds`` rounds were run, a cap
    is reached or no query is left to sample; the summary is also <output dir>/selfrefine.json."""
    if pipeline.source is None:
        raise ConfigError(
            [
                f'{pipeline.path}: self-refinement needs a [source] table with sample_from = "MODEL" '
                "(the model that writes candidate answers) and samples = N"
            ]
        )
    caps = Caps(target, pipeline.source.max_candidates, pipeline.max_cost, rounds)
    if not caps.bounded:
        raise ConfigError(
            [
                f"{pipeline.path}: a yield target needs a cap, in case too few candidates are ever kept: set "
                "max_candidates = N in [source] (candidates drawn at most) or max_cost = USD, or give --rounds"
            ]
        )
    return SelfRefinement(pipeline, caps, progress).run()
