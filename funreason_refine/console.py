"""Everything the CLI draws with rich: the live progress display and the summary tables."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any, Literal

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from funreason_refine.engine import Progress as EngineProgress
from funreason_refine.report.dataset import dataset_tables, example_table
from funreason_refine.summary import DatasetSection, JudgeSection, StageCounts, Summary

VERDICT_COUNTS = (
    "a record re-checked after a repair counts again; at a judged stage the rules' pass and the judge's verdict "
    "count one each"
)
"""Why a stage's verdicts can outnumber the records that reached it."""


class RunDisplay:
    """A progress bar over the input bytes (with a ``limit``: over its records, the file's size saying nothing of
    how far the first N records are), with live outcome counts, records/s and judge usage."""

    def __init__(self, console: Console, total_bytes: int, label: str, limit: int | None = None):
        self.counts: Counter[str] = Counter()
        self._limit = limit
        self._resumed = 0
        self._enough = False
        self._judge = ""
        self._batches = ""
        self._bytes = 0
        self._last = 0.0
        self._start = time.perf_counter()
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(bar_width=24),
            TaskProgressColumn(),
            TextColumn("{task.fields[counts]}"),
            TimeElapsedColumn(),
            console=console,
            transient=False,
            disable=not console.is_terminal,
        )
        total = self._total = total_bytes if limit is None else limit
        self._task = self._progress.add_task(escape(label), total=total, counts="")

    def __enter__(self) -> EngineProgress:
        self._progress.start()
        return EngineProgress(
            on_bytes=self._on_bytes, on_outcome=self._on_outcome, on_judge=self._on_judge, on_resumed=self._on_resumed
        )

    def __exit__(self, *exc: object) -> None:
        self._update()
        self._progress.stop()

    def _on_judge(self, stats: dict[str, Any]) -> None:
        self._judge = (
            f" | judge {stats['calls']} calls answered, {stats['in_flight']} in flight, {stats['cached']} cached, "
            f"{stats['tokens']:,} tokens, ${stats['cost_usd']:.4f}"
        )
        batches = stats.get("batches")
        if batches:
            text = (
                f" | batches {batches['submitted']} submitted, {batches['in_progress']} in progress, "
                f"{batches['done']} done"
            )
            self._judge += text
            if text != self._batches:
                # While batches run for hours no record finishes: a change of theirs redraws at once, or the
                # display would show it only when the next record is written.
                self._batches = text
                self._update()
                return
        # Records of a slow judge take minutes each: calls starting and ending redraw too (as often as outcomes).
        self._redraw_soon()

    def _redraw_soon(self) -> None:
        now = time.perf_counter()
        if now - self._last > 0.1:  # the display redraws ten times a second; updating more often is waste
            self._last = now
            self._update()

    def finished(self, resumed: int, enough: bool = False) -> None:
        """The records that were done before this run (as told when the folder opened): a bar over records counts them.
        ``enough``: the run read all it was asked to (a --target-kept reached before the input's end): a full bar."""
        self._resumed = resumed
        self._enough = enough

    def _on_resumed(self, resumed: int) -> None:
        """The records done before this run: a bar over records (--limit) starts from them, not from 0."""
        self._resumed = resumed

    def _on_bytes(self, n: int) -> None:
        self._bytes += n

    def _on_outcome(self, outcome: str) -> None:
        self.counts[outcome] += 1
        self._redraw_soon()

    def _update(self) -> None:
        done = sum(self.counts.values())
        rate = done / max(time.perf_counter() - self._start, 1e-9)
        text = (
            f"[green]{self.counts['kept']} kept[/] [yellow]{self.counts['discarded']} discarded[/] "
            f"[magenta]{self.counts['quarantined']} quarantined[/] [red]{self.counts['errors']} errors[/] "
            + (f"[blue]{self.counts['hard']} hard[/] " if self.counts["hard"] else "")
            + f"{rate:,.0f} rec/s{self._judge}"
        )
        completed = self._bytes if self._limit is None else min(self._limit, done + self._resumed)
        if self._enough:
            completed = self._total
        self._progress.update(self._task, completed=completed, counts=text)


def summary_tables(summary: Summary) -> list[Table]:
    """The terminal summary of a run: outcomes, verdicts per stage, the dataset audits."""
    total = summary.input.records
    return count_tables(summary.outcomes, total, summary.stages, summary.dataset) + _mixed_table(summary)


def _mixed_table(summary: Summary) -> list[Table]:
    """A warning when the records were refined under several configurations (--accept-changes)."""
    note = summary.mixed_note()
    if note is None:
        return []
    table = Table(show_edge=False, show_header=False)
    table.add_column(style="yellow", overflow="fold")
    table.add_row(f"warning: {escape(note)}")
    return [table]


