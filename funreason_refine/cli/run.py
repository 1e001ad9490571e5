"""refine run, refine retry, refine validate."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.markup import escape

from funreason_refine.cli.app import JUDGE_MODEL_HELP, err, input_option, main, out, shard_option
from funreason_refine.cli.running import load_run_pipeline, run_loaded
from funreason_refine.errors import RefineError


@main.command()
@click.argument("pipeline", type=click.Path(dir_okay=False, path_type=Path))
@input_option
@click.option("--limit", type=click.IntRange(min=1), help="Only the first N input records.")
@click.option(
    "--target-kept",
    type=click.IntRange(min=1),
    metavar="N",
    help="Read the input only as far as it takes to keep N records: kept.jsonl holds exactly the first N the "
    "pipeline keeps, in input order (the folder's kept records count towards N; records read past the N-th are left "
    "for a later run). With --limit, whichever is reached first. Short of N (the input, --limit or max_cost ended "
    "the run first) it says how many are missing and why: exit status 5. Not with --shard or --executor ray.",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Run folder (default: [output] dir of the pipeline).",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    help="How records are refined: processes that refine them (default: one per CPU for inputs over 8 MiB, "
    "else 1; judged pipelines run on one event loop in one process).",
)
@click.option("--judge-model", help=JUDGE_MODEL_HELP)
@click.option("--fresh", is_flag=True, help="Start the run folder over (cached judge answers are kept).")
@click.option(
    "--accept-changes", is_flag=True, help="Go on in a run folder started with another pipeline configuration."
)
@click.option(
    "--shard",
    callback=shard_option,
    metavar="I/N",
    help="Refine only shard I of N (0-based) into RUN_DIR/shards/; `refine merge RUN_DIR` when all are complete.",
)
@click.option(
    "--executor",
    type=click.Choice(["local", "ray"]),
    default="local",
    show_default=True,
    help="Where the parts of the run are refined: local (here; with --shard I/N one shard, for any scheduler), "
    'or ray: --shards N shards as Ray tasks, then merged (pip install "funreason-refine[ray]").',
)
@click.option("--shards", type=click.IntRange(min=1), help="With --executor ray: the number of shards.")
@click.option("--address", help="With --executor ray: the Ray cluster to join (default: start a local Ray).")
def run(
    pipeline: Path,
    input_path: str | None,
    limit: int | None,
    target_kept: int | None,
    out_dir: Path | None,
    workers: int | None,
    judge_model: str | None,
    fresh: bool,
    accept_changes: bool,
    shard: Any,
    executor: str,
    shards: int | None,
    address: str | None,
) -> None:
    """Run PIPELINE; on an existing run folder, resume where it stopped."""
    from funreason_refine.config import load_pipeline

    _check_executor_options(executor, shards, address, shard, limit, workers)
    _check_target(target_kept, executor, shard)
    loaded = load_pipeline(pipeline, out_dir, judge_model=judge_model, input_path=input_path)
    if executor == "ray":
        from funreason_refine.cli.distributed import run_ray

        assert shards is not None
        run_ray(loaded, shards, address, judge_model, fresh=fresh, accept_changes=accept_changes)
        return
    options = {"limit": limit, "workers": workers, "fresh": fresh, "accept_changes": accept_changes}
    if target_kept is not None:
        options["target"] = target_kept
    run_loaded(loaded, shard=shard, **options)


def _check_executor_options(
    executor: str, shards: int | None, address: str | None, shard: Any, limit: int | None, workers: int | None
) -> None:
    if executor == "ray":
        if shards is None:
            raise click.UsageError("--executor ray needs --shards N: the number of shards to run as Ray tasks")
        for given, flag in ((shard, "--shard"), (limit, "--limit"), (workers, "--workers")):
            if given is not None:
                raise click.UsageError(
                    f"{flag} does not go with --executor ray (each of the --shards N shards is one Ray task on one CPU)"
                )
    elif shards is not None or address is not None:
        raise click.UsageError("--shards and --address go with --executor ray; to run one shard here, give --shard I/N")
    elif shard is not None and limit is not None:
        raise click.UsageError("--limit takes the first N records of the whole input: it does not go with --shard")


def _check_target(target_kept: int | None, executor: str, shard: Any) -> None:
    """A target counts the kept records of the whole input, in input order: one process reads it."""
    if target_kept is None:
        return
    if executor == "ray":
        raise click.UsageError(
            "--target-kept does not go with --executor ray: a target is over the whole input, read in order by one "
            "process (each Ray task refines one shard)"
        )
    if shard is not None:
        raise click.UsageError(
            "--target-kept does not go with --shard: a target is over the whole input, read in order by one process"
        )


@main.command()
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--judge-model", help=JUDGE_MODEL_HELP)
@click.option(
    "--accept-changes", is_flag=True, help="Go on although the pipeline changed since the run folder was started."
)
@click.option(
    "--shard",
    callback=shard_option,
    metavar="I/N",
    help="In a sharded run: retry only shard I of N (default: every shard with errors, then merge).",
)
@click.option("--workers", type=click.IntRange(min=1), help="Processes that refine records, as for refine run.")
def retry(run_dir: Path, judge_model: str | None, accept_changes: bool, shard: Any, workers: int | None) -> None:
    """Re-run only the records in RUN_DIR's errors.jsonl (with the pipeline that made the folder)."""
    from funreason_refine.executors.layout import Shard, is_sharded

    own = Shard.of_folder(run_dir)
    if own is not None or is_sharded(run_dir):
        from funreason_refine.cli.distributed import retry_shards

        retry_shards(run_dir.parent.parent if own else run_dir, own or shard, judge_model, accept_changes, workers)
        return
    if shard is not None:
        raise RefineError(f"{run_dir} is not a sharded run folder (it has no shards/): retry it without --shard")
    loaded = load_run_pipeline(run_dir, run_dir, judge_model)
    limit, target = _read_before(run_dir)
    options = {"limit": limit, "target": target}
    run_loaded(loaded, retry_errors=True, accept_changes=accept_changes, workers=workers, **options)


