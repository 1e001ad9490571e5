"""Entry point of the ``funreason_refine`` group: adds ``refine msl-stats``. Imports nothing heavy."""

from funreason_refine import hookimpl


@hookimpl
def register_commands(cli):
    from funreason_msl.cli import msl_stats

    cli.add_command(msl_stats)
