"""Running a pipeline under the live display, and what is printed after it (run, retry, shards)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.markup import escape

from funreason_refine.cli.app import (
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_JUDGE_OUTAGE,
    EXIT_RECORD_ERRORS,
    EXIT_SHORT_OF_TARGET,
    err,
    out,
)
from funreason_refine.errors import RefineError

if TYPE_CHECKING:
    from funreason_refine.config import Pipeline
    from funreason_refine.engine import RunResult
    from funreason_refine.executors.layout import Shard
    from funreason_refine.summary import JudgeSection, Summary


def load_run_pipeline(run_dir: Path, out_dir: Path, judge_model: str | None) -> Pipeline:
    """The pipeline a run folder was made with, as its run.json names it (and the --input it was given, or for a
    round of `refine selfrefine` its candidates), loaded to write into ``out_dir``."""
    from funreason_refine.config import load_pipeline
    from funreason_refine.run_identity import INPUT_GIVEN, RUN_FILE, read_run_file
    from funreason_refine.selfrefine import round_pipeline

    run_file = read_run_file(run_dir)
    a_round = round_pipeline(run_dir, run_file, judge_model)  # its input is the round's candidates
    if a_round is not None:
        return a_round
    pipeline = run_file.get("pipeline")
    if not isinstance(pipeline, str):
        raise RefineError(
            f"{run_dir} has no {RUN_FILE} naming its pipeline: it is not a run folder made by `refine run`"
        )
    if not Path(pipeline).is_file():
        raise RefineError(_pipeline_gone(run_dir, out_dir, run_file))
    return load_pipeline(Path(pipeline), out_dir, judge_model=judge_model, input_path=run_file.get(INPUT_GIVEN))


def _pipeline_gone(run_dir: Path, out_dir: Path, run_file: dict[str, Any]) -> str:
    """What to do when the pipeline file a run folder's run.json names is not there: the folder was moved or copied
    (to another machine) from where it was made. The command goes on as far as the folder's last run read."""
    from funreason_refine.executors.layout import Shard
    from funreason_refine.run_identity import RUN_FILE
    from funreason_refine.run_state import run_args

    shard = Shard.of_folder(run_dir)
    again = f"refine run {run_args({**run_file, 'pipeline': 'PIPELINE'})}{f' --shard {shard}' if shard else ''}"
    return (
        f"{run_dir / RUN_FILE} names the pipeline file {run_file['pipeline']}, which is not there (was the run "
        f"folder moved or copied from where it was made?): put the pipeline file back there, or go on with the "
        f"pipeline where it is now: `{again} --out {out_dir} --accept-changes` (finished records stay as they are), "
        f"then `refine retry {run_dir}`"
    )


def run_loaded(loaded: Pipeline, shard: Any = None, **options: Any) -> None:
    """Run it, then exit 3 with records in errors.jsonl, else 1 when the input could not be read to its end,
    else 5 short of a --target-kept target."""
    result = refine_loaded(loaded, shard=shard, **options)
    if result.errors:
        errors_exit(result.errors, result.out_dir)
    if result.unread is not None:
        sys.exit(EXIT_ERROR)
    if result.summary.target is not None and not result.summary.target.reached:
        sys.exit(EXIT_SHORT_OF_TARGET)


def refine_loaded(loaded: Pipeline, shard: Any = None, **options: Any) -> RunResult:
    """Run (one shard of) the pipeline under the live display, then print what it did."""
    import signal

    from funreason_refine.console import RunDisplay, summary_tables
    from funreason_refine.engine import RunInterrupted, run_pipeline
    from funreason_refine.errors import JudgeOutage

    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt  # SIGTERM stops as cleanly as Ctrl-C

    signal.signal(signal.SIGTERM, on_term)
    print_models(loaded)
    size, label, part = loaded.input.path.stat().st_size, loaded.input.path.name, None
    if shard is not None:
        from funreason_refine.executors import shards as sharding

        part = sharding.shard_part(loaded, shard)
        size, label = part.read_bytes, f"{label} shard {shard}"
    else:
        from funreason_refine.executors.layout import refuse_sharded_folder

        refuse_sharded_folder(loaded.output_dir)
    try:
        display = RunDisplay(err, size, label, limit=options.get("limit"))
        with display as progress:
            if shard is not None:
                result = sharding.run_shard(loaded, shard, progress, part=part, **options)
            else:
                result = run_pipeline(loaded, progress=progress, **options)
            display.finished(result.resumed, enough=result.summary.target is not None and result.summary.target.reached)
    except RunInterrupted as exc:
        err.print(f"[yellow]stopped:[/] {escape(str(exc))}", highlight=False)
        sys.exit(EXIT_INTERRUPTED)
    except JudgeOutage as exc:
        err.print(f"[red]stopped:[/] {escape(str(exc))}", highlight=False)
        sys.exit(EXIT_JUDGE_OUTAGE)
    if result.resumed:
        out.print(
            f"resumed: {result.resumed} records were already done in {result.out_dir}", highlight=False, markup=False
        )
    for table in summary_tables(result.summary):
        out.print(table)
    print_judge(result.summary.judge)
    rate = result.summary.timings.records_per_second
    speed = f"{rate} records/s, " if rate else ""  # a resume with nothing left to do refines none
    out.print(f"run folder: {result.out_dir} ({speed}{result.workers} worker(s))", markup=False)
    if result.unread is not None:
        err.print(f"[red]input not read to the end:[/] {escape(result.unread)}", highlight=False)
    if result.summary.target is not None:
        say_target(result.summary, result.out_dir)
    elif result.stopped and result.unread is None:
        err.print(
            f"[yellow]stopped:[/] {escape(str(result.stopped))}. What was finished is saved; raise max_cost (it "
            "counts what the run folder spent in all its runs) and run the same command again to go on.",
            highlight=False,
        )
    elif shard is not None:
        shard_note(loaded.output_dir, shard)
    return result


