"""refine run PIPELINE --executor ray --shards N: the shards as Ray tasks, their progress live, then the merge.

Ray places, runs and retries the tasks (on a cluster, or on a Ray started here); each task runs
one shard through the engine's lifecycle (run_shard) into the shard's own folder, so a task that
Ray retries after its worker died resumes its shard, and running the command again skips the
complete shards and resumes the partial ones. The run folder must be on storage every node sees.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from funreason_refine.config import Pipeline, load_pipeline
from funreason_refine.engine import RunInterrupted, RunResult
from funreason_refine.errors import JudgeOutage, RefineError
from funreason_refine.executors.layout import MARKER, Shard, read_marker
from funreason_refine.executors.merge import MergeResult, merge_run
from funreason_refine.executors.progress import ShardState, Watcher
from funreason_refine.executors.shards import refuse_one_process_folder, refuse_other_split, run_shard
from funreason_refine.refiners.pool import stages_workers_cannot_load
from funreason_refine.run_folder import FolderInUse, RunFolder
from funreason_refine.run_state import stop_remedy

MAX_RETRIES = 3  # times Ray runs a shard's task again after its worker process or node died
POLL_SECONDS = 0.5  # how often the driver reads the shard folders for the display
LOCK_WAIT_SECONDS = 180.0  # how long a task waits for its shard folder's lock
LOCK_POLL_SECONDS = 5.0

OnProgress = Callable[[list[ShardState]], None]


def run_on_ray(
    pipeline: Pipeline,
    shards: int,
    address: str | None = None,
    judge_model: str | None = None,
    fresh: bool = False,
    accept_changes: bool = False,
    on_progress: OnProgress | None = None,
    max_retries: int = MAX_RETRIES,
) -> MergeResult:
    """Run every shard not yet complete as a Ray task, then merge them into the run folder."""
    ray = _import_ray()
    _refuse_code_stages(pipeline)
    run_dir = pipeline.output_dir
    refuse_one_process_folder(run_dir)
    refuse_other_split(run_dir, shards)
    everyone = [Shard(i, shards) for i in range(shards)]
    if fresh:
        _start_over(run_dir, everyone)
    todo = [s for s in everyone if not _complete(s.folder(run_dir), pipeline.config_hash)]
    started_here = not ray.is_initialized()
    if started_here and todo:
        _init(ray, address)
    try:
        task = ray.remote(num_cpus=1, max_retries=max_retries)(shard_task)
        args = (str(pipeline.path), str(run_dir), os.getcwd(), judge_model, pipeline.input_given, accept_changes)
        pending = {task.remote(*args, s.number, s.count): s for s in todo}
        failures, stops, outages = _wait(ray, pending, Watcher(run_dir, shards), on_progress)
    finally:
        if started_here and ray.is_initialized():
            ray.shutdown()
    _check_finished(failures, stops, outages)
    return merge_run(run_dir)


def _check_finished(failures: list[str], stops: list[tuple[Shard, str]], outages: list[JudgeOutage]) -> None:
    """Refuse the merge while a shard failed, was stopped by a judge outage, or stopped early (max_cost)."""
    stopped = [f"{shard}: stopped: {why}" for shard, why in stops]
    if failures:
        raise RefineError(
            f"{len(failures) + len(outages) + len(stops)} shard(s) failed or stopped: "
            + "; ".join(failures + [str(o) for o in outages] + stopped)
            + ". Complete shards are kept and partial ones resume: fix the cause and run the same command again"
        )
    if outages:
        raise outages[0]  # the other shards were complete, or stopped by the same outage: all resume
    if stops:
        budget = stops[0][1].startswith("max_cost")
        per_shard = " (max_cost holds per shard, over each shard's folder)" if budget else ""
        raise RefineError(
            f"{len(stops)} shard(s) stopped before the end of their part, so nothing was merged: "
            + "; ".join(stopped)
            + f". Complete shards are kept and stopped ones resume. {stop_remedy(stops[0][1], 'the same command')}"
            + per_shard
        )


def shard_task(
    pipeline_path: str,
    out_dir: str,
    cwd: str,
    judge_model: str | None,
    input_given: str | None,
    accept_changes: bool,
    number: int,
    count: int,
) -> dict[str, Any]:
    """One shard, in a Ray worker: the pipeline loaded as the driver named it, from the driver's folder."""
    home = os.getcwd()
    try:
        os.chdir(cwd)  # the paths the driver gave, read as it reads them (the same source file names in every line)
    except OSError:
        raise RefineError(
            f"the folder {cwd} that `refine run` was started in is not on this node: the pipeline, its input and "
            "the run folder must be on storage every node sees, at the same path"
        ) from None
    try:
        pipeline = load_pipeline(Path(pipeline_path), Path(out_dir), judge_model=judge_model, input_path=input_given)
        result = _run_when_free(pipeline, Shard(number, count), accept_changes)
        return {"shard": f"{number}/{count}", "stopped": result.stopped, "errors": result.errors}
    except JudgeOutage as exc:  # a clean stop (not a failure for Ray to retry), told to the driver
        return {"shard": f"{number}/{count}", "outage": [exc.model, exc.servers, exc.seconds, exc.last_error, exc.up]}
    finally:
        os.chdir(home)


