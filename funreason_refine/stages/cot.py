"""Stage 3: does the chain of thought exist, close properly, and name exactly the called functions?"""

from __future__ import annotations

from pydantic import Field

from funreason_refine.memo import memoize
from funreason_refine.record import Record, Verdict
from funreason_refine.stages.base import Stage, StageConfig
from funreason_refine.targets import THINK_TAG


def _mentions(text: str, name: str) -> bool:
    """``name`` occurs as a whole word (not inside ``get_weathers`` or ``x.get_weather``)."""
    # str.find, not a regex per name: thousands of distinct tool names would thrash re's cache.
    start = text.find(name)
    while start != -1:
        end = start + len(name)
        before = text[start - 1] if start else " "
        after = text[end] if end < len(text) else " "
        if not (before.isalnum() or before in "_.") and not (after.isalnum() or after == "_"):
            return True
        start = text.find(name, start + 1)
    return False


@memoize(16384)
def _distinctive(name: str) -> bool:
    """A name an ordinary sentence would not contain by chance (``get_weather``, ``math.sqrt``)."""
    return any(ch in name for ch in "_.0123456789") or any(ch.isupper() for ch in name[1:])


class Cot(Stage):
    """The CoT is present when required, closes properly and names exactly the called functions."""

    name = "cot"
    description = "Does the CoT start from the query, go step by step, and arrive at exactly the reference call?"
    order = 30
    timeout = None  # bounded by [input] max_record_bytes
    regenerates = "cot"

    class Config(StageConfig):
        required: bool = Field(
            False,
            description="Fail records without a CoT (reason missing_cot): a discard, or, with "
            'on_fail = "regenerate" and a generator model, a CoT written for them.',
        )
        forbid_uncalled_functions: bool = Field(
            True,
            description="Discard a CoT that names an offered function the answer does not call "
            "(only names with an underscore, dot, digit or inner capital count).",
        )

    config: Config

    def check(self, record: Record) -> Verdict:
        cot = record.cot
        if cot is None:
            if self.config.required:
                return Verdict.discard("missing_cot", "the record has no CoT and [[stages]] cot requires one")
            return Verdict.passed("no_cot", "no CoT to check")
        if not cot.strip():
            return Verdict.discard("empty_cot", "the CoT is empty")
        normalized = None
        found = THINK_TAG.findall(cot) if ("hink>" in cot or "HINK>" in cot) else None
        tags = [tag.lower() for tag in found] if found else None
        if tags:
            stripped = cot.strip()
            lowered = stripped.lower()
            if tags == ["<think>", "</think>"] and lowered.startswith("<think>") and lowered.endswith("</think>"):
                # An exact wrapper is format, not content: strip it and check what is inside.
                cot = normalized = stripped[len("<think>") : -len("</think>")].strip()
                if not cot:
                    return Verdict.discard("empty_cot", "the CoT is an empty <think></think> block")
            else:
                return Verdict.discard(
                    "unclosed_think",
                    f"the CoT contains stray think tags {tags}; "
                    "it must be plain reasoning text (the target adds <think></think>)",
                )
        called = {c.name for c in record.calls}
        missing = sorted(n for n in called if not _mentions(cot, n))
        if missing:
            return Verdict.discard(
                "cot_misses_function", f"the CoT never names {', '.join(missing)}, which the answer calls"
            )
        if self.config.forbid_uncalled_functions and called:
            others = sorted(
                n
                for n in record.tool_names()
                if isinstance(n, str) and n not in called and _distinctive(n) and _mentions(cot, n)
            )
            if others:
                return Verdict.discard(
                    "cot_names_other_function", f"the CoT names {', '.join(others)}, which the answer does not call"
                )
        if normalized is not None:
            return Verdict.passed(
                "wrapped_think",
                "removed the <think></think> wrapper",
                record=record.model_copy(update={"cot": normalized}),
            )
        return Verdict.passed()
