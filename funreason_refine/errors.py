"""The one exception hierarchy; the CLI turns these into one-line messages."""

from __future__ import annotations


class RefineError(Exception):
    """Base class of every error this package raises on purpose."""


class ConfigError(RefineError):
    """A pipeline file, stage spec or stage config is wrong.

    ``problems`` holds every problem found, each a line naming the file, the key and the fix,
    so that a user fixes them all in one go.
    """

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


class PluginError(RefineError):
    """A plugin is broken or two plugins claim the same stage name."""


class InputError(RefineError):
    """The input file as a whole cannot be read (missing, unknown format)."""


class RunFolderError(RefineError):
    """The run folder cannot be written or is inconsistent."""


class JudgeOutage(RefineError):
    """Every server of a model failed for longer than its ``outage_timeout``: the run stops, resumable."""

    def __init__(self, model: str, servers: list[str], seconds: float, last_error: str):
        self.model = model
        self.servers = servers
        self.seconds = seconds
        self.last_error = last_error
        super().__init__(
            f"judge {model}: {last_error}; no server answered for {seconds:.0f} s (outage_timeout; tried "
            f"{', '.join(servers)}). Everything finished is saved: fix that (or point api_base at a server that "
            "answers) and run the same command again to go on"
        )


class CallSyntaxError(ValueError):
    """Text is not a well-formed ``[func(param=value, ...)]`` call list."""
