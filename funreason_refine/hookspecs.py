"""Every hook of funreason-refine. Each docstring is the plugin author's reference.

A plugin is a module or object with functions decorated by ``funreason_refine.hookimpl``;
installed packages declare it under the ``funreason_refine`` entry point group. Hooks are
called with keyword arguments only, so an implementation may accept any subset of them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import click
import pluggy

if TYPE_CHECKING:
    from funreason_refine.stages.base import Stage

hookspec = pluggy.HookspecMarker("funreason_refine")
hookimpl = pluggy.HookimplMarker("funreason_refine")


@hookspec
def register_stages(register: Callable[[type[Stage]], None]) -> None:
    """Register stage classes, by calling ``register(StageClass)`` once per class.

    Fires once, the first time the stage registry is needed (``refine run``, ``validate``,
    ``stages``). ``StageClass`` subclasses :class:`funreason_refine.Stage`: a unique ``name``,
    a nested pydantic ``Config`` (its fields become the keys of the stage's ``[[stages]]``
    table) and a ``check(record) -> Verdict`` method. A name registered twice is an error
    naming both plugins. Return nothing.
    """


@hookspec
def register_commands(cli: click.Group) -> None:
    """Add subcommands to ``refine``, by calling ``cli.add_command(command)``.

    Fires once, when the ``refine`` command starts (so keep the plugin module's imports light:
    import heavy libraries inside the command). ``cli`` is the top-level click group. Return
    nothing.
    """
