"""One record through a short pipeline judged at the fake server: the helpers of the judge tests that need no more."""

from tests.conftest import read_jsonl, xlam_row

FORMAT = '[[stages]]\nname = "format"\n'


def judged(tmp_pipeline, server, model="openai/judge", stages=FORMAT, judge="", root=False, rows=None):
    """A pipeline of one record judged by ``model`` at the fake server (at its root for Anthropic's API)."""
    where = server.api_base.removesuffix("/v1") if root else server.api_base
    defaults = "".join(f"{key} = {value}\n" for key, value in (("timeout", 5), ("max_retries", 0)) if key not in judge)
    extra = f'[judge]\nmodel = "{model}"\napi_base = "{where}"\n{defaults}{judge}'
    return tmp_pipeline(rows or [xlam_row("r")], stages=stages, extra=extra)


def outcome(run_dir):
    """(outcome file, its one line) of the run's one record."""
    for kind in ("kept", "discarded", "errors"):
        lines = read_jsonl(run_dir / f"{kind}.jsonl")
        if lines:
            return kind, lines[0]
    raise AssertionError("the record has no outcome")
