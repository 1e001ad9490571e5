"""report.md: the audit report as Markdown tables."""

from __future__ import annotations

from typing import Any

from funreason_refine.calibrate.worth_view import page_section
from funreason_refine.console import VERDICT_COUNTS
from funreason_refine.report.conversations import verdict_cell
from funreason_refine.report.scores import sparkline


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _servers(rows: list[dict[str, Any]]) -> str:
    return _table(
        ["model", "server", "calls", "errors", "429s", "p50 latency", "p95 latency", "out of rotation"],
        [
            [
                r["model"],
                r["server"],
                r["calls"],
                r["errors"],
                r["rate_limited"],
                r["p50"],
                r["p95"],
                r["out_of_rotation"],
            ]
            for r in rows
        ],
    )


def render_markdown(report: dict[str, Any]) -> str:
    o, facts, judge = report["outcomes"], report["facts"], report["judge"]
    total = report["funnel"][0]["records"]
    parts = [
        f"# Refinement report: {report['run_dir']}",
        "",
        f"{total} input records: {o.get('kept', 0)} kept, {o.get('discarded', 0)} discarded, "
        f"{o.get('quarantined', 0)} quarantined, {o.get('errors', 0)} errors."
        + ("" if report["summary"].get("complete", True) else f" Stopped early: {report['summary'].get('stopped')}.")
        + (f"\n\n**Target:** {report['target']}" if report.get("target") else "")
        + (f"\n\n**Warning:** {report['mixed']}." if report.get("mixed") else ""),
        "",
        "## Funnel",
        "",
        _table(["step", "records"], [[f["step"], f["records"]] for f in report["funnel"]]),
        "",
        "## Stages",
        "",
        _table(
            [
                "stage",
                "passed",
                "regenerated",
                "discarded",
                "truncated (kept)",
                "errors",
                "regenerations fixed / exhausted",
                "top reasons",
            ],
            [
                [
                    s["stage"],
                    s["passed"],
                    s["regenerated"],
                    s["discarded"],
                    s["truncated"],
                    s["errors"],
                    f"{s['regeneration']['fixed']} / {s['regeneration']['exhausted']}",
                    ", ".join(f"{r['reason']} ({r['records']})" for r in s["reasons"][:5]) or "-",
                ]
                for s in report["stages"]
            ],
        ),
        "",
        f"Verdict counts: {VERDICT_COUNTS}.",
    ]
    parts += _scores(report.get("scores", []))
    if judge.get("model") or judge.get("generator") or judge.get("calls") or judge.get("cached"):
        per = judge.get("per_stage", {})
        parts += [
            "",
            "## Judge",
            "",
            f"Model {judge.get('model') or '(no [judge] table: scorers only)'}: {judge['calls']} calls, "
            f"{judge['cached']} from the cache, {judge['retries']} retries, "
            f"{judge.get('protocol_reasks', 0)} protocol re-asks, ${judge['cost_usd']:.4f}.",
            "",
            _table(
                [
                    "stage",
                    "calls",
                    "cached",
                    "not verdicts",
                    "re-asks",
                    "prompt tokens",
                    "completion tokens",
                    "cost (USD)",
                ],
                [
                    [name, u["calls"], u["cached"], u.get("protocol_failures", 0), u.get("protocol_reasks", 0)]
                    + [u["prompt_tokens"], u["completion_tokens"], f"{u['cost_usd']:.4f}"]
                    for name, u in per.items()
                ],
            ),
        ]
        parts += [
            f"- not verdicts, {model}: {p['failures']} ({', '.join(f'{k} {v}' for k, v in p['problems'].items())}), "
            f"{p['reasks']} asked again"
            for model, p in (judge.get("protocol") or {}).items()
        ]
        parts += [f"- note: {n}" for n in judge.get("notes", [])]
    if report.get("endpoints"):
        parts += ["", "### Judge servers", "", _servers(report["endpoints"])]
    parts += _conversations(report.get("conversations"))
    parts += [
        "",
        "## Kept records",
        "",
        _table(
            ["fact", "value"],
            [
                ["records", facts["kept"]],
                ["answers (assistant turns)", facts["answers"]],
                ["text answers", facts["text_answers"]],
                ["calls per answer", ", ".join(f"{k}: {v}" for k, v in facts["calls_per_record"].items())],
                ["parallel-call share", f"{facts['parallel_share']:.1%}"],
                ["no-call share", f"{facts['no_call_share']:.1%}"],
                [
                    "tools per record (median / max)",
                    f"{facts['tools_per_record']['median']:g} / {facts['tools_per_record']['max']:g}",
                ],
                ["answers with a CoT", f"{facts['cot_share']:.1%}"],
                ["CoT characters (p10 / median / p90)", "{p10:g} / {median:g} / {p90:g}".format(**facts["cot_chars"])],
                [
                    "answer characters (p10 / median / p90)",
                    "{p10:g} / {median:g} / {p90:g}".format(**facts["answer_chars"]),
                ],
            ],
        ),
        "",
        "Most frequent functions:",
        "",
        _table(["function", "answers"], [[f["function"], f["records"]] for f in facts["top_functions"]]),
    ]
    parts += _dataset(report.get("dataset"))
    parts += _review(report.get("review"))
    parts += _worth(page_section(report.get("worth")))
    if report["examples"]["discarded"]:
        parts += ["", "## Discarded examples", ""]
        for e in report["examples"]["discarded"]:
            parts += [
                f"- **{e['stage']} / {e['reason']}** (record {e['index']}, id {_cell(e['id'])}): {_cell(e['message'])}",
                f"  - query: {_cell(e['query'])[:300]}",
                f"  - answer: `{_cell(e['answer'])[:300]}`",
            ]
            parts += [f"  - judge: {_cell(j)}" for j in e["judge_reasons"]]
    if report["examples"]["regenerated"]:
        parts += ["", "## Regenerated examples", ""]
        for e in report["examples"]["regenerated"]:
            for step in e["regenerations"]:
                parts += [
                    f"- record {e['index']} ({e['kind']}), {step['stage']} / {step['reason']}: "
                    f"{_cell(step['message'])}",
                    f"  - before: `{_cell(step['before'])[:300]}`",
                    f"  - after: `{_cell(e['answer'])[:300]}`",
                ]
    return "\n".join(parts) + "\n"


