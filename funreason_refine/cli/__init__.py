"""The ``refine`` command: parse arguments, call the library, print. No logic lives here.

``app`` holds the group, its consoles and exit statuses; each module here adds its commands
to it when one of them is asked for (``app.COMMAND_MODULES``); installed plugins add theirs
through the ``register_commands`` hook.
"""

from __future__ import annotations

from rich.markup import escape

from funreason_refine.cli.app import err, main

__all__ = ["main"]


def _register_plugin_commands() -> None:
    from funreason_refine.errors import PluginError
    from funreason_refine.plugin_manager import get_plugin_manager

    try:
        get_plugin_manager().hook.register_commands(cli=main)
    except PluginError:
        pass  # reported by each command that needs the plugins; the others (report, export...) still work
    except Exception as exc:  # a broken plugin must not take `refine` itself down
        err.print(
            f"[red]error:[/] a plugin failed to add its commands: {type(exc).__name__}: {escape(str(exc))}",
            highlight=False,
        )


_register_plugin_commands()
