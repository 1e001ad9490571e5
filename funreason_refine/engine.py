"""A run's lifecycle: open the run folder (lock, resume), let a refiner refine the input, account, finish.

Data flows one way: reader -> refiner (refine: stages, judges) -> dataset audits -> run folder ->
summary. The run folder writes and counts each record's line, in input order; every input record
ends in exactly one of kept / discarded / quarantined / errors, which is checked at the end of
every run.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from funreason_refine import __version__
from funreason_refine.audit.dataset import DatasetAudit
from funreason_refine.config import Pipeline
from funreason_refine.errors import RefineError, RunFolderError
from funreason_refine.plugin_manager import call_hook, get_plugin_manager
from funreason_refine.readers import InputStream, RawItem
from funreason_refine.record import Outcome
from funreason_refine.refiners.base import Emit, EnoughKept, Refiner
from funreason_refine.run_folder import RunFolder, Written, own_file, refuse_past_limit, write_summary
from funreason_refine.run_identity import (
    check_input,
    configurations,
    note_configuration_change,
    note_reading,
    record_input,
)
from funreason_refine.summary import InputInfo, InputPart, JudgeSection, Summary, Timings

if TYPE_CHECKING:
    from funreason_refine.readers.parts import Part
    from funreason_refine.run_target import KeptCount

# Below this input size worker start-up (about a second) costs more than it saves.
PARALLEL_MIN_BYTES = 8 << 20


@dataclass
class Progress:
    """What the engine reports while it runs; the CLI draws it."""

    on_bytes: Callable[[int], None] | None = None
    on_outcome: Callable[[str], None] | None = None
    on_judge: Callable[[dict[str, Any]], None] | None = None
    on_resumed: Callable[[int], None] | None = None  # the records done before this run, once the folder is open


@dataclass
class RunResult:
    summary: Summary
    out_dir: Path
    resumed: int = 0
    workers: int = 1
    stopped: str | None = None
    start_method: str | None = None  # how worker processes were started; None without workers
    unread: str | None = None  # the input could not be read to its end: where, how much was left, what to do

    @property
    def errors(self) -> int:
        """Records stopped by infrastructure failures (errors.jsonl): `refine retry` redoes them."""
        return self.summary.errors


class RunInterrupted(RefineError):
    """Ctrl-C or SIGTERM: what was finished is saved."""


def run_pipeline(
    pipeline: Pipeline,
    limit: int | None = None,
    progress: Progress | None = None,
    workers: int | None = None,
    fresh: bool = False,
    accept_changes: bool = False,
    retry_errors: bool = False,
    part: Part | None = None,
    target: int | None = None,
    on_open: Callable[[], None] | None = None,
) -> RunResult:
    """Run (or resume) a pipeline into its run folder.

    ``fresh`` starts the folder over (the judge cache stays); ``accept_changes`` goes on in a
    folder started with another configuration; ``retry_errors`` redoes the records of errors.jsonl;
    ``part``: refine only that part of the input (a shard: executors/shards.py gives it its folder);
    ``target``: stop once that many records are kept, the first in input order (run_target.py);
    ``on_open``: called before the run first changes its folder: once it passed every check, or, with
    ``fresh``, before it is cleared (a shard marks itself incomplete there: a refused run leaves its mark).
    """
    if target is not None and part is not None:
        raise RefineError("a target of kept records is over the whole input: it does not go with a shard")
    if target is not None and pipeline.judging is not None and pipeline.judging.batch_records:
        raise RefineError(
            "--target-kept does not go with batch = true: batch jobs are submitted a wave of records ahead, and "
            "those past the target would be paid for and never collected; set batch = false for this run, or "
            "leave the target out"
        )
    progress = progress or Progress()
    stream = InputStream.open(pipeline.input, pipeline.input_name)
    # A shard's kept records are audited once, in input order, when the shards are merged.
    audit = DatasetAudit(pipeline.audit) if part is None else None
    folder = _open_folder(pipeline, stream, fresh, accept_changes, retry_errors, audit, target, limit, on_open)
    kept = _kept_count(target, folder.tally.outcomes[Outcome.KEPT]) if target is not None else None
    if progress.on_resumed is not None:
        progress.on_resumed(folder.resumed)
    started, t0 = datetime.now(UTC), time.perf_counter()
    try:
        refiner = choose_refiner(pipeline, stream, workers, progress, audit)
        items = stream.raw_items(skip=folder.done, limit=limit, on_bytes=progress.on_bytes, parse=False, part=part)
        stopped = _refine(refiner, items, emitter(folder, audit, progress, target=kept), kept)
    except KeyboardInterrupt:
        raise RunInterrupted(
            f"interrupted after {len(folder.done)} records; everything finished is saved in {folder.path}: "
            "run the same command again to resume"
        ) from None
    finally:
        folder.close()
    reached = kept is not None and kept.reached
    _check_accounting(folder, stream.count, read_to_the_end=stopped is None and not reached)
    # What the reader could not read (a JSON array it lost its way in) leaves the run incomplete, as max_cost does.
    unread = stream.unread if stopped is None and not reached else None
    stopped = stopped or unread
    if reached and not folder.done.is_prefix():
        raise RunFolderError(
            f"accounting error: the records before the one that reached --target-kept do not all have an outcome "
            f"in {folder.path}; please report this with the run folder"
        )
    summary = _summary(pipeline, folder, stream, refiner, limit, stopped, started, time.perf_counter() - t0)
    if part is not None:
        summary.shard = InputPart.model_validate(part.as_dict())
        summary.input.formats = stream.formats or None  # even one: the merge lists those of every shard
    if kept is not None:
        summary = _with_target(summary, kept, len(folder.done), limit, stopped if unread is None else None, unread)
    finish(folder.path, summary, audit)
    return RunResult(summary, folder.path, folder.resumed, refiner.workers, stopped, refiner.start_method, unread)


def _kept_count(target: int, kept: int) -> KeptCount:
    from funreason_refine.run_target import KeptCount  # runs without a target never load it

    return KeptCount(target, kept)


def _refine(refiner: Refiner, items: Iterator[RawItem], emit: Emit, kept: KeptCount | None) -> str | None:
    """The refiner's run of the items; why it stopped before the end (max_cost), or None. A target already
    reached in the folder reads nothing; one reached in this run stops it (EnoughKept), with nothing to say."""
    if kept is not None and kept.reached:
        return None
    try:
        return refiner.run(items, emit)
    except EnoughKept:
        return None


def _with_target(
    summary: Summary, kept: KeptCount, done: int, limit: int | None, stopped: str | None, unread: str | None
) -> Summary:
    """The summary of a run with a target: the target's section (``stopped``: by max_cost; ``unread``: where the
    input could not be read on); when it was reached, the records read to it (``done``: every record up to the one
    that reached it has its outcome) are the run's input records."""
    records = done if kept.reached else summary.input.records
    section = kept.section(done, stopped, limit, unread)
    return summary.model_copy(
        update={"target": section, "input": summary.input.model_copy(update={"records": records})}
    )