def _conversations(section: dict[str, Any] | None) -> list[str]:
    """Turns per conversation, verdicts per turn, where conversations were cut or let go, tool errors."""
    if not section:
        return []
    o, results = section["outcomes"], section["tool_results"]
    parts = [
        "",
        "## Conversations",
        "",
        f"{section['conversations']} conversations: {o['kept']} kept ({o['truncated']} of them truncated: kept up "
        f"to the turn before the one that failed), {o['discarded']} discarded, {o['errors']} errors.",
        "",
        "Assistant turns per conversation (a truncated conversation counts the turns it kept):",
        "",
        _table(
            ["assistant turns", "kept", "discarded", "errors"],
            [[r["turns"], r["kept"], r["discarded"], r["errors"]] for r in section["turns"]],
        ),
        "",
        "Verdicts per turn, passed / regenerated / discarded / truncated (a turn re-checked after a repair counts "
        "again):",
        "",
        _table(
            ["stage", *(f"turn {c}" for c in section["turn_columns"])],
            [
                [r["stage"], *(verdict_cell(r["turns"][c]) for c in section["turn_columns"])]
                for r in section["verdicts"]
            ],
        ),
    ]
    if section["left"]:
        parts += [
            "",
            "Where conversations were truncated or let go (turn: the assistant turn that failed):",
            "",
            _table(
                ["outcome", "stage", "reason", "turn", "conversations"],
                [[r["outcome"], r["stage"], r["reason"], r["turn"], r["conversations"]] for r in section["left"]],
            ),
        ]
    if results["results"]:
        parts += [
            "",
            f"Tool results in kept conversations: {results['errors']} of {results['results']} are error messages "
            f"(in {results['conversations_with_errors']} conversation(s)); they are kept as they are.",
            "",
            _table(
                ["tool", "results", "error results", "example error"],
                [[r["tool"], r["results"], r["errors"], r["example"] or "-"] for r in results["per_tool"]],
            ),
        ]
    return parts


def _scores(sections: list[dict[str, Any]]) -> list[str]:
    """Each scorer's scores: figures, and the histogram as a sparkline (``|`` at the threshold)."""
    if not sections:
        return []

    def v(value: Any) -> str:
        return "-" if value is None else f"{value:.4g}"

    rows = [
        [
            s["stage"],
            s["count"],
            v(s["mean"]),
            f"{v(s['lowest'])} to {v(s['highest'])}",
            v(s["threshold"]),
            s["low_score"],
            s["below_best"],
            f"`{sparkline(s)}`" if s["columns"] else "-",
        ]
        for s in sections
    ]
    headers = ["stage", "scores", "mean", "range", "threshold", "low_score", "below_best", "histogram"]
    return ["", "## Scores", "", _table(headers, rows)]