def _read_before(run_dir: Path) -> tuple[int | None, int | None]:
    """(limit, target) of a retry: how far into the input the run being retried read (its --limit, or the records
    it read to the --target-kept it reached; None: to the end), and a target it fell short of, which the retry
    goes on towards. A retry redoes the errors among those records and reads no further."""
    from funreason_refine.summary import Summary

    try:
        summary = Summary.read(run_dir)
    except RefineError:  # no summary: the run stopped before its end (killed, an outage); run.json says how far
        return _recorded_reading(run_dir)
    if summary.target is not None and summary.target.reached:
        return summary.input.records, None
    return summary.input.limit, summary.target.kept if summary.target is not None else None


def _recorded_reading(run_dir: Path) -> tuple[int | None, int | None]:
    """(limit, None) of a retry of a run that ended before writing summary.json, as run.json recorded it (None:
    to the end). A run with a target is refused: how far it read is known once it is resumed to its end."""
    from funreason_refine.run_identity import recorded_reading

    limit, target = recorded_reading(run_dir) or (None, None)
    if target is not None:
        raise RefineError(
            f"the run in {run_dir} stopped before its end (it has no summary.json) while it read towards "
            f"--target-kept {target}: resume it first with `refine run PIPELINE --out {run_dir} --target-kept "
            f"{target}` (the records in errors.jsonl stay there), then `refine retry {run_dir}`"
        )
    return limit, None


@main.command()
@click.argument("pipeline", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--judge-model", help="Check it as `refine run --judge-model` would run it.")
@input_option
@click.option(
    "--prompts",
    is_flag=True,
    help="Also read the input and count the records whose judge prompts are over their model's max_prompt_tokens "
    "or context window (counted with LiteLLM's tokenizers, offline; no call is made). Exit status 1 when some are "
    "over a context window.",
)
@click.option("--sample", type=click.IntRange(min=1), help="With --prompts: N records drawn at random (seeded).")
def validate(
    pipeline: Path, judge_model: str | None, input_path: str | None, prompts: bool, sample: int | None
) -> None:
    """Check PIPELINE without running anything: keys, stage names, stage configs, specs, and that LiteLLM knows
    each model's provider (offline)."""
    from funreason_refine.config import load_pipeline

    loaded = load_pipeline(pipeline, judge_model=judge_model, input_path=input_path)
    _check_providers(pipeline, loaded)
    names = " -> ".join(s.name for s in loaded.stages)
    out.print(
        "[green]ok[/]: " + escape(f"{pipeline}: {len(loaded.stages)} stages ({names}); output {loaded.output_dir}"),
        highlight=False,
    )
    for warning in loaded.warnings:
        err.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False)
    if prompts:
        _check_prompts(loaded, sample)
    elif loaded.judging is not None:
        out.print(
            "judged: `refine validate --prompts` counts the records whose prompts are too long for their model",
            highlight=False,
            markup=False,
        )


def _check_providers(pipeline: Path, loaded: Any) -> None:
    """A model whose provider LiteLLM cannot tell from its name would fail every call: said before a run."""
    if loaded.judging is None and loaded.source is None:
        return
    from funreason_refine.judge.providers import check_without_calls
    from funreason_refine.judge.stage_models import litellm_models

    models = [*litellm_models(loaded.stages), *([loaded.source] if loaded.source is not None else [])]
    problems = check_without_calls(models)
    if problems:
        raise RefineError(f"{pipeline}: " + "; ".join(problems))


def _check_prompts(loaded: Any, sample: int | None) -> None:
    """The records whose prompts are too long for their model; exit 1 when some are over a context window (a run
    would put them in errors.jsonl)."""
    if loaded.judging is None:
        out.print("no stage asks a model: no prompt to check", highlight=False, markup=False)
        return
    from funreason_refine.estimate.prompts import count_long_prompts

    found = count_long_prompts(loaded, sample)
    read = f"a sample of {found.checked} records" if sample else f"{found.checked} records"
    if not found.records:
        out.print(f"prompts: {read}: every prompt fits its model's limits", highlight=False, markup=False)
    else:
        out.print(f"prompts: {read}:", highlight=False, markup=False)
    for line in found.lines():
        out.print(f"prompts: {line}", highlight=False, markup=False)
    if found.over_window:
        raise RefineError(
            f"{sum(found.over_window.values())} record(s) have a prompt over their model's context window: a run "
            "would put them in errors.jsonl; set max_prompt_tokens in the model's table to discard them, or serve "
            "the model with a larger context"
        )