def finish(run_dir: Path, summary: Summary, audit: DatasetAudit | None) -> None:
    """The end every run shares, one process or a merge of shards: the dataset audits' section,
    summary.json, the run_finished hooks."""
    if audit is not None:
        audit.add_to(summary)
    write_summary(run_dir, summary)
    call_hook(get_plugin_manager().hook.run_finished, run_dir=run_dir, summary=summary.as_dict())


def choose_refiner(
    pipeline: Pipeline,
    stream: InputStream,
    workers: int | None,
    progress: Progress | None = None,
    audit: DatasetAudit | None = None,
) -> Refiner:
    """Judged pipelines on one event loop; rules only in this process, or in worker processes for
    inputs over PARALLEL_MIN_BYTES (or as ``workers`` says). Each computes what the dataset audits
    read of a kept record where it refines it (workers read the pipeline's [audit] themselves)."""
    features = audit.features if audit is not None else None
    if pipeline.judging is not None:
        from funreason_refine.refiners.judged import JudgedRefiner

        on_usage = progress.on_judge if progress is not None else None
        return JudgedRefiner(stream, pipeline.stages, pipeline.judging, pipeline.output_dir, on_usage, features)
    if workers is None:
        workers = default_workers(stream, pipeline)
    if workers > 1:
        from funreason_refine.refiners.pool import PoolRefiner

        return PoolRefiner(pipeline, stream, workers, audited=audit is not None)
    from funreason_refine.refiners.local import InProcessRefiner

    return InProcessRefiner(stream, pipeline.stages, features)


