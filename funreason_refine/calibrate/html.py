"""calibration.html: one self-contained page (inline CSS and SVG; no script, no network)."""

from __future__ import annotations

from html import escape
from typing import Any

from funreason_refine.report.data import clean
from funreason_refine.report.html import CSS

COLORS = ("#868e96", "#4263eb", "#e8590c", "#2f9e44", "#ae3ec9", "#1c7ed6", "#f08c00", "#c2255c")
SCORES = ("precision", "recall", "f1", "agreement", "kappa")
SHOWN_DISAGREEMENTS = 50


def _e(value: Any) -> str:
    """Any value as HTML text (record text is hostile: everything goes through here)."""
    return escape(str(clean(value)))


def _num(value: Any, key: str, fmt: str = "{}") -> str:
    shown = "-" if value is None else fmt.format(value)
    return f'<td class="n" data-key="{_e(key)}">{_e(shown)}</td>'


def _axis_ticks(top: float) -> list[float]:
    return [top * i / 4 for i in range(5)]


def _scatter(candidates: list[dict[str, Any]], metric: str, width: int = 680, height: int = 300) -> str:
    """Quality (y) against judge cost per 1,000 records (x), one labelled point per candidate."""
    points = [
        (i, c, c["usage"]["per_1000"]["cost_usd"], c["overall"][metric])
        for i, c in enumerate(candidates)
        if "overall" in c and c["overall"][metric] is not None
    ]
    left, right, top, bottom = 56, 190, 12, 42
    plot_w, plot_h = width - left - right, height - top - bottom
    x_top = max((x for _, _, x, _ in points), default=0.0) * 1.1 or 1.0
    y_low = min(0.0, min((y for *_, y in points), default=0.0))

    def px(x: float) -> float:
        return left + plot_w * x / x_top

    def py(y: float) -> float:
        return top + plot_h * (1 - (y - y_low) / (1 - y_low))

    parts = [
        f'<svg role="img" aria-label="{_e(metric)} against cost" width="{width}" height="{height}" '
        f'xmlns="http://www.w3.org/2000/svg"><rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" '
        'fill="none" stroke="#dde2ea"/>'
    ]
    for y in (y_low, (y_low + 1) / 2, 1.0):
        parts.append(
            f'<text x="{left - 6}" y="{py(y) + 4:.1f}" font-size="11" text-anchor="end">{y:g}</text>'
            f'<line x1="{left}" x2="{left + plot_w}" y1="{py(y):.1f}" y2="{py(y):.1f}" stroke="#eef1f5"/>'
        )
    for x in _axis_ticks(x_top):
        parts.append(
            f'<text x="{px(x):.1f}" y="{top + plot_h + 16}" font-size="11" text-anchor="middle">${x:.3g}</text>'
        )
    parts.append(
        f'<text x="{left + plot_w / 2}" y="{height - 4}" font-size="12" text-anchor="middle">judge cost per 1,000 '
        f'records (USD)</text><text x="12" y="{top + plot_h / 2}" font-size="12" transform="rotate(-90 12 '
        f'{top + plot_h / 2})" text-anchor="middle">{_e(metric)}</text>'
    )
    for i, c, x, y in points:
        color = COLORS[i % len(COLORS)]
        parts.append(
            f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="6" fill="{color}"/>'
            f'<text x="{px(x) + 9:.1f}" y="{py(y) + 4:.1f}" font-size="12" '
            f'data-key="chart.{_e(metric)}.{_e(c["slug"])}">{_e(c["name"])} ({y:g})</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _overview(candidates: list[dict[str, Any]]) -> str:
    head = "".join(
        f"<th>{h}</th>"
        for h in (
            "candidate",
            "scored",
            *SCORES,
            "wrong stage",
            "corrections matched",
            "calls / 1k",
            "tokens / 1k",
            "USD / 1k",
            "judge s / 1k",
            "paid this run",
        )
    )
    rows = []
    for c in candidates:
        slug = c["slug"]
        if "error" in c:
            rows.append(f"<tr><td>{_e(c['name'])}</td><td colspan=13>failed: {_e(c['error'])}</td></tr>")
            continue
        o, u, k = c["overall"], c["usage"], f"candidate.{slug}"
        cells = "".join(_num(o[s], f"{k}.overall.{s}") for s in SCORES)
        fix = c["corrections"]
        rows.append(
            f"<tr><td>{_e(c['name'])}{'' if c['complete'] else ' (stopped: ' + _e(c['stopped']) + ')'}</td>"
            f"{_num(o['records'], f'{k}.overall.records')}{cells}{_num(o['wrong_stage'], f'{k}.overall.wrong_stage')}"
            f"<td class=n>{fix['matched']} / {fix['labelled']}</td>"
            f"{_num(u['per_1000']['calls'], f'{k}.per_1000.calls', '{:g}')}"
            f"{_num(u['per_1000']['tokens'], f'{k}.per_1000.tokens', '{:,.0f}')}"
            f"{_num(u['per_1000']['cost_usd'], f'{k}.per_1000.cost_usd', '{:.4f}')}"
            f"{_num(u['per_1000']['judge_seconds'], f'{k}.per_1000.judge_seconds', '{:.1f}')}"
            f"{_num(u['paid_usd'], f'{k}.paid_usd', '{:.4f}')}</tr>"
        )
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def _per_stage(candidates: list[dict[str, Any]], stages: list[str]) -> str:
    head = (
        "<tr><th>stage</th><th>candidate</th><th>tp</th><th>fp</th><th>fn</th><th>tn</th>"
        + "".join(f"<th>{s}</th>" for s in SCORES)
        + "<th>judge calls / 1k</th><th>USD / 1k</th>"
    )
    rows = []
    for stage in stages:
        for c in candidates:
            scores = c.get("stages", {}).get(stage)
            if scores is None:
                continue
            k = f"candidate.{c['slug']}.stages.{stage}"
            counts = "".join(_num(scores[n], f"{k}.{n}") for n in ("tp", "fp", "fn", "tn"))
            use = c["usage"]["stages"].get(stage, {})
            rows.append(
                f"<tr><td>{_e(stage)}</td><td>{_e(c['name'])}</td>{counts}"
                + "".join(_num(scores[s], f"{k}.{s}") for s in SCORES)
                + _num(use.get("calls", 0), f"{k}.per_1000.calls", "{:g}")
                + _num(use.get("cost_usd", 0), f"{k}.per_1000.cost_usd", "{:.4f}")
                + "</tr>"
            )
    return f"<table>{head}</tr>{''.join(rows)}</table>"


def _confusion(c: dict[str, Any]) -> str:
    table = c["confusion"]
    columns = sorted({col for row in table.values() for col in row})
    head = "<tr><th>person \\ run</th>" + "".join(f"<th>{_e(col)}</th>" for col in columns) + "</tr>"
    rows = "".join(
        f"<tr><td>{_e(row)}</td>"
        + "".join(
            _num(cols.get(col, 0), f"candidate.{c['slug']}.confusion.{row}.{col}") if cols.get(col) else "<td></td>"
            for col in columns
        )
        + "</tr>"
        for row, cols in sorted(table.items())
    )
    return f"<table>{head}{rows}</table>"


def _disagreements(c: dict[str, Any]) -> str:
    items = c["disagreements"]
    if not items:
        return "<p class=muted>None: the run agrees with every label.</p>"
    rows = "".join(
        f"<tr><td>{d['line']}</td><td>{_e(d['id'])}</td><td>{_e(d['label'])}</td><td>{_e(d['outcome'])}"
        f"{' / ' + _e(d['reason']) if d['reason'] else ''}<br><span class=muted>{_e(d['message'] or '')}</span></td>"
        f"<td>{_e(d['comment'] or '')}</td></tr>"
        for d in items[:SHOWN_DISAGREEMENTS]
    )
    more = f"<p class=muted>and {len(items) - SHOWN_DISAGREEMENTS} more</p>" if len(items) > SHOWN_DISAGREEMENTS else ""
    return (
        "<table><tr><th>golden line</th><th>id</th><th>person</th><th>run</th><th>the person's comment</th></tr>"
        f"{rows}</table>{more}"
    )


def _candidate_details(c: dict[str, Any]) -> str:
    if "error" in c:
        return ""
    unscored = "".join(
        f"<li>line {u['line']} (id {_e(u['id'])}): {_e(u['outcome'])} {_e(u['stage'] or '')} "
        f"{_e(u['message'] or '')}</li>"
        for u in c["unscored"]
    )
    notes = "".join(f"<p class=muted>note: {_e(n)}</p>" for n in [*c["notes"], *c["usage"]["notes"]])
    return (
        f"<h2>{_e(c['name'])}</h2><p class=muted>run folder {_e(c['run_dir'])}</p>{notes}"
        f"<h3>Labels against outcomes</h3>{_confusion(c)}"
        + (f"<h3>Not scored ({len(c['unscored'])})</h3><ul>{unscored}</ul>" if unscored else "")
        + f"<h3>Disagreements ({len(c['disagreements'])})</h3>{_disagreements(c)}"
    )


def render_html(report: dict[str, Any]) -> str:
    g, candidates = report["golden"], report["candidates"]
    scored = [c for c in candidates if "error" not in c]
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>Judge calibration</title>"
        f"<style>{CSS}</style></head><body><h1>Judge calibration</h1>"
        f"<p class=muted>golden set {_e(g['path'])} · pipeline {_e(report['pipeline'])} · {_e(report['written'])}</p>"
        f"<p><span data-key='golden.records'>{g['records']}</span> labelled records: {g['keep']} keep, "
        f"{g['discard']} discard ({_e(', '.join(f'{s} {n}' for s, n in g['discard_by_stage'].items()) or '-')}). "
        "A discard is the positive class: precision is the share of the run's discards the person agrees "
        "with, recall the share of the person's discards the run made.</p>"
        f"<h2>Candidates</h2>{_overview(candidates)}"
        f"<h2>Quality against cost</h2>{_scatter(scored, 'f1')}{_scatter(scored, 'kappa')}"
        f"<h2>Per stage</h2><p class=muted>Positive: discarded at this stage. Labels that say discard "
        f"without a stage are left out here.</p>{_per_stage(scored, report['stages'])}"
        + "".join(_candidate_details(c) for c in candidates)
        + "</body></html>"
    )
