"""An estimate as rich tables and lines, for the terminal."""

from __future__ import annotations

from collections.abc import Callable

from rich.markup import escape
from rich.table import Table
from rich.text import Text

from funreason_refine.estimate import Estimate
from funreason_refine.estimate.figures import Figures, Span
from funreason_refine.estimate.repairs import CORRECTED, Repair


def estimate_table(estimate: Estimate) -> Table:
    sample = f", a sample of {estimate.sampled} scaled up" if estimate.sampled != estimate.records else ""
    table = Table(
        title=f"Estimate for {estimate.records:,} input records{sample}",
        caption="low - high: with the rules' pass rates (every judge passing) - with every record at every stage "
        "(a stage's time: its share of the run's, the shorter first)"
        + ("; repairs of failing verdicts apart (below)" if estimate.repairs else ""),
        show_edge=False,
    )
    table.add_column("stage")
    for column in ("calls", "cached (free)", "input tokens", "output tokens", "cost", "time"):
        table.add_column(column, justify="right")
    for name, figures in estimate.stages.items():
        table.add_row(escape(name), *_cells(figures))
    table.add_row(Text("total", style="bold"), *_cells(estimate.total), style="bold")
    return table


def estimate_lines(estimate: Estimate) -> list[str]:
    lines = []
    for model, info in estimate.models.items():
        price = info["price"]
        priced = (
            f"${price['input_per_million']:g} / ${price['output_per_million']:g} per million tokens in / out "
            f"({price['source']})"
            if price
            else "no price"
        )
        lines.append(f"{model}: {priced}; prompts: {info['tokenizer']}" + ("; batch" if info["batch"] else ""))
    lines += [f"time: {line}" for line in estimate.time_notes]
    scale = estimate.records / estimate.sampled if estimate.sampled else 0.0
    lines += [f"prompts: {line}" for line in estimate.long_prompts.lines(scale)]
    lines += [f"repairs: {repair_line(r)}" for r in estimate.repairs]
    if estimate.given_up:
        per_stage = ", ".join(f"{stage} {records:,.0f}" for stage, records in estimate.given_up.items())
        lines.append(
            f"errors: at the probe's rate of verdicts given up, about {sum(estimate.given_up.values()):,.0f} "
            f"record(s) would end in errors.jsonl ({per_stage}), no verdict in the answers: see judges.md for "
            'the answer protocol, verdict_format = "json" and max_tokens'
        )
    lines += [f"assumed: {a}" for a in estimate.assumptions]
    lines += [f"note: {n}" for n in estimate.notes]
    return lines


def repair_line(repair: Repair) -> str:
    """What one stage's repairs of its judge's failing verdicts add, in a sentence."""
    judges = [s for s in repair.asks_again if s != "generator"]
    what = (
        f"the judge's corrected calls (NewFC) are checked again by the judges of {_listed(judges)}"
        if repair.kind == CORRECTED
        else f"a failing verdict has the generator rewrite the {repair.rewrites}, which {repair.stage} checks again"
    )
    unpriced = "" if repair.generator_priced else " and the generator's call (none on the rules' way to price it by)"
    between = repair.repairs_between()
    if between is None:
        how = "--probe P measures how many" if repair.measurable else "a scorer's verdicts are not probed"
        rate = f"if 1 verdict in {round(1 / repair.share)} leads to one ({how}), about "
        rate += f"{repair.repairs:,.0f} repair(s)"
    else:
        rate = (
            f"at {repair.measured} probe verdicts, about {repair.repairs:,.0f} repair(s) (95%: {between[0]:,.0f} to "
            f"{between[1]:,.0f}; more probes narrow it)"
        )
    return (
        f"{repair.stage}: {what}: {repair.calls:.3g} calls, {_usd(repair.cost_usd)}{unpriced} a repair; {rate}: "
        f"+{repair.repairs * repair.calls:,.0f} calls, +{_usd(repair.repairs * repair.cost_usd)} (first repairs: a "
        f"record failing again is repaired again, up to {repair.max_attempts} times)"
    )


def _listed(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def _cells(figures: Figures) -> list[str]:
    return [
        _span(figures.calls, _count),
        _span(figures.cached, _count),
        _span(figures.input_tokens, _count),
        _span(figures.output_tokens, _count),
        _span(figures.cost_usd, _usd),
        _span(figures.seconds, _duration),
    ]


def _span(span: Span, show: Callable[[float], str]) -> str:
    """The figure's two ends, the smaller first: a stage's share of the wall time can be the larger in the
    scenario of fewer calls, where it takes more of a shorter run."""
    low, high = (show(value) for value in sorted((span.low, span.high)))
    return low if low == high else f"{low} - {high}"


def _count(value: float) -> str:
    return f"{value:,.0f}"


def _usd(value: float) -> str:
    return f"${value:,.2f}" if value >= 1 or value == 0 else f"${value:.4f}"


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