def input_files(pipeline: Pipeline, stream: InputStream) -> list[Path]:
    """The local files a run reads: the input, and a BFCL input's answer file."""
    files = [pipeline.input.path]
    if stream.format == "bfcl":
        from funreason_refine.readers.bfcl import default_answers_path

        files.append(pipeline.input.answers or default_answers_path(pipeline.input.path))
    return [f for f in files if f.is_file()]


def default_workers(stream: InputStream, pipeline: Pipeline) -> int:
    """One process for a small input (or stages a worker process would not have), else one per CPU, up to 8."""
    if stream.total_bytes < PARALLEL_MIN_BYTES:
        return 1
    from funreason_refine.refiners.pool import stages_workers_cannot_load

    if stages_workers_cannot_load(pipeline.stages):
        return 1
    return max(1, min(os.cpu_count() or 1, 8))


def _open_folder(
    pipeline: Pipeline,
    stream: InputStream,
    fresh: bool,
    accept_changes: bool,
    retry_errors: bool,
    audit: DatasetAudit | None,
    target: int | None = None,
    limit: int | None = None,
    on_open: Callable[[], None] | None = None,
) -> RunFolder:
    """The run folder, locked for this process, checked to be made from this input and configuration
    (or the change accepted and noted) and not to hold more kept records than ``target``, its finished
    work read back (and into the audits); how far this run reads (``limit``, ``target``) recorded in
    run.json, where a run that never ends keeps it for `refine retry`."""
    refuse_own_files(pipeline, stream)
    folder = RunFolder(pipeline.output_dir)
    folder.lock("refine retry" if retry_errors else "refine run")
    try:
        if fresh:
            _call(on_open)
            folder.clear()
        config = folder.check_config(
            str(pipeline.path.resolve()),
            pipeline.config or {},
            pipeline.config_hash,
            accept_changes,
            input_given=pipeline.input_given,
        )
        identities = check_input(folder.path, input_files(pipeline, stream))
        if target is not None:
            from funreason_refine.run_target import refuse_over_target

            refuse_over_target(folder.path, target)
        if limit is not None:
            refuse_past_limit(folder.path, limit)
        # After every refusal: a refused run leaves run.json as it was.
        if not fresh:
            _call(on_open)
        folder.record_config(config)
        record_input(folder.path, identities)
        note_reading(folder.path, limit, target)
        if retry_errors:
            folder.forget_errors()
        folder.open(on_read_back=audit.read_back if audit is not None else None)
        if config is not None and config.replaced is not None and folder.resumed:
            note_configuration_change(folder.path, config.replaced, folder.resumed)
    except BaseException:
        folder.close()
        raise
    return folder


def refuse_own_files(pipeline: Pipeline, stream: InputStream) -> None:
    """A run reads none of the files its run folder writes (its input, a BFCL answer file, an eval set): it would
    read its own records back as finished work, and --fresh would delete them (load_pipeline says so first)."""
    for file in [*input_files(pipeline, stream), *pipeline.audit.eval_sets]:
        problem = own_file(pipeline.output_dir, file)
        if problem is not None:
            raise RunFolderError(problem)


