"""report.html: one self-contained page (inline CSS and SVG; no script, no network)."""

from __future__ import annotations

from html import escape
from typing import Any

CSS = """body{font:14px/1.45 system-ui,-apple-system,Segoe UI,sans-serif;margin:2rem auto;max-width:1100px;color:#1d2330;padding:0 1rem}
h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #dde2ea;padding-bottom:.3rem}
table{border-collapse:collapse;margin:.5rem 0}td,th{border:1px solid #dde2ea;padding:.25rem .6rem;text-align:left;vertical-align:top}
th{background:#f3f5f9}td.n{text-align:right;font-variant-numeric:tabular-nums}.cards{display:flex;gap:1rem;flex-wrap:wrap}
.card{border:1px solid #dde2ea;border-radius:6px;padding:.6rem 1rem;min-width:9rem}.card b{display:block;font-size:1.4rem}
code{background:#f3f5f9;padding:.1rem .3rem;border-radius:3px;white-space:pre-wrap;word-break:break-word}
.ex{border-left:3px solid #c9d1de;padding:.2rem .8rem;margin:.6rem 0}.muted{color:#667085}
.warn{background:#fff4e5;border-left:3px solid #f08c00;padding:.3rem .8rem}"""
COLORS = {"kept": "#2f9e44", "discarded": "#e8590c", "quarantined": "#ae3ec9", "errors": "#e03131", "hard": "#1c7ed6"}


def _n(key: str, value: Any) -> str:
    return f'<td class="n" data-key="{escape(key)}">{escape(str(value))}</td>'


