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
    """Every server of a model failed for longer than its ``outage_timeout``: the run stops, resumable.

    ``up`` tells apart what the failures showed: None, no server could be reached (down, or a wrong api_base);
    "failing", a server took the calls and answered errors (HTTP 5xx, bodies it could not read); "slow", a server
    took the calls and gave no answer within the timeout."""

    def __init__(self, model: str, servers: list[str], seconds: float, last_error: str, up: str | None = None):
        self.model = model
        self.servers = servers
        self.seconds = seconds
        self.last_error = last_error
        self.up = up
        tried = f"{seconds:.0f} s (outage_timeout; {', '.join(servers)})"
        saved = "then run the same command again: everything finished is saved and the run goes on where it stopped"
        if up == "slow":
            text = (
                f"the server is up but gave no answer within its timeout for {tried}: {last_error}. Raise timeout, "
                "set max_tokens, and for a server that answers one request at a time set max_concurrency = 1 and "
                f"first_token_timeout (docs/judges.md, a local single-slot server); {saved}"
            )
        elif up == "failing":
            text = (
                f"the server is up but answered every call with an error for {tried}: {last_error}. Its log says "
                "why (out of memory, a request form it refuses, a prompt over its context); fix that, or lower "
                f"max_concurrency and set max_tokens; {saved}"
            )
        else:
            text = (
                f"no server answered for {tried}: {last_error}. Start the server or point api_base at one that "
                f"answers; {saved}"
            )
        super().__init__(f"judge {model}: {text}")


class CallSyntaxError(ValueError):
    """Text is not a well-formed ``[func(param=value, ...)]`` call list."""
