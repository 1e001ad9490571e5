"""The ``refine`` group: its consoles, exit statuses, and expected errors as one line each."""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

import click
from rich.console import Console
from rich.markup import escape

from funreason_refine.errors import ConfigError, RefineError

DEBUG_ENV = "FUNREASON_REFINE_DEBUG"
# Exit statuses (README, "Commands"): 2 is click's usage error.
EXIT_ERROR = 1  # a configuration, input, plugin or run-folder problem, said in one line
EXIT_RECORD_ERRORS = 3  # the run finished with records in errors.jsonl: `refine retry RUN_DIR` redoes them
EXIT_JUDGE_OUTAGE = 4  # every server of a judge failed past its outage_timeout; the run resumes where it stopped
EXIT_SHORT_OF_TARGET = 5  # refine selfrefine/run --target-kept N stopped with fewer than N kept; it says why
EXIT_INTERRUPTED = 130  # Ctrl-C or SIGTERM; the run resumes where it stopped
PIPED_WIDTH = 10_000  # output to a pipe or file is not wrapped: a table row stays one line for grep

out = Console()
err = Console(stderr=True, soft_wrap=True)  # error lines stay whole for copy and paste


# The module of each built-in command (cli/<module>.py), imported when the command is asked for: `refine run`
# does not load the code of the reports, the Hub or calibration. A test checks that the list is whole.
COMMAND_MODULES = {
    "run": "run",
    "retry": "run",
    "validate": "run",
    "estimate": "cost",
    "merge": "distributed",
    "status": "distributed",
    "push": "hub",
    "stages": "listings",
    "plugins": "listings",
    "schema": "listings",
    "report": "reports",
    "audit": "reports",
    "compare": "reports",
    "export": "reports",
    "selfrefine": "selfrefine",
    "calibrate": "trust",
    "review": "trust",
}


class _Group(click.Group):
    """Commands are loaded when asked for (COMMAND_MODULES). Expected errors become one red line (or one line
    per config problem), exit code 1.

    Set FUNREASON_REFINE_DEBUG=1 to get the traceback instead.
    """

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *COMMAND_MODULES})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module = COMMAND_MODULES.get(cmd_name)
        if cmd_name not in self.commands and module is not None:
            importlib.import_module(f"funreason_refine.cli.{module}")  # its @main.command() adds it
        return self.commands.get(cmd_name)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except RefineError as exc:
            if os.environ.get(DEBUG_ENV):
                raise
            if isinstance(exc, ConfigError):
                err.print(f"[red]error:[/] {len(exc.problems)} problem(s) in the configuration:", highlight=False)
                for problem in exc.problems:
                    err.print(f"  - {problem}", highlight=False, markup=False)
            else:
                err.print(f"[red]error:[/] {escape(str(exc))}", highlight=False)
            sys.exit(EXIT_ERROR)


JUDGE_MODEL_HELP = (
    "Judge with this LiteLLM model instead ([judge] and [generate]), at its provider's own endpoint; "
    "MODEL@URL serves it at URL (e.g. openai/qwen2.5-7b@http://localhost:8000/v1)."
)

INPUT_HELP = (
    "Read this input instead of the pipeline's [input] path: a JSON, JSONL or Parquet file (relative to the "
    "current folder) or hf://datasets/ORG/NAME/PATH. The run folder records it: retry and merge read it too."
)
input_option = click.option("--input", "input_path", metavar="PATH", help=INPUT_HELP)


@click.group(cls=_Group)
@click.version_option(package_name="funreason-refine")
def main() -> None:
    """Refine function-calling training data the FunReason way."""
    out.width = PIPED_WIDTH if not out.is_terminal else None  # type: ignore[assignment]
    for stream in (sys.stdout, sys.stderr):  # a record's lone surrogate is printed as its escape, \ud800
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")


def warn(text: str) -> None:
    """A warning on stderr, one line (it wraps in a terminal), its text printed as it is (no markup)."""
    err.print(f"[yellow]warning:[/] {escape(text)}", highlight=False)


def shard_option(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    if value is None:
        return None
    from funreason_refine.executors.layout import Shard

    try:
        return Shard.parse(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