def count_tables(
    outcomes: dict[str, int], total: int | None, stage_counts: dict[str, StageCounts], dataset: DatasetSection | None
) -> list[Table]:
    head = Table(title=f"{total} input records", show_edge=False)
    for kind in outcomes:
        head.add_column(kind, justify="right")
    head.add_row(*(f"{outcomes[k]} ({outcomes[k] / total:.0%})" if total else "0" for k in outcomes))

    stages = Table(title="Verdicts per stage", caption=VERDICT_COUNTS, show_edge=False)
    truncating = any(s.truncated for s in stage_counts.values())
    columns: tuple[tuple[str, Literal["left", "right"]], ...] = (
        ("stage", "left"),
        ("passed", "right"),
        ("regenerated", "right"),
        ("discarded", "right"),
        *((("truncated", "right"),) if truncating else ()),
        ("top reasons", "left"),
    )
    for col, justify in columns:
        stages.add_column(col, justify=justify)
    for name, s in stage_counts.items():
        truncated = (str(s.truncated),) if truncating else ()
        stages.add_row(
            escape(name), str(s.passed), str(s.regenerated), str(s.discarded), *truncated, escape(top_reasons(s))
        )
    return [head, stages, *dataset_tables(dataset)]


_NOT_DISCARDS = {"truncate": " (truncated)", "regenerate": " (regenerated)"}


def top_reasons(counts: StageCounts) -> str:
    """A stage's three commonest reasons, those of a truncation or a regeneration said so (they were kept)."""
    reasons: Counter[str] = Counter()
    for verdict in ("discard", "truncate", "regenerate"):
        said = _NOT_DISCARDS.get(verdict, "")
        reasons.update({f"{reason}{said}": n for reason, n in counts.reasons.get(verdict, {}).items()})
    return ", ".join(f"{r} {n}" for r, n in reasons.most_common(3)) or "-"


def protocol_lines(judge: JudgeSection) -> list[str]:
    """Per model, its answers that were not verdicts (by problem) and how many were asked again."""
    lines = []
    for model, counts in (judge.protocol or {}).items():
        problems = ", ".join(f"{problem} {n}" for problem, n in counts.problems.items())
        lines.append(
            f"{model}: {counts.failures} answer(s) did not follow the answer protocol ({problems}); "
            f"{counts.reasks} asked again"
        )
    return lines


def _protocol_table(judge: JudgeSection) -> list[Table]:
    lines = protocol_lines(judge)
    if not lines:
        return []
    table = Table(title="Judge answers that were not verdicts", show_edge=False, show_header=False)
    table.add_column(overflow="fold")
    for line in lines:
        table.add_row(escape(line))
    return [table]


def report_tables(report: dict[str, Any]) -> list[Table]:
    """The terminal summary of `refine report`."""
    summary = Summary.model_validate(report["summary"])
    tables = count_tables(summary.outcomes, report["funnel"][0]["records"], summary.stages, summary.dataset)
    tables += _mixed_table(summary)
    funnel = Table(title="Funnel", show_edge=False)
    funnel.add_column("step")
    funnel.add_column("records", justify="right")
    funnel.add_column("", justify="left")
    top = max(f["records"] for f in report["funnel"]) or 1
    for f in report["funnel"]:
        funnel.add_row(
            escape(f["step"]), str(f["records"]), "█" * max(1, round(30 * f["records"] / top)) if f["records"] else ""
        )
    facts = report["facts"]
    kept = Table(title="Kept records", show_edge=False)
    kept.add_column("fact")
    kept.add_column("value", justify="right")
    for name, value in (
        ("records", facts["kept"]),
        ("answers (assistant turns)", facts["answers"]),
        ("parallel-call share", f"{facts['parallel_share']:.1%}"),
        ("no-call share", f"{facts['no_call_share']:.1%}"),
        ("answers with a CoT", f"{facts['cot_share']:.1%}"),
        ("CoT chars, median", f"{facts['cot_chars']['median']:g}"),
        ("answer chars, median", f"{facts['answer_chars']['median']:g}"),
        ("top function", facts["top_functions"][0]["function"] if facts["top_functions"] else "-"),
    ):
        kept.add_row(name, escape(str(value)))
    return [
        funnel,
        *tables[1:],
        *_scores_table(report.get("scores") or []),
        *example_table(report["dataset"]),
        kept,
        *_protocol_table(summary.judge),
        *_servers_table(report.get("endpoints") or []),
    ]


