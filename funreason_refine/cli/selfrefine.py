"""refine selfrefine: the paper's self-refinement loop, optionally until a number of records is kept."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.markup import escape
from rich.table import Table

from funreason_refine.cli.app import (
    EXIT_INTERRUPTED,
    EXIT_JUDGE_OUTAGE,
    EXIT_RECORD_ERRORS,
    EXIT_SHORT_OF_TARGET,
    JUDGE_MODEL_HELP,
    err,
    main,
    out,
    warn,
)
from funreason_refine.selfrefine_summary import SelfRefineRound, SelfRefineSummary

COLUMNS = ("round", "queries sampled", "candidates", "kept", "errors", "queries with a survivor", "pool after", "cost")


@main.command("selfrefine")
@click.argument("pipeline", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--rounds",
    type=click.IntRange(min=1),
    help="Rounds at most [default: 2; with --target-kept, as many as the target and the caps need].",
)
@click.option(
    "--target-kept",
    type=click.IntRange(min=1),
    metavar="N",
    help="Draw candidates in rounds until N are kept (trimmed to N in <output dir>/kept.jsonl), or until "
    "[source] max_candidates or max_cost is reached: then exit status 5.",
)
@click.option("--judge-model", help=JUDGE_MODEL_HELP)
def selfrefine_command(pipeline: Path, rounds: int | None, target_kept: int | None, judge_model: str | None) -> None:
    """Self-refinement: [source] sample_from writes answers, the stages keep the good ones, per round."""
    from funreason_refine.config import load_pipeline
    from funreason_refine.engine import RunInterrupted
    from funreason_refine.errors import JudgeOutage
    from funreason_refine.selfrefine import selfrefine

    loaded = load_pipeline(pipeline, judge_model=judge_model)
    if rounds is None and target_kept is None:
        rounds = 2
    try:
        summary = selfrefine(loaded, rounds, target=target_kept)  # a ConfigError, naming what to add, if need be
    except (RunInterrupted, KeyboardInterrupt):
        err.print(
            f"[yellow]stopped:[/] interrupted; what was finished is saved in {escape(str(loaded.output_dir))}: run "
            "the same command again to resume",
            highlight=False,
        )
        sys.exit(EXIT_INTERRUPTED)
    except JudgeOutage as exc:
        err.print(f"[red]stopped:[/] {escape(str(exc))}", highlight=False)
        sys.exit(EXIT_JUDGE_OUTAGE)
    out.print(_rounds_table(summary, loaded.input.path.name))
    out.print(
        f"rounds in {loaded.output_dir}/round-N (kept.jsonl of each is its training set); "
        f"summary in {loaded.output_dir / 'selfrefine.json'}",
        markup=False,
        highlight=False,
    )
    if summary.unreadable:
        warn(
            f"{summary.unreadable} input line(s) could not be read as records and were not sampled (the first: "
            f"{summary.unreadable_first}); `refine run` on the input puts them in quarantined.jsonl with the reasons"
        )
    _say_how_it_ended(summary, loaded.output_dir)
    _errors_exit(summary)


def _errors_exit(summary: SelfRefineSummary) -> None:
    """Exit status 3 when candidates are in the rounds' errors.jsonl, saying which rounds to retry."""
    rounds = [r for r in summary.rounds if r.errors]
    if not rounds:
        return
    held = sum(r.queries_held for r in rounds)
    holding = (
        f" {held} of their queries had no survivor: held out of the pool, neither sampled again nor let go."
        if held
        else ""
    )
    retries = " and ".join(f"`refine retry {r.run_dir}`" for r in rounds)
    err.print(
        f"[red]{summary.errors} candidate(s) got no verdict[/] "
        + escape(
            f"(a judge call failed; each line of a round's errors.jsonl says why): "
            f"{', '.join(f'{r.errors} in {r.run_dir}/errors.jsonl' for r in rounds)}.{holding} Fix the cause, run "
            f"{retries}, then this command again: the rounds are read back and their queries counted anew."
        ),
        highlight=False,
    )
    sys.exit(EXIT_RECORD_ERRORS)


def _rounds_table(summary: SelfRefineSummary, input_name: str) -> Table:
    table = Table(title=f"Self-refinement of {input_name} with {summary.model}", show_edge=False)
    for col in (*COLUMNS, "pass rate per stage"):
        table.add_column(col, justify="left" if col.startswith("pass") else "right", overflow="fold")
    for r in summary.rounds:
        figures = (r.round, r.queries_sampled, r.candidates, r.kept, r.errors, r.queries_with_a_survivor, r.pool_after)
        table.add_row(*(str(f) for f in figures), f"${r.cost_usd:.4f}", _rates(r))
    return table


def _rates(r: SelfRefineRound) -> str:
    """Each stage's pass rate over the verdicts it gave, and the candidates it gave none (errors.jsonl)."""
    rates = []
    for stage, rate in r.pass_rate.items():
        errors = r.errors_per_stage.get(stage)
        text = f"{stage} {rate:.0%}" if rate is not None else (stage if errors else "")
        rates.append(f"{text} ({errors} without a verdict)" if errors else text)
    return ", ".join(t for t in rates if t)


def _say_how_it_ended(summary: SelfRefineSummary, folder: Path) -> None:
    """How many were kept against the target, and why drawing stopped; exit status 5 short of the target (3
    instead when candidates are in errors.jsonl: what they need is a retry)."""
    from funreason_refine.yield_target import REMEDIES

    spent = f"{summary.candidates_drawn} candidates drawn, ${summary.cost_usd:.4f} spent"
    if summary.max_cost is not None and summary.candidates_drawn and not summary.cost_usd:
        warn(
            "max_cost cannot stop this run: no call was priced (LiteLLM knows no price for these models); give "
            "[source] prices (and [judge] prices) in USD per million tokens"
        )
    if summary.target_kept is None:
        if summary.stopped_by != "rounds":
            err.print(f"[yellow]stopped:[/] {escape(summary.stopped)} ({spent})", highlight=False)
        return
    trimmed = f", {summary.trimmed} more trimmed into {folder / 'surplus.jsonl'}" if summary.trimmed else ""
    where = f"{summary.selected} kept records in {folder / 'kept.jsonl'}{trimmed} ({spent})"
    if not summary.missing:
        out.print(f"target reached: {where}", markup=False, highlight=False)
        return
    err.print(
        f"[red]short of the target:[/] {summary.missing} of {summary.target_kept} missing: "
        + escape(
            f"{where}. Stopped: {summary.stopped}. To go on, {REMEDIES[summary.stopped_by]} and run the same "
            "command again: finished rounds are read back, and only what is missing is drawn."
        ),
        highlight=False,
    )
    if not summary.errors:
        sys.exit(EXIT_SHORT_OF_TARGET)
