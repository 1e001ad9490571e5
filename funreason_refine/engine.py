"""The engine: stream records from the reader through refine_record into the run folder.

Data flows one way: reader -> refine (stages, judges) -> run folder -> summary. The main
process reads and writes, in input order; refining runs in the main process, in worker
processes fed a bounded window of batches (large rules-only inputs), or as concurrent asyncio
tasks (judged pipelines). Without a judge, records are refined STAGE_BATCH at a time, stage by
stage (refine_batch). Each record leaves in exactly one of kept / discarded / quarantined /
errors; this is asserted at the end of every run.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import Any, NamedTuple

from funreason_refine import __version__
from funreason_refine.config import ConfiguredStage, Pipeline, load_pipeline
from funreason_refine.errors import PluginError, RefineError, RunFolderError
from funreason_refine.identity_memo import IdentityMemo
from funreason_refine.judge.client import BudgetStop
from funreason_refine.judge.runner import JudgeRunner
from funreason_refine.plugin_manager import get_plugin_manager
from funreason_refine.readers import InputStream, RawItem
from funreason_refine.record import Quarantined
from funreason_refine.refine import Outcome, refine_batch, refine_record
from funreason_refine.run_folder import RunFolder, to_json_line

BATCH = 512  # records per task sent to a worker process (fewer, larger tasks: less overhead per record)
STAGE_BATCH = 64  # records refined together, stage by stage (refine_batch): few enough to stay in the CPU caches
# Below this input size worker start-up (about a second) costs more than it saves.
PARALLEL_MIN_BYTES = 8 << 20


class Written(NamedTuple):
    """A finished record, serialised: what the main process writes and counts.

    A tuple of plain values: worker processes send thousands a second, and a dataclass or a
    model would cost more to pickle than the record costs to write.
    """

    index: int
    kind: str
    line: bytes
    trail: tuple[tuple[str, str, str | None], ...] = ()
    stage: str | None = None
    reason: str | None = None


# What the tally counts of a step; most steps are shared (see refine._step), and so are these.
_counted = IdentityMemo(lambda s: (s.stage, s.verdict, s.reason), max_size=4096)


def _written(outcome: Outcome) -> Written:
    trail = tuple(map(_counted, outcome.record.trail))
    return Written(
        outcome.record.index, outcome.kind, to_json_line(outcome.line()), trail, outcome.stage, outcome.reason
    )


def _quarantined(item: Quarantined) -> Written:
    return Written(item.index, "quarantined", to_json_line(item))


def _batches(raws: Iterator[RawItem], size: int) -> Iterator[list[RawItem]]:
    return iter(lambda: list(islice(raws, size)), [])


def process(raws: list[RawItem], stream: InputStream, stages: list[ConfiguredStage]) -> list[Written]:
    """Rules-only: read, refine and serialise raw items, STAGE_BATCH at a time; results in input order."""
    written: list[Written] = []
    for start in range(0, len(raws), STAGE_BATCH):
        items = [stream.convert(raw) for raw in raws[start : start + STAGE_BATCH]]
        outcomes = iter(refine_batch([item for item in items if not isinstance(item, Quarantined)], stages))
        written.extend(
            _quarantined(item) if isinstance(item, Quarantined) else _written(next(outcomes)) for item in items
        )
    return written


async def process_judged(
    raw: RawItem, stream: InputStream, stages: list[ConfiguredStage], judge: JudgeRunner
) -> Written:
    item = stream.convert(raw)
    if isinstance(item, Quarantined):
        return _quarantined(item)
    return _written(await refine_record(item, stages, judge, owned=True))


def _in_process(raws: Iterator[RawItem], stream: InputStream, stages: list[ConfiguredStage]) -> Iterator[Written]:
    for batch in _batches(raws, STAGE_BATCH):
        yield from process(batch, stream, stages)


# --- worker processes -------------------------------------------------------------------

_WORKER: tuple[InputStream, list[ConfiguredStage]] | None = None


def _work(batch: list[RawItem], pipeline_path: str, out_dir: str) -> list[Written]:
    """Runs in a worker process; a spawned worker loads the pipeline from its file on first use."""
    global _WORKER
    if _WORKER is None:
        try:
            pipeline = load_pipeline(Path(pipeline_path), Path(out_dir))
        except RefineError as exc:
            raise RefineError(
                f"a worker process could not load the pipeline: {exc}. Spawned worker processes "
                "see installed plugins only, not stages registered in code; install the "
                "plugin or use --workers 1"
            ) from None
        _WORKER = (_open_stream(pipeline), pipeline.stages)
    stream, stages = _WORKER
    return process(batch, stream, stages)


def _worker_start() -> None:
    # Ctrl-C reaches the whole process group: the main process stops cleanly and shuts the pool
    # down, so a worker ignores it rather than die and read as a crash. A forked worker also
    # inherits the CLI's SIGTERM handler; a worker sent SIGTERM just ends.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _start_method() -> str:
    """fork where it is safe, spawn elsewhere.

    Linux only. A forked worker starts at once with the pipeline already loaded (plugins registered in code
    included), where a spawned one imports everything again (half a second each). Forking a
    process that runs other threads can deadlock the child on a lock one of them held, so fork
    is used only while the main thread is the only one (the CLI's progress display refreshes
    from the engine's callbacks, not from a thread, for rules-only runs).
    """
    if sys.platform.startswith("linux") and threading.active_count() == 1:
        return "fork"
    return "spawn"  # macOS: system libraries are not fork-safe (Python's own default there is spawn)


def _in_pool(
    raws: Iterator[RawItem], pipeline: Pipeline, stream: InputStream, workers: int, method: str
) -> Iterator[Written]:
    """Refine batches in worker processes; yield results in input order, a bounded window ahead."""
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    global _WORKER
    if method == "fork":
        from funreason_refine.stages.schemas import preload

        preload()
        _WORKER = (stream, pipeline.stages)  # inherited by the workers
    args = (str(pipeline.path), str(pipeline.output_dir))
    try:
        with ProcessPoolExecutor(
            workers, mp_context=multiprocessing.get_context(method), initializer=_worker_start
        ) as pool:
            window: deque = deque()
            try:
                for batch in _batches(raws, BATCH):
                    window.append(pool.submit(_work, batch, *args))
                    if len(window) >= 2 * workers + 1:
                        yield from window.popleft().result()
                while window:
                    yield from window.popleft().result()
            except BrokenProcessPool:
                raise RunFolderError(
                    "a worker process died (out of memory?); what was finished is saved: run the "
                    "same command again to resume, with --workers 1 to stay in one process"
                ) from None
    finally:
        _WORKER = None


def _open_stream(pipeline: Pipeline) -> InputStream:
    return InputStream(
        pipeline.input.path, pipeline.input.format, pipeline.input.answers, pipeline.input.max_record_bytes
    )


def default_workers(pipeline: Pipeline) -> int:
    if pipeline.input.path.stat().st_size < PARALLEL_MIN_BYTES:
        return 1
    return max(1, min(os.cpu_count() or 1, 8))


@dataclass
class Progress:
    """What the engine reports while it runs; the CLI draws it."""

    on_bytes: Callable[[int], None] | None = None
    on_outcome: Callable[[str], None] | None = None
    on_judge: Callable[[dict[str, Any]], None] | None = None


@dataclass
class RunResult:
    summary: dict[str, Any]
    out_dir: Path
    resumed: int = 0
    workers: int = 1
    stopped: str | None = None
    start_method: str | None = None  # how worker processes were started: fork or spawn; None without workers


async def _run_judged(
    raws: Iterator[RawItem],
    stream: InputStream,
    pipeline: Pipeline,
    folder: RunFolder,
    emit: Callable[[Written], None],
    progress: Progress,
) -> tuple[JudgeRunner, str | None]:
    """Records concurrently, judge calls bounded by the client, outcomes written in input order."""
    from funreason_refine.judge.cache import AnswerCache
    from funreason_refine.judge.client import LLMClient

    judging = pipeline.judging
    assert judging is not None
    client = LLMClient(
        max_concurrency=judging.max_concurrency, cache=AnswerCache(folder.path), max_cost=judging.max_cost
    )
    runner = JudgeRunner(client, judging.stages, judging.generator, protocol_retries=judging.protocol_retries)
    # Enough records in flight to keep every call slot busy through five sequential stages, and
    # a slow answer holds back only the writing of what follows it, never the work.
    window = max(64, 4 * judging.max_concurrency)
    pending: deque[asyncio.Task[Written]] = deque()

    def report() -> None:
        if progress.on_judge is not None:
            total = client.total
            progress.on_judge(
                {
                    "calls": total.calls,
                    "cached": total.cached,
                    "in_flight": client.in_flight,
                    "tokens": total.prompt_tokens + total.completion_tokens,
                    "cost_usd": total.cost_usd,
                }
            )

    async def emit_head() -> bool:
        """Write the oldest record's outcome; False once the budget stopped it (nothing after it is
        written either, so the files stay in input order; their answers are cached for the next run)."""
        try:
            written = await pending.popleft()
        except BudgetStop:
            runner.over_budget()  # records why the run stopped
            return False
        emit(written)
        report()
        return True

    try:
        going = True
        for raw in raws:
            pending.append(asyncio.ensure_future(process_judged(raw, stream, pipeline.stages, runner)))
            await asyncio.sleep(0)  # let the new record start: the first calls go out while reading goes on
            while going and pending and (len(pending) >= window or pending[0].done()):
                going = await emit_head()
            if not going or runner.over_budget():
                break
        while going and pending:
            going = await emit_head()
    finally:
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        if client.cache is not None:
            client.cache.close()
    return runner, runner.stopped


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
) -> RunResult:
    """Run (or resume) a pipeline into its run folder.

    ``fresh`` starts the folder over (the judge cache stays); ``accept_changes`` goes on in a
    folder started with another configuration; ``retry_errors`` redoes the records of errors.jsonl.
    """
    progress = progress or Progress()
    judged = pipeline.judging is not None
    workers = 1 if judged else (workers or default_workers(pipeline))
    start_method = _start_method() if workers > 1 else None
    stream = _open_stream(pipeline)
    folder = RunFolder(pipeline.output_dir)
    folder.lock()
    try:
        if fresh:
            folder.clear()
        folder.check_config(str(pipeline.path.resolve()), pipeline.config or {}, pipeline.config_hash, accept_changes)
        if retry_errors:
            folder.forget_errors()
        folder.open()
    except BaseException:
        folder.close()
        raise
    resumed = folder.resumed
    started = datetime.now(UTC)
    t0 = time.perf_counter()
    seen = 0
    stopped: str | None = None
    runner: JudgeRunner | None = None
    hooks = get_plugin_manager().hook
    observed = bool(hooks.record_finished.get_hookimpls())

    def emit(written: Written) -> None:
        nonlocal seen
        folder.write(written.kind, written.index, written.line)
        folder.tally.add(written.kind, written.trail, written.stage, written.reason)
        seen += 1
        if progress.on_outcome is not None:
            progress.on_outcome(written.kind)
        if observed:
            _call_plugins(
                hooks.record_finished, kind=written.kind, record=json.loads(written.line), run_dir=folder.path
            )

    try:
        # JSONL lines are parsed where they are refined (in the workers, when there are some).
        raws = stream.raw_items(skip=folder.done, limit=limit, on_bytes=progress.on_bytes, parse=False)
        if judged:
            runner, stopped = asyncio.run(_run_judged(raws, stream, pipeline, folder, emit, progress))
        else:
            results: Iterable[Written] = (
                _in_process(raws, stream, pipeline.stages)
                if workers == 1
                else _in_pool(raws, pipeline, stream, workers, start_method)
            )
            for written in results:
                emit(written)
        total_input = stream.count
    except KeyboardInterrupt:
        raise RunInterrupted(
            f"interrupted after {len(folder.done)} records; everything finished is saved in "
            f"{folder.path}: run the same command again to resume"
        ) from None
    finally:
        folder.close()
    seconds = time.perf_counter() - t0
    if folder.tally.total != len(folder.done) or (stopped is None and len(folder.done) != total_input):
        raise RunFolderError(
            f"accounting error: {total_input} input records but {folder.tally.total} outcomes "
            f"in {folder.path}; please report this with the run folder"
        )
    summary = {
        "version": __version__,
        "pipeline": str(pipeline.path),
        "config_hash": pipeline.config_hash,
        "complete": stopped is None,
        "stopped": stopped,
        "input": {
            "path": str(pipeline.input.path.resolve()),
            "format": stream.format,
            "records": total_input if stopped is None else None,
            "limit": limit,
        },
        **folder.tally.as_dict(
            [s.name for s in pipeline.stages], hard_pool=any(s.on_fail == "hard_pool" for s in pipeline.stages)
        ),
        "judge": _judge_summary(pipeline, runner),
        "timings": {
            "started": started.isoformat(timespec="seconds"),
            "finished": datetime.now(UTC).isoformat(timespec="seconds"),
            "seconds": round(seconds, 3),
            "records_this_run": seen,
            "resumed_records": resumed,
            "records_per_second": round(seen / seconds, 1) if seconds > 0 else None,
            "workers": workers,
        },
    }
    folder.write_summary(summary)
    _call_plugins(hooks.run_finished, run_dir=folder.path, summary=summary)
    return RunResult(
        summary=summary,
        out_dir=folder.path,
        resumed=resumed,
        workers=workers,
        stopped=stopped,
        start_method=start_method,
    )


def _call_plugins(hook: Any, **kwargs: Any) -> None:
    """Call a lifecycle hook; a plugin that raises stops the run with a message naming it."""
    try:
        hook(**kwargs)
    except Exception as exc:
        plugins = ", ".join(impl.plugin_name for impl in hook.get_hookimpls())
        raise PluginError(
            f"the {hook.name} hook of plugin(s) {plugins} raised {type(exc).__name__}: {exc}. "
            "Everything finished so far is saved; fix or remove the plugin and run again"
        ) from exc


def _judge_summary(pipeline: Pipeline, runner: JudgeRunner | None) -> dict[str, Any]:
    """Calls, tokens and cost of this run (cached answers cost nothing), per stage."""
    judging = pipeline.judging
    if runner is None or judging is None:
        return {
            "model": None,
            "calls": 0,
            "cached": 0,
            "retries": 0,
            "prompt_tokens": 0,
            "completion_tokens": 0,
            "cost_usd": 0.0,
            "per_stage": {},
            "notes": [],
        }
    return {
        "model": judging.defaults.model if judging.defaults else None,
        "generator": judging.generator.model if judging.generator else None,
        **runner.client.total.as_dict(),
        "per_stage": {stage: usage.as_dict() for stage, usage in runner.client.usage.items()},
        "notes": sorted(runner.client.notes),
    }