def _bars(items: list[tuple[str, int]], key_prefix: str, color: str = "#4263eb", width: int = 640) -> str:
    """A horizontal bar chart as inline SVG."""
    top = max((v for _, v in items), default=0) or 1
    row, label_w = 26, 150
    parts = [f'<svg role="img" width="{width}" height="{row * len(items) + 6}" xmlns="http://www.w3.org/2000/svg">']
    for i, (label, value) in enumerate(items):
        w = int((width - label_w - 70) * value / top)
        y = i * row + 4
        parts.append(
            f'<text x="0" y="{y + 15}" font-size="12">{escape(label)}</text>'
            f'<rect x="{label_w}" y="{y}" width="{max(w, 1)}" height="18" fill="{color}" rx="2"/>'
            f'<text x="{label_w + w + 6}" y="{y + 14}" font-size="12" data-key="{escape(key_prefix + label)}">'
            f"{value}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _hist(bins: list[dict[str, Any]], key: str) -> str:
    items = [(f"{b['from']}-{b['to'] if b['to'] is not None else ''}", b["count"]) for b in bins]
    return _bars(items, key + ".", color="#748ffc") if items else '<p class="muted">none</p>'


def _servers(rows: list[dict[str, Any]]) -> str:
    """The judge servers: calls, errors, 429s, latency, time out of rotation."""
    head = "".join(
        f"<th>{h}</th>"
        for h in ("model", "server", "calls", "errors", "429s", "p50 latency", "p95 latency", "out of rotation")
    )
    body = []
    for r in rows:
        key = f"servers.{r['model']}.{r['server']}"
        body.append(
            f"<tr><td>{escape(r['model'])}</td><td>{escape(r['server'])}</td>"
            f"{_n(key + '.calls', r['calls'])}{_n(key + '.errors', r['errors'])}"
            f"<td class=n>{r['rate_limited']}</td><td class=n>{r['p50']}</td><td class=n>{r['p95']}</td>"
            f"<td class=n>{escape(r['out_of_rotation'])}</td></tr>"
        )
    return f"<h3>Judge servers</h3><table><tr>{head}</tr>{''.join(body)}</table>"


def render_html(report: dict[str, Any]) -> str:
    o, facts, judge, summary = report["outcomes"], report["facts"], report["judge"], report["summary"]
    total = report["funnel"][0]["records"]
    out = [
        f"<!doctype html><html lang=en><head><meta charset=utf-8><title>Refinement report</title><style>{CSS}</style>"
        f"</head><body><h1>Refinement report</h1><p class=muted>{escape(report['run_dir'])} · config "
        f"{escape(str(summary.get('config_hash', ''))[:12])} · {escape(str(summary.get('timings', {}).get('finished', '')))}</p>"
    ]
    if not summary.get("complete", True):
        out.append(f"<p><b>Stopped early:</b> {escape(str(summary.get('stopped')))}</p>")
    out.append(
        "<div class=cards>"
        + f'<div class=card>input<b data-key="input.records">{total}</b></div>'
        + "".join(
            f'<div class=card style="border-color:{COLORS[k]}">{k}<b data-key="outcomes.{k}">{o.get(k, 0)}</b></div>'
            for k in o
        )
        + "</div>"
    )
    out.append("<h2>Funnel</h2>" + _bars([(f["step"], f["records"]) for f in report["funnel"]], "funnel."))
    out.append(
        "<h2>Stages</h2><table><tr><th>stage</th><th>passed</th><th>regenerated</th><th>discarded</th>"
        "<th>errors</th><th>regenerations fixed</th><th>exhausted</th><th>reasons (records)</th></tr>"
    )
    for s in report["stages"]:
        name = s["stage"]
        reasons = (
            "<br>".join(
                f'{escape(r["reason"])} <span data-key="reasons.{escape(name)}.{escape(r["reason"])}">'
                f"{r['records']}</span>"
                for r in s["reasons"]
            )
            or "-"
        )
        out.append(
            f"<tr><td>{escape(name)}</td>{_n(f'stages.{name}.passed', s['passed'])}"
            f"{_n(f'stages.{name}.regenerated', s['regenerated'])}{_n(f'stages.{name}.discarded', s['discarded'])}"
            f"{_n(f'errors.{name}', s['errors'])}{_n(f'regeneration.{name}.fixed', s['regeneration']['fixed'])}"
            f"{_n(f'regeneration.{name}.exhausted', s['regeneration']['exhausted'])}<td>{reasons}</td></tr>"
        )
    out.append("</table><p class=muted>Verdict counts: a record re-checked after a repair counts again.</p>")
    if judge.get("model") or judge.get("generator"):
        out.append(
            f"<h2>Judge</h2><p>{escape(str(judge.get('model')))}: <span data-key='judge.calls'>{judge['calls']}</span> "
            f"calls, {judge['cached']} from the cache, {judge['retries']} retries, "
            f"$<span data-key='judge.cost_usd'>{judge['cost_usd']:.4f}</span></p><table><tr><th>stage</th><th>calls</th>"
            "<th>cached</th><th>prompt tokens</th><th>completion tokens</th><th>cost (USD)</th></tr>"
        )
        for name, u in judge.get("per_stage", {}).items():
            out.append(
                f"<tr><td>{escape(name)}</td>{_n(f'judge.{name}.calls', u['calls'])}{_n(f'judge.{name}.cached', u['cached'])}"
                f"{_n(f'judge.{name}.prompt_tokens', u['prompt_tokens'])}"
                f"{_n(f'judge.{name}.completion_tokens', u['completion_tokens'])}<td class=n>{u['cost_usd']:.4f}</td></tr>"
            )
        out.append("</table>" + "".join(f"<p class=muted>note: {escape(n)}</p>" for n in judge.get("notes", [])))
    if report.get("endpoints"):
        out.append(_servers(report["endpoints"]))
    out.append(_conversations(report.get("conversations")))
    f = facts
    out.append(
        "<h2>Kept records</h2><table>"
        f"<tr><td>records</td>{_n('facts.kept', f['kept'])}</tr><tr><td>text answers</td>{_n('facts.text_answers', f['text_answers'])}</tr>"
        f"<tr><td>parallel-call share</td><td class=n>{f['parallel_share']:.1%}</td></tr>"
        f"<tr><td>no-call share</td><td class=n>{f['no_call_share']:.1%}</td></tr>"
        f"<tr><td>tools per record (median / max)</td><td class=n>{f['tools_per_record']['median']:g} / {f['tools_per_record']['max']:g}</td></tr>"
        f"<tr><td>records with a CoT</td><td class=n>{f['cot_share']:.1%}</td></tr></table>"
        "<h3>Calls per record</h3>"
        + _bars([(k, v) for k, v in f["calls_per_record"].items()], "calls.")
        + "<h3>Most frequent functions</h3>"
        + _bars([(t["function"], t["records"]) for t in f["top_functions"]], "functions.")
        + "<h3>CoT length (characters)</h3>"
        + _hist(f["cot_histogram"], "cot")
        + "<h3>Answer length (characters)</h3>"
        + _hist(f["answer_histogram"], "answer")
    )
    out.append(_dataset(report.get("dataset")))
    out.append(_review(report.get("review")))
    if report["examples"]["discarded"]:
        out.append("<h2>Discarded examples</h2>")
        for e in report["examples"]["discarded"]:
            judged = "".join(f"<div>judge: {escape(j)}</div>" for j in e["judge_reasons"])
            out.append(
                f"<div class=ex><b>{escape(str(e['stage']))} / {escape(str(e['reason']))}</b> · record {e['index']} "
                f"(id {escape(str(e['id']))})<div>{escape(str(e['message']))}</div><div>query: {escape(e['query'][:400])}</div>"
                f"<div>answer: <code>{escape(e['answer'][:400])}</code></div>{judged}</div>"
            )
    if report["examples"]["regenerated"]:
        out.append(
            "<h2>Regenerated examples</h2><table><tr><th>record</th><th>stage / reason</th><th>rejected</th>"
            "<th>regenerated</th></tr>"
        )
        for e in report["examples"]["regenerated"]:
            for step in e["regenerations"]:
                out.append(
                    f"<tr><td>{e['index']} ({escape(e['kind'])})</td><td>{escape(step['stage'])} / "
                    f"{escape(str(step['reason']))}<br><span class=muted>{escape(str(step['message']))}</span></td>"
                    f"<td><code>{escape(step['before'][:400])}</code></td><td><code>{escape(e['answer'][:400])}</code></td></tr>"
                )
        out.append("</table>")
    out.append("</body></html>")
    return "".join(out)


def _conversations(section: dict[str, Any] | None) -> str:
    """Turns per conversation, verdicts per turn, where conversations were cut or let go, tool errors."""
    if not section:
        return ""
    o, cols = section["outcomes"], section["turn_columns"]
    out = [
        f"<h2>Conversations</h2><p><span data-key='conv.conversations'>{section['conversations']}</span> conversations: "
        f"<span data-key='conv.outcomes.kept'>{o['kept']}</span> kept (<span data-key='conv.outcomes.truncated'>"
        f"{o['truncated']}</span> of them truncated: kept up to the turn before the one that failed), "
        f"<span data-key='conv.outcomes.discarded'>{o['discarded']}</span> discarded, "
        f"<span data-key='conv.outcomes.errors'>{o['errors']}</span> errors.</p>"
        "<h3>Assistant turns per conversation</h3><table><tr><th>assistant turns</th><th>kept</th><th>discarded</th>"
        "<th>errors</th></tr>"
    ]
    for r in section["turns"]:
        out.append(
            f"<tr><td>{r['turns']}</td>"
            + "".join(_n(f"conv.turns.{r['turns']}.{k}", r[k]) for k in ("kept", "discarded", "errors"))
            + "</tr>"
        )
    out.append(
        "</table><p class=muted>A truncated conversation counts the turns it kept.</p><h3>Verdicts per turn</h3>"
        "<p class=muted>passed / regenerated / discarded; a turn re-checked after a repair counts again.</p><table><tr><th>stage</th>"
        + "".join(f"<th>turn {c}</th>" for c in cols)
        + "</tr>"
    )
    for r in section["verdicts"]:
        cells = "".join(
            "<td class=n>"
            + " / ".join(
                f"<span data-key='conv.verdicts.{escape(r['stage'])}.{c}.{v}'>{n}</span>"
                for v, n in r["turns"][c].items()
            )
            + "</td>"
            for c in cols
        )
        out.append(f"<tr><td>{escape(r['stage'])}</td>{cells}</tr>")
    out.append("</table>")
    if section["left"]:
        out.append(
            "<h3>Where conversations were truncated or let go</h3><table><tr><th>outcome</th><th>stage</th><th>reason</th>"
            "<th>turn that failed</th><th>conversations</th></tr>"
        )
        for r in section["left"]:
            key = f"conv.left.{r['outcome']}.{r['stage']}.{r['reason']}.{r['turn']}"
            out.append(
                f"<tr><td>{r['outcome']}</td><td>{escape(r['stage'])}</td><td>{escape(r['reason'])}</td>"
                f"<td class=n>{r['turn']}</td>{_n(key, r['conversations'])}</tr>"
            )
        out.append("</table>")
    return "".join(out) + _tool_errors(section["tool_results"])


def _tool_errors(results: dict[str, Any]) -> str:
    """Tool results that are error messages, per tool: counted, and kept (the model learns to read them)."""
    if not results["results"]:
        return ""
    rows = []
    for r in results["per_tool"]:
        tool = escape(r["tool"])
        example = f"<code>{escape(r['example'])}</code>" if r["example"] else "-"
        rows.append(
            f"<tr><td>{tool}</td>{_n(f'conv.tool_results.{tool}', r['results'])}"
            f"{_n(f'conv.tool_errors.{tool}', r['errors'])}<td>{example}</td></tr>"
        )
    return (
        f"<h3>Tool results that are error messages</h3><p><span data-key='conv.tool_errors'>{results['errors']}</span> of "
        f"<span data-key='conv.tool_results'>{results['results']}</span> tool results in kept conversations are error "
        f"messages (in <span data-key='conv.conversations_with_errors'>{results['conversations_with_errors']}</span> "
        "conversation(s)); they are kept as they are: the model learns to read an error and go on.</p><table><tr><th>tool</th>"
        f"<th>results</th><th>error results</th><th>example error</th></tr>{''.join(rows)}</table>"
    )


def _review_row(label: str, decider: str, records: int, scores: dict[str, Any], key: str) -> str:
    value = f"{scores['precision']:.1%}" if scores["precision"] is not None else "-"
    return (
        f"<tr><td>{escape(label)}</td><td>{escape(decider)}</td><td class=n>{records}</td>"
        f"{_n(key + '.reviewed', scores['reviewed'])}<td class=n>{scores['right']}</td><td class=n>{scores['wrong']}</td>"
        f'<td class="n" data-key="{escape(key)}.precision">{value}</td></tr>'
    )


def _review(review: dict[str, Any] | None) -> str:
    """The verdicts a person reviewed (refine review) and the precision they measure."""
    if not review:
        return ""
    rows = "".join(
        _review_row(
            f"discarded at {s['stage']}", b["decider"], s["discarded"], b, f"review.{s['stage']}.{b['decider']}"
        )
        for s in review["stages"]
        for b in s["by"]
    )
    k = review["kept"]
    if k["reviewed"]:
        rows += _review_row("kept", "", k["kept"], k, "review.kept")
    stale = f"<p class=muted>{review['stale']} decision(s) on verdicts the run no longer has are not counted.</p>"
    return (
        f"<h2>Reviewed by a person</h2><p>{review['decisions']} decisions in overrides.jsonl. Precision: the share "
        "of reviewed verdicts the person marked right.</p><table><tr><th>verdict</th><th>decided by</th><th>records</th>"
        f"<th>reviewed</th><th>right</th><th>wrong</th><th>precision</th></tr>{rows}</table>"
        + (stale if review["stale"] else "")
    )


def _dataset(dataset: dict[str, Any] | None) -> str:
    """The dataset audits: what they found, the call mix of the kept set, its warnings, examples."""
    if not dataset:
        return ""
    from funreason_refine.report.dataset import KINDS

    dups, cont, mix = dataset["duplicates"], dataset["contamination"], dataset["call_mix"]
    near = dups["near"] if dups["near"] is not None else "-"
    contaminated = cont["records"] if cont["eval_sets"] else "-"
    cards = [
        ("records audited", "dataset.audited", dataset["audited"]),
        ("exact duplicates", "dataset.exact", dups["exact"]),
        (f"near-duplicate queries (&ge; {dups['near_threshold']:g})", "dataset.near", near),
        ("contaminated", "dataset.contaminated", contaminated),
        ("dropped", "dataset.dropped", sum(dataset["dropped"].values())),
    ]
    out = [
        "<h2>Dataset audits</h2><p class=muted>Each record the stages kept, in input order, against the eval sets "
        "and the records kept before it. Duplicates: the same normalised query and answer; near-duplicates: "
        "queries whose word pairs have a Jaccard similarity at or above the threshold.</p><div class=cards>"
        + "".join(f'<div class=card>{label}<b data-key="{key}">{escape(str(v))}</b></div>' for label, key, v in cards)
        + "</div>"
    ]
    out += [f"<p class=warn>warning: {escape(w)}</p>" for w in dataset["warnings"]]
    out.append(
        f"<h3>Call mix of the kept set ({mix['records']} records)</h3>"
        + _bars([(label, mix[kind]) for kind, label in KINDS.items()], "callmix.")
    )
    if dups["examples"]:
        out.append(
            "<h3>Duplicates (first ones)</h3><table><tr><th>record</th><th>query</th><th>found</th>"
            "<th>duplicates record</th><th>its query</th><th>dropped</th></tr>"
        )
        for e in dups["examples"]:
            first = e.get("first") or {}
            out.append(
                f"<tr><td>{e['index']} ({escape(str(e['id']))})</td><td>{escape(str(e['query']))}</td>"
                f"<td>{escape(e['kind'])}, similarity {e['similarity']:.2f}</td>"
                f"<td>{e['of']} ({escape(str(first.get('id')))})</td><td>{escape(str(first.get('query', '')))}</td>"
                f"<td>{'yes' if e['dropped'] else 'no'}</td></tr>"
            )
        out.append("</table>")
    if cont["eval_sets"]:
        sets = "".join(
            f"<li>{escape(s['path'])}: {s['queries']} queries"
            + (f", {s['unreadable']} unreadable" if s["unreadable"] else "")
            for s in cont["eval_sets"]
        )
        out.append(
            f"<h3>Contamination</h3><p>Against {len(cont['eval_sets'])} eval set(s), {cont['ngram']}-word sequences, "
            f"threshold {cont['threshold']:.0%}:</p><ul>{sets}</ul>"
        )
        if cont["examples"]:
            out.append(
                "<table><tr><th>record</th><th>query</th><th>overlap</th><th>eval item</th><th>its query</th>"
                "<th>dropped</th></tr>"
            )
            for e in cont["examples"]:
                out.append(
                    f"<tr><td>{e['index']} ({escape(str(e['id']))})</td><td>{escape(str(e['query']))}</td>"
                    f"<td class=n>{e['overlap']:.0%}</td><td>{escape(str(e.get('eval_id')))}</td>"
                    f"<td>{escape(str(e.get('eval_query', '')))}</td><td>{'yes' if e['dropped'] else 'no'}</td></tr>"
                )
            out.append("</table>")
    return "".join(out)
