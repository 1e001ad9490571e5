"""Rules only, in worker processes: batches of raw lines out, serialised lines back, in input order.

Workers start the same way wherever they run: from a fork server (a clean process that has
imported the package once; Linux and macOS), or spawned where there is none (Windows). Either
way a worker loads the pipeline from its file, so it sees the stages a new process sees: built
in, installed through an entry point, or defined by a stage spec. A stage registered in code at
run time is refused before any worker starts.
"""

from __future__ import annotations

import multiprocessing
import os
import select
import signal
import threading
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING

from funreason_refine.errors import RefineError, RunFolderError
from funreason_refine.plugin_manager import loaded_at_start
from funreason_refine.readers import InputStream, RawItem
from funreason_refine.refiners.base import Emit, EnoughKept, Refiner
from funreason_refine.refiners.local import refine_raw
from funreason_refine.run_folder import Written
from funreason_refine.stages.base import PipelineStage

if TYPE_CHECKING:
    from funreason_refine.audit.features import FeatureReader
    from funreason_refine.config import Pipeline

Refined = tuple[Written, list[str]]  # a record written, and the formats first met (in its worker) at it
BATCH = 512  # records per task sent to a worker (fewer, larger tasks: less overhead per record)
# Imported once by the fork server, so that each worker starts with them.
PRELOAD = ["funreason_refine.config", "funreason_refine.refiners.pool", "jsonschema", "jsonschema_rs"]


def start_method() -> str:
    """forkserver where the platform has it, else spawn."""
    return "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"


def stages_workers_cannot_load(stages: list[PipelineStage]) -> list[PipelineStage]:
    """The stages a worker process would not have: registered in code by a plugin it does not load."""
    return [s for s in stages if s.plugin != "stage spec" and not loaded_at_start(s.plugin)]


class PoolRefiner(Refiner):
    def __init__(self, pipeline: Pipeline, stream: InputStream, workers: int, audited: bool = True):
        missing = stages_workers_cannot_load(pipeline.stages)
        if missing:
            names = ", ".join(f"{s.name} (plugin {s.plugin})" for s in missing)
            raise RefineError(
                f"stage(s) {names} were registered in code; worker processes load only built-in plugins and "
                "plugins installed through the funreason_refine entry point group. Install the plugin as a "
                "package, or run with --workers 1"
            )
        self.args = (str(pipeline.path), str(pipeline.output_dir), pipeline.input_given, audited, os.getpid())
        self.stream = stream  # told the formats the workers read records in, as if it had read them itself
        self.workers = workers
        self.start_method = start_method()

    def run(self, items: Iterator[RawItem], emit: Emit) -> None:
        from concurrent.futures import ProcessPoolExecutor
        from concurrent.futures.process import BrokenProcessPool

        context = multiprocessing.get_context(self.start_method)
        if self.start_method == "forkserver":
            context.set_forkserver_preload(PRELOAD)
        with ProcessPoolExecutor(self.workers, mp_context=context, initializer=_start, initargs=self.args) as pool:
            window: deque[Future[list[Refined]]] = deque()
            try:
                for batch in iter(lambda: list(islice(items, BATCH)), []):
                    window.append(pool.submit(_work, batch))
                    if len(window) > 2 * self.workers:
                        _emit_all(window.popleft(), emit, self.stream)
                while window:
                    _emit_all(window.popleft(), emit, self.stream)
            except BrokenProcessPool:
                raise RunFolderError(
                    "a worker process died (out of memory?); what was finished is saved: run the same command "
                    "again to resume, with --workers 1 to stay in one process"
                ) from None
            except EnoughKept:
                pool.shutdown(cancel_futures=True)  # the target is reached: the batches not started are dropped
                raise


def _emit_all(future: Future[list[Refined]], emit: Emit, stream: InputStream) -> None:
    for written, formats in future.result():
        stream.met(formats)  # summary.json's input formats: those of the records read up to this one
        emit(written)


# --- in the worker processes -----------------------------------------------------------------

_WORKER: tuple[InputStream, list[PipelineStage], FeatureReader | None] | None = None
_NOT_STARTED: str | None = None  # why _start could not load the pipeline


def _start(pipeline_path: str, out_dir: str, input_given: str | None, audited: bool, run_pid: int) -> None:
    # Ctrl-C reaches the whole process group: the main process stops cleanly and shuts the pool
    # down, so a worker ignores it rather than die and read as a crash. SIGTERM just ends it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    threading.Thread(target=_end_with, args=(run_pid,), name="end-with-the-run", daemon=True).start()
    from funreason_refine.audit.features import FeatureReader
    from funreason_refine.config import load_pipeline

    global _WORKER, _NOT_STARTED
    try:
        pipeline = load_pipeline(Path(pipeline_path), Path(out_dir), input_path=input_given)
        features = FeatureReader(pipeline.audit) if audited else None  # a shard's records are audited when merged
        _WORKER = (InputStream.open(pipeline.input, pipeline.input_name), pipeline.stages, features)
    except Exception as exc:  # said by the first batch, as what it is: not a worker that died
        _NOT_STARTED = (
            f"a worker process could not load the pipeline {pipeline_path}, as workers do when they start: "
            f"{type(exc).__name__}: {exc}. Was the pipeline file (or a file it names) changed since the run "
            "started? Put it back as it was, or fix it, and run the same command again (what was finished is saved)"
        )


def _end_with(run_pid: int) -> None:
    """End this worker when the run's process ends, however it ends. A run killed with SIGKILL shuts no
    pool down: its workers would wait for work forever (each holds both ends of the pipe it reads), and
    the fork server for them. Waits on a pidfd (Linux 5.3+), else looks every second."""
    try:
        handle = os.pidfd_open(run_pid)
    except (AttributeError, OSError):  # no pidfd here; or the run has already ended (ProcessLookupError)
        while _exists(run_pid):
            time.sleep(1.0)
    else:
        watch = select.poll()  # poll, not select: a descriptor numbered over 1023 is fine
        watch.register(handle, select.POLLIN)
        watch.poll()  # readable once the process has ended
    os._exit(1)


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _work(batch: list[RawItem]) -> list[Refined]:
    """Each record refined, with the formats first met in this worker at it (in input order)."""
    if _WORKER is None:
        raise RefineError(_NOT_STARTED or "the worker was not started by _start")
    stream, stages, features = _WORKER
    done: list[Refined] = []
    for raw in batch:
        known = len(stream.formats)
        done.append((refine_raw(raw, stream, stages, features), stream.formats[known:]))
    return done