def _scores_table(sections: list[dict[str, Any]]) -> list[Table]:
    """The scorers' scores per stage, the histogram as a sparkline with ``|`` at the threshold."""
    if not sections:
        return []
    from funreason_refine.report.scores import sparkline

    table = Table(title="Scores", show_edge=False)
    for column in ("stage", "scores", "mean", "range", "threshold", "discarded", "histogram"):
        table.add_column(column, justify="left" if column in ("stage", "histogram") else "right")

    def v(value: Any) -> str:
        return "-" if value is None else f"{value:.4g}"

    for s in sections:
        table.add_row(
            escape(s["stage"]),
            str(s["count"]),
            v(s["mean"]),
            f"{v(s['lowest'])} to {v(s['highest'])}",
            v(s["threshold"]),
            str(s["low_score"] + s["below_best"]),
            escape(sparkline(s)),
        )
    return [table]


def audit_panels(record: dict[str, Any], boxed: bool = True) -> list[Any]:
    """A discarded record: its verdict and data (in a box when ``boxed``: for a terminal), its
    conversation, its trail. Unboxed, no line is padded to the width of the longest."""
    from rich.panel import Panel

    from funreason_refine.report.data import clean, line_answer_text, shown

    record = shown(record)
    tools = ", ".join(
        f"{t.get('name')}({', '.join((t.get('parameters') or {}).get('properties', {}))})"
        for t in record.get("tools", [])
        if isinstance(t, dict)
    )
    conversation = bool(record.get("messages"))
    cot = clean(record.get("cot") or "")
    at = f" at turn {record.get('turn')}" if conversation else ""
    body = ("[blue](hard pool)[/] " if record.get("outcome") == "hard" else "") + (
        f"[bold]{escape(clean(str(record.get('stage'))))} / {escape(clean(str(record.get('reason'))))}[/]{at}: "
        f"{escape(clean(str(record.get('message'))))}\n\n"
    )
    if conversation:
        body += f"[dim]tools[/]  {escape(clean(tools))}\n"
    else:
        body += (
            f"[dim]query[/]  {escape(clean(record.get('query', '')))}\n[dim]tools[/]  {escape(clean(tools))}\n"
            f"[dim]answer[/] {escape(clean(line_answer_text(record)))}\n"
            + (f"[dim]cot[/]    {escape(cot[:600])}{'…' if len(cot) > 600 else ''}\n" if cot else "")
        )
    trail = Table(show_edge=False, box=None)
    columns = ("turn", "stage", "verdict", "reason", "judge", "attempt", "message")
    for col in columns if conversation else columns[1:]:
        trail.add_column(col, overflow="fold")
    for s in record.get("trail", []):
        row = [
            escape(str(s["stage"])),
            escape(str(s["verdict"])),
            escape(clean(str(s.get("reason") or ""))),
            escape(clean(str(s.get("judge")))),
            str(s.get("attempt", 1)),
            escape(clean(str(s.get("message") or ""))),  # whole: the column folds it
        ]
        trail.add_row(*([str(s.get("turn", "")), *row] if conversation else row))
    title = (
        f"record {record['index']} · id {clean(str(record.get('id')))} · line {record.get('source', {}).get('line')}"
    )
    if boxed:
        head: list[Any] = [Panel(body.rstrip(), title=escape(title), title_align="left")]
    else:
        head = [Text(f"── {title}", style="bold"), body.rstrip()]
    return [*head, conversation_table(record), trail] if conversation else [*head, trail]


def conversation_table(record: dict[str, Any], width: int = 300) -> Table:
    """A discarded conversation message by message: who, which turn, what; the turn it failed at marked ✗."""

    from funreason_refine.report.turns import message_rows

    table = Table(show_edge=False, box=None, show_header=False)
    table.add_column("who", no_wrap=True, style="dim")
    table.add_column("message", overflow="fold")

    def cut(text: str) -> str:
        return text if len(text) <= width else text[:width] + "…"

    for row in message_rows(record, "discarded"):
        mark = " ✗" if row["failed"] else ""
        if row["role"] == "assistant":
            if row.get("cot"):
                table.add_row(f"  cot {row['turn']}", Text(cut(row["cot"])))
            table.add_row(
                f"assistant {row['turn']}{mark}", Text(cut(row["text"]) + ("   ← failed here" if mark else ""))
            )
        elif row["role"] == "tool":
            error = "   (error result)" if row["error"] else ""
            table.add_row(Text(f"tool {row.get('call_id') or ''}"), Text(f"{row['tool']}: {cut(row['text'])}{error}"))
        else:
            table.add_row(Text(row["role"]), Text(cut(row["text"])))
    return table