def say_target(summary: Summary, folder: Path) -> None:
    """How many were kept against --target-kept; short of it, how many are missing, why, and what lets it go on."""
    from funreason_refine.run_target import REMEDIES

    target = summary.target
    assert target is not None
    where = f"{target.kept - target.missing} kept records in {folder / 'kept.jsonl'}"
    if target.reached:
        read = f", after {summary.input.records} input records" if summary.input.records is not None else ""
        out.print(f"target reached: {where}{read}", markup=False, highlight=False)
        return
    err.print(
        f"[red]short of the target:[/] {target.missing} of {target.kept} missing: "
        + escape(f"{where}. Stopped: {target.stopped}. {REMEDIES[target.stopped_by]}"),
        highlight=False,
    )


def print_models(loaded: Pipeline) -> None:
    """Before a judged run spends anything: each model, where its calls go, what its tokens cost; and what
    the pipeline allows but likely does not mean."""
    for warning in loaded.warnings:
        err.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False)
    if loaded.judging is None:
        return
    from funreason_refine.judge_swap import model_lines

    for line in model_lines(loaded):
        err.print(f"[cyan]model:[/] {escape(line)}", highlight=False)


def print_judge(judge: JudgeSection) -> None:
    from funreason_refine.console import protocol_lines

    if judge.model or judge.generator:
        out.print(
            f"judge: {judge.calls} calls, {judge.cached} answered from the cache, {judge.retries} retries, "
            f"{judge.protocol_reasks} protocol re-asks, {judge.prompt_tokens + judge.completion_tokens:,} tokens, "
            f"${judge.cost_usd:.4f}",
            markup=False,
        )
        for line in protocol_lines(judge):
            out.print(f"[yellow]not a verdict:[/] {escape(line)}", highlight=False)
        for note in judge.notes:
            out.print(f"[yellow]note:[/] {escape(note)}", highlight=False)


def errors_exit(errors: int, folder: Path) -> None:
    """What to do about the records in errors.jsonl (those whose prompt is over the context window apart: a retry
    alone cannot help them), then exit status 3."""
    unfit = _over_context(folder)
    err.print(
        f"[red]{errors} record(s) in {escape(str(folder / 'errors.jsonl'))}[/]: "
        + escape(
            "stopped by failures that were not verdicts (see each line's error). Fix the cause, then run "
            f"`refine retry {folder}`."
        ),
        highlight=False,
    )
    if unfit:
        from funreason_refine.judge.limits import CONTEXT_ADVICE, CONTEXT_WINDOW

        err.print(
            escape(
                f"{unfit} of them ({CONTEXT_WINDOW}) have a prompt over the model's context window: a retry alone "
                f"cannot help them; {CONTEXT_ADVICE.replace('RUN_DIR', str(folder))}."
            ),
            highlight=False,
        )
    sys.exit(EXIT_RECORD_ERRORS)


def _over_context(folder: Path) -> int:
    """The records in the folder's errors.jsonl whose prompt is over the context window (summary.json counts them)."""
    from funreason_refine.judge.limits import CONTEXT_WINDOW
    from funreason_refine.summary import Summary

    try:
        stages = Summary.read(folder).stages
    except RefineError:  # no summary to read (a stopped shard): the general advice stands alone
        return 0
    return sum((counts.records_errored or {}).get(CONTEXT_WINDOW, 0) for counts in stages.values())


def shard_note(run_dir: Path, shard: Shard) -> None:
    """After a shard: how many are complete, and what to run next."""
    from funreason_refine.executors.progress import Watcher

    complete = sum(s.complete for s in Watcher(run_dir).states())
    then = f"all are: run `refine merge {run_dir}`" if complete == shard.count else f"see `refine status {run_dir}`"
    out.print(
        f"shard {shard} complete; {complete} of {shard.count} shards complete ({then})", highlight=False, markup=False
    )
