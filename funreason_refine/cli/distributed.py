"""refine merge and refine status, and what run and retry print and do for sharded runs."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.markup import escape

from funreason_refine.cli.app import EXIT_INTERRUPTED, EXIT_JUDGE_OUTAGE, err, main, out
from funreason_refine.cli.running import errors_exit, load_run_pipeline, print_judge, refine_loaded

if TYPE_CHECKING:
    from funreason_refine.config import Pipeline
    from funreason_refine.executors.layout import Shard
    from funreason_refine.executors.merge import MergeResult


@main.command()
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
def merge(run_dir: Path) -> None:
    """Write RUN_DIR's outcome files and summary.json from its complete shards, in input order."""
    try:
        merge_and_report(run_dir)
    except KeyboardInterrupt:  # only click's "Aborted!" said so
        err.print(
            f"[yellow]stopped:[/] the merge of {escape(str(run_dir))} was interrupted before it finished; the shards "
            f"are as they were: run `refine merge {escape(str(run_dir))}` again",
            highlight=False,
        )
        sys.exit(EXIT_INTERRUPTED)


@main.command()
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
def status(run_dir: Path) -> None:
    """Show how far RUN_DIR is: complete, stopped early (max_cost), running, or interrupted; for a sharded run, each
    shard's records done."""
    from funreason_refine.console import shards_table
    from funreason_refine.executors.layout import is_sharded
    from funreason_refine.executors.progress import Watcher

    if not is_sharded(run_dir):
        from funreason_refine.run_state import folder_status

        out.print(folder_status(run_dir), highlight=False, markup=False)
        return
    states = Watcher(run_dir).states()
    out.print(shards_table(states, f"shards of {run_dir}"))
    if all(s.complete for s in states):
        out.print(merge_state(run_dir), highlight=False, markup=False)


def merge_state(run_dir: Path) -> str:
    """Whether a sharded run whose shards are all complete is merged, as its shards are now."""
    from funreason_refine.errors import RefineError
    from funreason_refine.executors.layout import require_merged

    try:
        require_merged(run_dir)
    except RefineError as exc:
        return str(exc)
    return f"merged into {run_dir}: its summary.json and outcome files hold the shards as they are now"


def merge_and_report(run_dir: Path) -> None:
    from funreason_refine.executors.merge import merge_run

    report_merged(merge_run(run_dir))


def report_merged(result: MergeResult) -> None:
    """The merged run's tables, as `refine run` prints a run's; exit status 3 with records in errors.jsonl."""
    from funreason_refine.console import summary_tables

    for table in summary_tables(result.summary):
        out.print(table)
    print_judge(result.summary.judge)
    out.print(f"merged {len(result.summary.shards or [])} shards into {result.out_dir}", highlight=False, markup=False)
    if result.errors:
        errors_exit(result.errors, result.out_dir)


def retry_shards(
    run_dir: Path, shard: Shard | None, judge_model: str | None, accept_changes: bool, workers: int | None
) -> None:
    """The errors of one shard, or of every shard that has some (then merged again)."""
    from funreason_refine.executors.shards import shards_to_retry

    chosen = shards_to_retry(run_dir, shard)
    if not chosen:
        out.print(f"no shard of {run_dir} has records in errors.jsonl: nothing to retry", highlight=False, markup=False)
        return
    errors = 0
    for state in chosen:
        loaded = load_run_pipeline(state.folder, run_dir, judge_model)
        result = refine_loaded(
            loaded, shard=state.shard, retry_errors=True, accept_changes=accept_changes, workers=workers
        )
        errors += result.errors
    if shard is None:
        merge_and_report(run_dir)
    elif errors:
        errors_exit(errors, state.folder)


def run_ray(
    loaded: Pipeline, shards: int, address: str | None, judge_model: str | None, fresh: bool, accept_changes: bool
) -> None:
    """refine run --executor ray: the shards on Ray under one live table, then the merged run's tables."""
    from rich.live import Live

    from funreason_refine.console import shards_table
    from funreason_refine.engine import RunInterrupted
    from funreason_refine.errors import JudgeOutage
    from funreason_refine.executors.ray import run_on_ray

    title = f"shards of {loaded.output_dir}"
    try:
        with Live(console=err, refresh_per_second=4) as live:
            result = run_on_ray(
                loaded,
                shards,
                address=address,
                judge_model=judge_model,
                fresh=fresh,
                accept_changes=accept_changes,
                on_progress=lambda states: live.update(shards_table(states, title)),
            )
    except RunInterrupted as exc:
        err.print(f"[yellow]stopped:[/] {escape(str(exc))}", highlight=False)
        sys.exit(EXIT_INTERRUPTED)
    except JudgeOutage as exc:
        err.print(f"[red]stopped:[/] {escape(str(exc))}", highlight=False)
        sys.exit(EXIT_JUDGE_OUTAGE)
    report_merged(result)