def _call(hook: Callable[[], None] | None) -> None:
    if hook is not None:
        hook()


def emitter(
    folder: RunFolder,
    audit: DatasetAudit | None,
    progress: Progress | None = None,
    tell: bool = True,
    target: KeptCount | None = None,
) -> Emit:
    """What happens to each finished record, in input order, in every run and in a merge of shards: the
    dataset audits' step (a kept record may leave as a duplicate), its line written and counted,
    progress, plugins told (``tell``: a merge does not tell them again what the shards told), and the
    ``target`` counted (EnoughKept once the record that reaches it is written)."""
    progress = progress or Progress()
    hooks = get_plugin_manager().hook
    observed = tell and bool(hooks.record_finished.get_hookimpls())

    def emit(written: Written) -> None:
        if audit is not None:
            written = audit.check(written)
        if observed:  # before its line is written: a record a plugin failed on is refined and told again on resume
            record = json.loads(written.line)
            call_hook(hooks.record_finished, kind=str(written.outcome), record=record, run_dir=folder.path)
        folder.record(written)
        if progress.on_outcome is not None:
            progress.on_outcome(written.outcome)
        if target is not None:
            target.count(written)

    return emit


def _check_accounting(folder: RunFolder, total_input: int, read_to_the_end: bool) -> None:
    """Every record written is in one outcome file, once; a run that read its input to the end (or to --limit)
    has an outcome for each of its records. A run stopped early (max_cost, a target reached) left the rest
    unread."""
    if folder.tally.total != len(folder.done) or (read_to_the_end and len(folder.done) != total_input):
        raise RunFolderError(
            f"accounting error: {total_input} input records but {folder.tally.total} outcomes "
            f"in {folder.path}; please report this with the run folder"
        )


def _summary(
    pipeline: Pipeline,
    folder: RunFolder,
    stream: InputStream,
    refiner: Refiner,
    limit: int | None,
    stopped: str | None,
    started: datetime,
    seconds: float,
) -> Summary:
    records_this_run = len(folder.done) - folder.resumed
    mixed = configurations(folder.path, pipeline.config_hash, len(folder.done))
    outcomes, stages = folder.tally.counts(
        [s.name for s in pipeline.stages],
        hard_pool=any(s.on_fail == "hard_pool" for s in pipeline.stages),
        thresholds={s.name: s.scorer.threshold for s in pipeline.stages if s.scorer is not None},
    )
    return Summary(
        version=__version__,
        pipeline=str(pipeline.path),
        config_hash=pipeline.config_hash,
        complete=stopped is None,
        stopped=stopped,
        input=InputInfo(
            path=str(pipeline.input.path.resolve()),
            format=stream.format,
            formats=stream.formats if len(stream.formats) > 1 else None,
            records=stream.count if stopped is None else None,
            limit=limit,
        ),
        outcomes=outcomes,
        stages=stages,
        judge=_judge_summary(pipeline, refiner),
        timings=Timings(
            started=started.isoformat(timespec="seconds"),
            finished=datetime.now(UTC).isoformat(timespec="seconds"),
            seconds=round(seconds, 3),
            records_this_run=records_this_run,
            resumed_records=folder.resumed,
            records_per_second=round(records_this_run / seconds, 1) if seconds > 0 else None,
            workers=refiner.workers,
        ),
        configurations=mixed,
    )


def _judge_summary(pipeline: Pipeline, refiner: Refiner) -> JudgeSection:
    """Calls, tokens and cost of this run (cached answers cost nothing), per stage."""
    usage = refiner.judge_usage()
    if usage is None:
        return JudgeSection()
    judging = pipeline.judging
    generators = sorted({s.generator.model for s in pipeline.stages if s.generator is not None})
    return JudgeSection.model_validate(
        {
            "model": judging.defaults.model if judging is not None and judging.defaults else None,
            "generator": ", ".join(generators) or None,
            **usage,
        }
    )
