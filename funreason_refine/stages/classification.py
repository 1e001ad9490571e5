"""Stage 1: is the reference answer a function call, no call, or a plain-text response?"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from funreason_refine.record import Record, Verdict
from funreason_refine.stages.base import Stage, StageConfig
from funreason_refine.targets import render_target


class Classification(Stage):
    """Tell call answers from text answers; discard malformed answers."""

    name = "classification"
    description = "Is the reference answer a function call, no call, or a plain-text response?"
    order = 10
    timeout = None  # bounded by [input] max_record_bytes

    class Config(StageConfig):
        text_answers: Literal["keep", "check", "discard"] = Field(
            "keep",
            description="keep: accept text answers without stages 2-5; check: run them "
            "through the remaining stages; discard: drop them (reason text_answer).",
        )

    config: Config

    def check(self, record: Record) -> Verdict:
        if record.answer is None:
            problem = next((p for p in record.problems if p.code == "malformed_answer"), None)
            return Verdict.discard("malformed_answer", problem.message if problem else "the answer could not be read")
        if isinstance(record.answer, str):
            if not record.answer.strip():
                return Verdict.discard("empty_answer", "the answer is an empty text")
            if self.config.text_answers == "discard":
                return Verdict.discard("text_answer", "plain-text answer; this pipeline keeps only function calls")
            if self.config.text_answers == "keep":
                kept = record.model_copy(update={"target": render_target(record)})
                return Verdict.passed("text_answer", "plain-text answer kept as it is", final=True, record=kept)
            return Verdict.passed("text_answer", "plain-text answer, checked by the remaining stages")
        if not record.answer:
            return Verdict.passed("no_call", "empty call list: no offered function applies")
        return Verdict.passed()