def _run_when_free(pipeline: Pipeline, shard: Shard, accept_changes: bool) -> RunResult:
    """Run the shard; while its folder is locked, wait: a task run again after its node died finds the
    dead node's lock on a network file system until the server lets it lapse (NFSv4: 90 s)."""
    waited = 0.0
    while True:
        try:
            return run_shard(pipeline, shard, workers=1, accept_changes=accept_changes)
        except FolderInUse:
            if waited >= LOCK_WAIT_SECONDS:
                raise
            time.sleep(LOCK_POLL_SECONDS)
            waited += LOCK_POLL_SECONDS


def _init(ray: Any, address: str | None) -> None:
    """Join the cluster at ``address`` (None: start a Ray here); a cluster that cannot be reached is said, with
    what to do."""
    try:
        ray.init(address=address, log_to_driver=False)
    except ConnectionError as exc:
        at = f" at --address {address}" if address else ""
        raise RefineError(
            f"cannot reach the Ray cluster{at}: {exc} Start it with `ray start --head` (and "
            "`ray start --address HEAD:6379` on the other nodes), give the address `ray start` printed (or auto on "
            "a node of the cluster), or leave --address out to start a Ray here. No shard was run"
        ) from None


def _wait(
    ray: Any, pending: dict[Any, Shard], watcher: Watcher, on_progress: OnProgress | None
) -> tuple[list[str], list[tuple[Shard, str]], list[JudgeOutage]]:
    """Wait for the tasks, showing progress; what each failed task said, the shards stopped early (max_cost) and
    why, and the judge outages that stopped some."""
    failures: list[str] = []
    stops: list[tuple[Shard, str]] = []
    outages: list[JudgeOutage] = []
    refs = list(pending)
    try:
        while refs:
            done, refs = ray.wait(refs, num_returns=1, timeout=POLL_SECONDS)
            for ref in done:
                try:
                    outcome = ray.get(ref)
                except ray.exceptions.RayError as exc:
                    failures.append(f"{pending[ref]}: {_what_failed(exc)}")
                else:
                    if outcome.get("outage"):
                        outages.append(JudgeOutage(*outcome["outage"]))
                    elif outcome["stopped"]:
                        stops.append((pending[ref], outcome["stopped"]))
            if on_progress is not None:
                on_progress(watcher.states())
    except KeyboardInterrupt:
        for ref in refs:
            ray.cancel(ref)  # the task stops as after Ctrl-C: what it finished is saved
        raise RunInterrupted(
            "interrupted; complete shards are kept and partial ones resume: run the same command again"
        ) from None
    return failures, stops, outages


def _what_failed(exc: Exception) -> str:
    """What a task's failure says: our own errors' words, else the exception's type too (a KeyError's words alone
    are a bare key)."""
    cause = getattr(exc, "cause", None) or exc
    return str(cause) if isinstance(cause, RefineError) else f"{type(cause).__name__}: {cause}"


def _complete(folder: Path, config_hash: str) -> bool:
    marker = read_marker(folder)
    return bool(marker and marker.get("complete") and marker.get("config_hash") == config_hash)


def _start_over(run_dir: Path, shards: list[Shard]) -> None:
    """--fresh: each shard folder started over here, once, so that a retried task resumes instead."""
    for shard in shards:
        folder = shard.folder(run_dir)
        if not folder.is_dir():
            continue
        run_folder = RunFolder(folder)
        run_folder.lock()
        try:
            run_folder.clear()
            (folder / MARKER).unlink(missing_ok=True)
        finally:
            run_folder.close()


def _refuse_code_stages(pipeline: Pipeline) -> None:
    missing = stages_workers_cannot_load(pipeline.stages)
    if missing:
        names = ", ".join(f"{s.name} (plugin {s.plugin})" for s in missing)
        raise RefineError(
            f"stage(s) {names} were registered in code; Ray tasks load only built-in plugins and plugins installed "
            "through the funreason_refine entry point group (on every node). Install the plugin as a package"
        )


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise RefineError(
            'the Ray executor needs Ray: pip install "funreason-refine[ray]" (on every node of the cluster)'
        ) from None
    return ray
