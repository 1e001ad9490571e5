"""The dataset card (README.md) of a dataset folder: YAML metadata the Hub and ``datasets`` read, and a
body written from the run, from the Jinja2 template templates/README.md.j2.

What the card says of the run comes from ``run_facts``, the one place that reads the run's summary
(summary.py) and run.json. What only a person knows (the licence, what the data is for, its limits) is marked
TO FILL IN, and the card's first lines list it.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from funreason_refine.hub.paths import HubPath, is_hub_path

if TYPE_CHECKING:
    from funreason_refine.summary import StageCounts, Summary

# The paper's names of its five stages (FunReason, arXiv 2505.20192, Figure 2).
PAPER_STAGES = {
    "classification": "Function Call Classification",
    "query_tool": "Query & Tool Identification",
    "cot": "CoT Identification",
    "function_params": "Function & Parameter Identification",
    "format": "Format Identification",
}

FORMATS = {
    "funreason": "`messages`: the tools' system prompt, the user turn and the assistant's target, the paper's "
    "`<think>{cot}</think>\\n\\n[func(param=value, ...)]`",
    "hermes": "`tools` (JSON) and `messages`, calls as Hermes `<tool_call>` blocks after the `<think>` block",
    "sharegpt": "LLaMA-Factory's ShareGPT: `conversations` (`human`, `function_call`, `observation`, `gpt`), "
    "`tools` (JSON), `system`, and the CoT in `cot` (or `cots`, one per assistant turn)",
    "openai": "`messages` with `tool_calls` and `tools`, as TRL takes them (each message and the tools as JSON text)",
}

SIZES = [(1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")]
SIZES += [(10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M"), (1_000_000_000, "100M<n<1B")]


@dataclass
class StageFacts:
    """One stage of the pipeline: how it was set up and what it did."""

    name: str
    on_fail: str
    models: list[str]
    passed: int
    regenerated: int
    discarded: int
    reasons: dict[str, int]  # records discarded, by reason code


@dataclass
class RunFacts:
    """What a dataset card says of the run that made the data."""

    summary: Summary
    stages: list[StageFacts]
    hub_input: dict[str, str] | None = None  # repo_id, revision (as written), commit, url
    judge_models: list[str] = field(default_factory=list)


def run_facts(run_dir: Path) -> RunFacts:
    """What the run's summary.json (typed: summary.py) and run.json say, for the card."""
    from funreason_refine.run_identity import read_run_file
    from funreason_refine.summary import Summary

    summary = Summary.read(run_dir)
    config = read_run_file(run_dir).get("config", {})
    setup = {s["name"]: s for s in config.get("stages", [])}
    stages = [_stage(name, counts, setup.get(name, {})) for name, counts in summary.stages.items()]
    return RunFacts(
        summary=summary,
        stages=stages,
        hub_input=_hub_input(config.get("input", {}), summary.input.path),
        judge_models=sorted({m for s in stages for m in s.models}),
    )


def _stage(name: str, counts: StageCounts, setup: dict[str, Any]) -> StageFacts:
    judges = setup.get("judge", {}).get("judges", [])
    models = [j["model"] for j in judges] + ([setup["generator"]["model"]] if setup.get("generator") else [])
    return StageFacts(
        name=name,
        on_fail=setup.get("on_fail", "discard"),
        models=models,
        passed=counts.passed,
        regenerated=counts.regenerated,
        discarded=counts.discarded,
        reasons=counts.records_discarded,
    )


def _hub_input(recorded: dict[str, Any], path: str) -> dict[str, str] | None:
    if not is_hub_path(recorded.get("path")):
        return None
    written = HubPath.parse(recorded["path"])
    commit = recorded.get("commit") or ""
    return {"repo_id": written.repo_id, "revision": written.revision or "main", "commit": commit, "url": path}


def size_category(rows: int) -> str:
    return next((label for limit, label in SIZES if rows < limit), "n>1B")


def describe_stage(name: str) -> str:
    """The stage's own description, from the registry (a plugin's stage too); '' when it is not registered."""
    from funreason_refine.errors import PluginError
    from funreason_refine.plugin_manager import stage_registry

    if name == "dataset":
        return "The dataset audits: exact (and near) duplicates and eval-set contamination of the kept set."
    try:
        entry = stage_registry().get(name)
    except PluginError:
        return ""
    return str(getattr(entry.cls, "description", "")) if entry is not None else ""


def render_card(
    facts: RunFacts,
    fmt: str,
    configs: list[dict[str, Any]],
    review: str | None = None,
    repo_id: str | None = None,
) -> str:
    """The README.md of a dataset folder. ``configs``: name, path, rows and what each config holds."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("funreason_refine.hub", "templates"),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,  # Markdown and YAML, not HTML; YAML strings go through the `yaml` filter
    )
    env.filters["yaml"] = lambda value: json.dumps(value, ensure_ascii=False)  # JSON strings are YAML strings
    run_kept = facts.summary.outcomes.get("kept", 0)
    kept = configs[0]["rows"] if configs else run_kept  # the default configuration: a person's review applied
    context = {
        "facts": facts,
        "fmt": fmt,
        "format_description": FORMATS.get(fmt, fmt),
        "configs": configs,
        "review": review,
        "repo_id": repo_id,
        "kept": kept,
        "run_kept": run_kept,
        "size_category": size_category(kept),
        "paper_stages": PAPER_STAGES,
        "describe": describe_stage,
        "pretty_name": f"{repo_id.split('/')[-1] if repo_id else 'Function calls'} (refined with funreason-refine)",
    }
    return env.get_template("README.md.j2").render(context)


_SIGNATURE = re.compile(r"\n<!-- written by funreason-refine, sha256 ([0-9a-f]{64}) -->\n\Z")


def signed(card: str) -> str:
    """The card with a last line that tells, later, whether a person has edited it since (``untouched``)."""
    return f"{card}\n<!-- written by funreason-refine, sha256 {hashlib.sha256(card.encode()).hexdigest()} -->\n"


def untouched(card: str) -> bool:
    """Whether ``card`` is as funreason-refine wrote it: nobody has filled anything in since."""
    match = _SIGNATURE.search(card)
    return match is not None and hashlib.sha256(card[: match.start()].encode()).hexdigest() == match[1]
