"""Self-refinement (the paper's loop): a model samples answers, the pipeline keeps the good ones.

Each round writes ``round-<n>/candidates.jsonl`` (xLAM records with a ``meta`` of round, sample,
model and query) and runs the pipeline on it into the same folder. A query leaves the pool once
a sample survives. With a stage whose ``on_fail`` is ``hard_pool``, the next round samples only
the queries whose samples went to ``hard.jsonl`` (the paper's hard-data re-sampling); without
one, every query without a survivor is sampled again.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
from pathlib import Path
from typing import Any

from funreason_refine.config import Pipeline, config_hash
from funreason_refine.engine import Progress, run_pipeline
from funreason_refine.errors import ConfigError
from funreason_refine.jsonl import read_jsonl
from funreason_refine.judge.answer import Answer
from funreason_refine.judge.client import JudgeCallError, LLMClient
from funreason_refine.judge.limits import PromptTooLong, check_prompt
from funreason_refine.judge.settings import SourceSettings
from funreason_refine.readers import InputConfig, InputStream
from funreason_refine.record import Outcome, Record
from funreason_refine.targets import calls_from_text, funreason_messages


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


async def sample_round(
    queries: list[Record], source: SourceSettings, round_no: int, folder: Path
) -> dict[str, int | None]:
    """Write folder/candidates.jsonl (and sampling_errors.jsonl for calls that failed)."""
    from funreason_refine.judge.cache import AnswerCache

    client = LLMClient(
        max_concurrency=source.max_concurrency, cache=AnswerCache(folder.parent), batch_dir=folder.parent
    )

    async def one(record: Record, k: int) -> dict[str, Any]:
        messages = funreason_messages(record.tools, [{"role": "user", "content": record.query}])
        try:
            if source.max_prompt_tokens is not None:  # a query too long for the source model is not sampled
                check_prompt("sample", source, client.count_prompt(source.model, messages))
            answer = await client.complete(
                source, messages, "sample", priority=record.index, variant=f"round-{round_no}/sample-{k}"
            )
        except (JudgeCallError, PromptTooLong) as exc:
            return {"error": str(exc), "query_id": record.id, "sample": k}
        return _candidate(record, answer, round_no, k, source.model)

    try:
        rows = await asyncio.gather(*(one(r, k) for r in queries for k in range(source.samples)))
    finally:
        await client.aclose()
    candidates = [r for r in rows if "error" not in r]
    errors = [r for r in rows if "error" in r]
    tmp = folder / "candidates.jsonl.tmp"
    tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in candidates), encoding="utf-8")
    if errors:
        (folder / "sampling_errors.jsonl").write_text("".join(json.dumps(e) + "\n" for e in errors), encoding="utf-8")
    os.replace(tmp, folder / "candidates.jsonl")  # the round's input exists whole or not at all
    return {
        "candidates": len(candidates),
        "sampling_errors": len(errors),
        "tokens": client.total.prompt_tokens + client.total.completion_tokens,
    }


def _round_pipeline(pipeline: Pipeline, folder: Path) -> Pipeline:
    candidates = folder / "candidates.jsonl"
    config = {**(pipeline.config or {}), "input": {"path": str(candidates), "format": "xlam"}}
    return dataclasses.replace(
        pipeline,
        input=InputConfig(path=candidates, format="xlam", max_record_bytes=pipeline.input.max_record_bytes),
        output_dir=folder,
        config=config,
        config_hash=config_hash(config),
    )


def _query_ids(folder: Path, kind: str) -> set[str]:
    file = folder / f"{kind}.jsonl"
    if not file.exists():
        return set()
    return {line.get("meta", {}).get("query_id") for line in read_jsonl(file)}


def selfrefine(pipeline: Pipeline, rounds: int, progress: Progress | None = None) -> list[dict[str, Any]]:
    """Run up to ``rounds`` rounds; returns a summary per round (also in <output dir>/selfrefine.json)."""
    if pipeline.source is None:
        raise ConfigError(
            [
                f'{pipeline.path}: self-refinement needs a [source] table with sample_from = "MODEL" '
                "(the model that writes candidate answers) and samples = N"
            ]
        )
    source = pipeline.source
    stream = InputStream.open(pipeline.input)
    records = [r for r in stream.items() if isinstance(r, Record)]
    # Sampling a conversation's turns would need an environment that runs its tools: out of scope.
    queries = [r for r in records if not r.is_conversation]
    pool = {q.id: q for q in queries}
    hard_pool = any(s.on_fail == "hard_pool" for s in pipeline.stages)
    base = pipeline.output_dir
    base.mkdir(parents=True, exist_ok=True)
    summaries = []
    for round_no in range(1, rounds + 1):
        if not pool:
            break
        folder = base / f"round-{round_no}"
        folder.mkdir(exist_ok=True)
        sampled = sorted(pool)
        sampling: dict[str, int | None] = {"candidates": None, "sampling_errors": 0}
        if not (folder / "candidates.jsonl").exists():
            sampling = asyncio.run(sample_round([pool[q] for q in sampled], source, round_no, folder))
        result = run_pipeline(_round_pipeline(pipeline, folder), progress=progress)
        survived = _query_ids(folder, Outcome.KEPT) & set(pool)
        for query_id in survived:
            pool.pop(query_id)
        hard = _query_ids(folder, Outcome.HARD) & set(pool)
        if hard_pool:
            pool = {q: pool[q] for q in sorted(hard)}
        stages = {
            name: round(s.passed / (s.passed + s.discarded), 4) if s.passed + s.discarded else None
            for name, s in result.summary.stages.items()
        }
        summaries.append(
            {
                "round": round_no,
                "queries_sampled": len(sampled),
                "candidates": result.summary.records,
                "sampling_errors": sampling["sampling_errors"],
                "kept": result.summary.outcomes[Outcome.KEPT],
                "queries_with_a_survivor": len(survived),
                "pool_after": len(pool),
                "pass_rate": stages,
                "run_dir": str(folder),
            }
        )
    (base / "selfrefine.json").write_text(
        json.dumps(
            {
                "model": source.model,
                "samples": source.samples,
                "queries": len(queries),
                "conversations_skipped": len(records) - len(queries),
                "rounds": summaries,
            },
            indent=2,
        )
        + "\n",
        encoding="utf-8",
    )
    return summaries