def compare_tables(c: dict[str, Any]) -> list[Table]:
    only = f"; {c['only_in_one']} in one run only, not compared" if c["only_in_one"] else ""
    head = Table(title=f"{c['records']} records in both runs{only}", show_edge=False)
    for col in ("", "A", "B"):
        head.add_column(col)
    head.add_row("judge", escape(str(c["judge_a"])), escape(str(c["judge_b"])))
    head.add_row("kept", str(c["kept"]["a"]), str(c["kept"]["b"]))
    head.add_row(f"kappa on kept (of {c['kept']['decided']} decided by both)", str(c["kept"]["kappa"]), "")
    stages = Table(title="Agreement per stage (records that reached the stage in both runs)", show_edge=False)
    for col in ("stage", "records", "discarded by A", "discarded by B", "agreement", "kappa"):
        stages.add_column(col, justify="left" if col == "stage" else "right")
    for s in c["stages"]:
        stages.add_row(
            escape(s["stage"]),
            str(s["records"]),
            str(s["discarded_a"]),
            str(s["discarded_b"]),
            f"{s['agreement']:.1%}" if s["agreement"] is not None else "-",
            str(s["kappa"] if s["kappa"] is not None else "-"),
        )
    diffs = Table(
        title=f"Records they disagree on ({c['disagreement_count']}, first {len(c['disagreements'])})", show_edge=False
    )
    for col in ("record", "id", "A", "B"):
        diffs.add_column(col, overflow="fold")
    for d in c["disagreements"]:
        diffs.add_row(
            str(d["index"]),
            escape(str(d["id"])),
            escape(f"{d['a']} {d['reason_a'] or ''}"),
            escape(f"{d['b']} {d['reason_b'] or ''}"),
        )
    return [head, stages, diffs]


def _servers_table(rows: list[dict[str, Any]]) -> list[Table]:
    """The judge servers of a run that had them (summary.json judge.endpoints)."""
    if not rows:
        return []
    table = Table(title="Judge servers", show_edge=False)
    table.add_column("model")
    table.add_column("server")
    for col in ("calls", "errors", "429s", "p50", "p95", "out of rotation"):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(
            escape(r["model"]),
            escape(r["server"]),
            str(r["calls"]),
            str(r["errors"]),
            str(r["rate_limited"]),
            r["p50"],
            r["p95"],
            r["out_of_rotation"],
        )
    return [table]


def shards_table(states: list[Any], title: str) -> Table:
    """One row per shard (executors.progress.ShardState): its records, how many are done, complete or not."""
    table = Table(title=Text(title, style="table.title"), show_edge=False)  # Text: a path is not markup
    for col in ("shard", "records", "done", "kept", "discarded", "quarantined", "errors", "state", "last write"):
        table.add_column(col, justify="left" if col in ("shard", "state", "records") else "right")
    now = time.time()
    for s in states:
        done = sum(s.done.values())
        total = s.records
        span = f"{s.first_index}-{s.first_index + total - 1}" if total else ("none" if total == 0 else "?")
        share = f" ({done / total:.0%})" if total else ""
        colour = {"complete": "green", "running": "cyan", "interrupted": "yellow", "stopped": "yellow"}.get(
            s.state, "dim"
        )
        table.add_row(
            str(s.shard),
            span,
            f"{done}/{total if total is not None else '?'}{share}",
            str(s.done["kept"]),
            str(s.done["discarded"]),
            str(s.done["quarantined"]),
            f"[red]{s.done['errors']}[/]" if s.done["errors"] else "0",
            f"[{colour}]{s.state}[/]",
            f"{now - s.updated:.0f} s ago" if s.updated else "-",
        )
    table.caption = _shards_caption(states)
    return table


def _shards_caption(states: list[Any]) -> str:
    """How many shards are complete, and what to do about those interrupted or stopped early (max_cost)."""
    from funreason_refine.run_state import stop_remedy

    complete = sum(s.complete for s in states)
    interrupted = sum(s.state == "interrupted" for s in states)
    stopped = [s for s in states if s.state == "stopped"]
    command = "refine run PIPELINE --shard I/N --out RUN_DIR"
    caption = f"{complete} of {len(states)} shards complete"
    if states:
        caption += f"; {sum(sum(s.done.values()) for s in states)} records done"
    if interrupted:
        caption += f"; {interrupted} interrupted (no process is writing it): run it again to resume ({command})"
    if stopped:
        first = stopped[0]
        caption += f"; {len(stopped)} stopped ({first.shard}: {first.stopped}). {stop_remedy(first.stopped, command)}"
    return caption