def _review(review: dict[str, Any] | None) -> list[str]:
    """The verdicts a person reviewed (refine review) and the precision they measure."""
    if not review:
        return []
    rows = [
        [f"discarded at {s['stage']}", b["decider"], b["records"], b["reviewed"], b["right"], b["wrong"], _pct(b)]
        for s in review["stages"]
        for b in s["by"]
    ]
    k = review["kept"]
    if k["reviewed"]:
        rows.append(["kept", "", k["kept"], k["reviewed"], k["right"], k["wrong"], _pct(k)])
    parts = [
        "",
        "## Reviewed by a person",
        "",
        f"{review['decisions']} decisions in overrides.jsonl. Precision: the share of reviewed verdicts the person "
        "marked right.",
        "",
        _table(["verdict", "decided by", "records", "reviewed", "right", "wrong", "precision"], rows),
    ]
    if review["stale"]:
        parts += ["", f"{review['stale']} decision(s) on verdicts the run no longer has are not counted."]
    return parts


def _worth(worth: dict[str, Any] | None) -> list[str]:
    """What the kept set is worth, corrected for a calibration's measured error (calibrate/worth.py)."""
    if worth is None:
        return []
    parts = ["", "## What the kept set is worth"] + [f"\n**Warning:** {_cell(w)}" for w in worth["warnings"]]
    if not worth["rows"]:
        return [*parts, "", "Not estimated: no calibrated candidate is the run's judge."]
    parts += ["", worth["explanation"], "", _table(list(worth["columns"]), [r["cells"] for r in worth["rows"]])]
    return parts + ([""] + [f"- {_cell(note)}" for note in worth["notes"]] if worth["notes"] else [])


def _pct(scores: dict[str, Any]) -> str:
    return f"{scores['precision']:.1%}" if scores["precision"] is not None else "-"


def _dataset(dataset: dict[str, Any] | None) -> list[str]:
    """The dataset audits: what they found, the call mix, its warnings, examples."""
    if not dataset:
        return []
    from funreason_refine.report.dataset import KINDS

    dups, cont, mix = dataset["duplicates"], dataset["contamination"], dataset["call_mix"]
    dropped = dataset["dropped"]
    near = dups["near"] if dups["near"] is not None else "not looked for"
    parts = [
        "",
        "## Dataset audits",
        "",
        _table(
            ["audit", "found", "dropped"],
            [
                ["records audited (kept by the stages)", dataset["audited"], sum(dropped.values())],
                ["exact duplicates", dups["exact"], dropped.get("duplicate", 0)],
                [f"near-duplicate queries (>= {dups['near_threshold']:g})", near, dropped.get("near_duplicate", 0)],
                [
                    f"contaminated ({len(cont['eval_sets'])} eval sets)",
                    cont["records"] if cont["eval_sets"] else "no eval sets",
                    dropped.get("contaminated", 0),
                ],
            ],
        ),
        "",
        f"Call mix of the kept set ({mix['records']} records):",
        "",
        _table(list(KINDS.values()), [[mix[kind] for kind in KINDS]]),
    ]
    if dataset["warnings"]:
        parts += ["", *(f"- **warning**: {w}" for w in dataset["warnings"])]
    if dups["examples"]:
        parts += ["", "Duplicates (first ones):", ""]
        parts += [
            f"- record {e['index']} ({_cell(e['id'])}), {e['kind']} (similarity {e['similarity']:.2f}) "
            f"of record {e['of']}"
            + (f" ({e['first']['id']})" if e.get("first") else "")
            + (", dropped" if e["dropped"] else "")
            + f": {_cell(e['query'])}"
            for e in dups["examples"]
        ]
    if cont["examples"]:
        parts += ["", "Contaminated (first ones):", ""]
        parts += [
            f"- record {e['index']} ({_cell(e['id'])}), {e['overlap']:.0%} of its {cont['ngram']}-word sequences in "
            f"{e.get('eval_set')}, item {e.get('eval_id')}"
            + (", dropped" if e["dropped"] else "")
            + f": {_cell(e['query'])}"
            for e in cont["examples"]
        ]
    return parts
