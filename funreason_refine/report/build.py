"""The audit report as data: funnel, stages, regenerations, judge usage, examples, kept-set facts."""

from __future__ import annotations

from typing import Any

from funreason_refine.record import Action, Outcome
from funreason_refine.report.conversations import conversation_report
from funreason_refine.report.data import RunData, clean, line_answer_text
from funreason_refine.report.dataset import dataset_section
from funreason_refine.report.review import review_summary
from funreason_refine.report.scores import score_sections
from funreason_refine.summary import JudgeSection, Summary

EXAMPLES_PER_REASON = 2
REASONS_WITH_EXAMPLES = 3


def _quantiles(series: Any) -> dict[str, float]:
    if series.len() == 0:
        return {"p10": 0, "median": 0, "p90": 0, "max": 0, "mean": 0}
    return {
        "p10": float(series.quantile(0.1)),
        "median": float(series.median()),
        "p90": float(series.quantile(0.9)),
        "max": float(series.max()),
        "mean": round(float(series.mean()), 1),
    }


def _histogram(series: Any, bins: int = 12) -> list[dict[str, Any]]:
    """Equal-width bins from 0 to the 99th percentile; the last bin takes the rest."""
    if series.len() == 0:
        return []
    top = max(float(series.quantile(0.99)), 1.0)
    width = max(int(top / bins) + 1, 1)
    counts = [0] * bins
    for value in series.to_list():
        counts[min(int(value // width), bins - 1)] += 1
    return [
        {"from": i * width, "to": (i + 1) * width if i < bins - 1 else None, "count": c} for i, c in enumerate(counts)
    ]


def target_note(summary: Summary) -> str | None:
    """What a run asked with ``--target-kept`` came to, in words; None for a run without a target."""
    target = summary.target
    if target is None:
        return None
    if target.reached:
        return f"{target.kept} kept records asked for (--target-kept): reached. {target.stopped}"
    return f"{target.kept} kept records asked for (--target-kept): {target.missing} missing. {target.stopped}"


def build_report(run: RunData) -> dict[str, Any]:
    import polars as pl

    records, steps, summary = run.records, run.steps, run.summary
    stage_names = list(summary.stages)
    total = records.height
    quarantined = records.filter(pl.col("kind") == Outcome.QUARANTINED).height

    # The funnel: records still in after reading and after each stage.
    left = total - quarantined
    funnel = [{"step": "input", "records": total}, {"step": "readable", "records": left}]
    errors_by_stage = dict(records.filter(pl.col("kind") == Outcome.ERRORS).group_by("stage").len().iter_rows())
    discards_by_stage = dict(
        records.filter(pl.col("kind").is_in(["discarded", "hard"])).group_by("stage").len().iter_rows()
    )
    left -= errors_by_stage.get("generate", 0)
    for stage in stage_names:
        if stage == "generate":
            continue
        left -= discards_by_stage.get(stage, 0) + errors_by_stage.get(stage, 0)
        funnel.append({"step": stage, "records": left})
    kept = records.filter(pl.col("kind") == Outcome.KEPT)
    funnel.append({"step": "kept", "records": kept.height})

    regenerated = steps.filter(pl.col("verdict") == Action.REGENERATE).select("index", "stage").unique()
    stages = []
    for stage in stage_names:
        counts = summary.stages[stage]
        ranked = (
            records.filter((pl.col("kind") == Outcome.DISCARDED) & (pl.col("stage") == stage))
            .group_by("reason")
            .len()
            .sort(["len", "reason"], descending=[True, False])
        )
        regen = regenerated.filter(pl.col("stage") == stage).join(
            records.select("index", "kind", "stage"), on="index", how="left", suffix="_final"
        )
        exhausted = regen.filter((pl.col("kind") == Outcome.DISCARDED) & (pl.col("stage_final") == stage)).height
        failed = regen.filter((pl.col("kind") == Outcome.ERRORS) & (pl.col("stage_final") == stage)).height
        usage = summary.judge.per_stage.get(stage)
        stages.append(
            {
                "stage": stage,
                "passed": counts.passed,
                "regenerated": counts.regenerated,
                "discarded": counts.discarded,
                "truncated": counts.truncated,
                "errors": errors_by_stage.get(stage, 0),
                "reasons": [{"reason": r, "records": n} for r, n in ranked.iter_rows()],
                "regeneration": {
                    "records": regen.height,
                    "fixed": regen.height - exhausted - failed,
                    "exhausted": exhausted,
                    "errors": failed,
                },
                "judge": usage.model_dump() if usage is not None else None,
            }
        )

    examples = _examples(run, stages)
    answers = run.answers  # a conversation counts each assistant turn's answer, not only its last turn's
    calls = answers.filter(~pl.col("text_answer"))
    with_cot = answers.filter(pl.col("cot_chars") > 0)
    calls_per_record = dict(
        calls.with_columns(pl.col("n_calls").clip(upper_bound=4)).group_by("n_calls").len().iter_rows()
    )
    top_functions = (
        calls.select(pl.col("functions").list.unique().explode())  # an answer calling a function twice: one answer
        .drop_nulls()
        .group_by("functions")
        .len()
        .sort(["len", "functions"], descending=[True, False])
        .head(10)
    )
    facts = {
        "kept": kept.height,
        "answers": answers.height,
        "text_answers": answers.height - calls.height,
        "calls_per_record": {("4+" if k == 4 else str(k)): v for k, v in sorted(calls_per_record.items())},
        **_call_shares(summary, calls),
        "tools_per_record": _quantiles(kept["n_tools"]),
        "top_functions": [{"function": f, "records": n} for f, n in top_functions.iter_rows()],
        "cot_chars": _quantiles(with_cot["cot_chars"]),
        "cot_share": round(with_cot.height / answers.height, 4) if answers.height else 0.0,
        "cot_histogram": _histogram(with_cot["cot_chars"]),
        "answer_chars": _quantiles(answers["answer_chars"]),
        "answer_histogram": _histogram(answers["answer_chars"]),
    }
    return {
        "run_dir": str(run.path),
        "summary": summary.as_dict(),
        "mixed": summary.mixed_note(),
        "target": target_note(summary),
        "funnel": funnel,
        "stages": stages,
        "scores": score_sections(summary),
        "outcomes": summary.outcomes,
        "judge": summary.judge.model_dump(),
        "endpoints": endpoint_rows(summary.judge),
        "examples": examples,
        "facts": facts,
        "quarantined": quarantined,
        "review": review_summary(run),
        "conversations": conversation_report(run),
        "dataset": dataset_section(summary, records),
    }


def _call_shares(summary: Summary, calls: Any) -> dict[str, float]:
    """Parallel and no-call shares of the kept answers that call (or decline to call) functions: per
    assistant turn (a conversation has several), from the audits' call mix when the run has it."""
    import polars as pl

    turns = summary.dataset.call_mix.turns if summary.dataset is not None else None
    if turns:
        calling = sum(turns.get(k, 0) for k in ("no_call", "one_call", "parallel", "several_functions"))
        several = turns.get("parallel", 0) + turns.get("several_functions", 0)
        return {
            "parallel_share": round(several / calling, 4) if calling else 0.0,
            "no_call_share": round(turns.get("no_call", 0) / calling, 4) if calling else 0.0,
        }
    n = calls.height
    return {
        "parallel_share": round(calls.filter(pl.col("n_calls") > 1).height / n, 4) if n else 0.0,
        "no_call_share": round(calls.filter(pl.col("n_calls") == 0).height / n, 4) if n else 0.0,
    }


def endpoint_rows(judge: JudgeSection) -> list[dict[str, Any]]:
    """The judge servers of the summary (per model, a list of servers) as table rows."""
    rows = []
    for model, servers in (judge.endpoints or {}).items():
        for server in servers:
            rest = server.out_of_rotation_s
            rows.append(
                {
                    "model": model,
                    "server": server.api_base,
                    "calls": server.calls,
                    "errors": server.errors,
                    "rate_limited": server.rate_limited,
                    "p50": _seconds(server.latency_p50_s),
                    "p95": _seconds(server.latency_p95_s),
                    "out_of_rotation": f"{rest:.1f} s ({server.times_out_of_rotation}x)" if rest else "-",
                }
            )
    return rows


def _seconds(value: Any) -> str:
    return f"{value:.2f} s" if isinstance(value, int | float) else "-"


def _examples(run: RunData, stages: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """A few discarded records per top reason, and regenerated records with what they replaced."""
    wanted = {(s["stage"], r["reason"]) for s in stages for r in s["reasons"][:REASONS_WITH_EXAMPLES]}
    taken: dict[tuple[str, str], int] = {}
    discarded: list[dict[str, Any]] = []
    for r in run.lines("discarded"):
        key = (r.get("stage"), r.get("reason"))
        if key in wanted and taken.get(key, 0) < EXAMPLES_PER_REASON:
            taken[key] = taken.get(key, 0) + 1
            discarded.append(_example(r))
        if len(taken) == len(wanted) and all(v >= EXAMPLES_PER_REASON for v in taken.values()):
            break
    regenerated: list[dict[str, Any]] = []
    for kind in (Outcome.KEPT, Outcome.DISCARDED):
        for r in run.lines(kind):
            steps = [s for s in r.get("trail", []) if s.get("verdict") == Action.REGENERATE and s.get("before")]
            if steps:
                regenerated.append(
                    {**_example(r), "kind": kind, "regenerations": [{**s, "before": clean(s["before"])} for s in steps]}
                )
            if len(regenerated) >= 6:
                break
    return {"discarded": discarded, "regenerated": regenerated}


def _example(r: dict[str, Any]) -> dict[str, Any]:
    judged = [s for s in r.get("trail", []) if s.get("judge") != "rules" and s.get("message")]
    return {
        "index": r["index"],
        "id": clean(r.get("id")),
        "stage": r.get("stage"),
        "reason": r.get("reason"),
        "message": clean(r.get("message")),
        "query": clean(r.get("query", "")),
        "answer": clean(line_answer_text(r)),
        "cot": clean(r.get("cot") or ""),
        "judge_reasons": [clean(f"{s['stage']}: {s['message']}") for s in judged],
    }
