"""Every hook of funreason-refine. Each docstring is the plugin author's reference.

A plugin is a module or object with functions decorated by ``funreason_refine.hookimpl``;
installed packages declare it under the ``funreason_refine`` entry point group. Hooks are
called with keyword arguments only, so an implementation may accept any subset of them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import pluggy

if TYPE_CHECKING:
    pass

hookspec = pluggy.HookspecMarker("funreason_refine")
hookimpl = pluggy.HookimplMarker("funreason_refine")


@hookspec
def register_stages(register: Callable[..., None]) -> None:
    """Register stage classes, by calling ``register(StageClass)`` once per class.

    Fires once per process, the first time the stage registry is needed (``refine run``,
    ``validate``, ``stages``; again in each worker process). ``StageClass`` subclasses
    :class:`funreason_refine.Stage`: a unique ``name``, a nested pydantic ``Config`` (its fields
    become the keys of the stage's ``[[stages]]`` table) and a ``check(record) -> Verdict``
    method. A name registered twice is an error naming both plugins, unless the later one calls
    ``register(StageClass, replace=True)`` to replace the earlier stage on purpose. Return nothing.
    """


@hookspec
def register_commands(cli: click.Group) -> None:
    """Add subcommands to ``refine``, by calling ``cli.add_command(command)``.

    Fires once, when the ``refine`` command starts (so keep the plugin module's imports light:
    import heavy libraries inside the command). ``cli`` is the top-level click group. Return
    nothing.
    """


@hookspec
def record_finished(kind: str, record: dict[str, Any], run_dir: Path) -> None:
    """Observe one finished record, right before its line is written to the run folder.

    Fires in the main process, once per record and run, in input order. ``kind`` is ``kept``,
    ``discarded``, ``quarantined`` or ``errors``; ``record`` is the line about to be written, parsed
    (for discarded records it has ``stage``, ``reason`` and ``message``; every line has
    ``index``). Do not modify it. Exceptions stop the run with a message naming the plugin; the
    record it raised on is not written, so the resumed run refines it and calls the hook with it
    again (a record may come twice to a plugin that failed on it: at least once, never lost). A record
    also comes again after a kill lost its line (the last 0.2 s before a SIGKILL), and after `refine retry`
    redoes a record that came as ``errors``: key on ``record["index"]``, the last one told counting.
    Return nothing.
    """


@hookspec
def run_finished(run_dir: Path, summary: dict[str, Any]) -> None:
    """Extend a run at its end: export, upload, notify.

    Fires in the main process once a run has written ``summary.json`` (also when ``max_cost``
    stopped it: see ``summary["complete"]``). ``run_dir`` holds ``kept.jsonl`` and the other
    outcome files. Exceptions are reported naming the plugin; the run folder is already
    complete. Return nothing.
    """
