"""The stage contract: a name, a validated Config, and one method that judges a record."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

from pydantic import BaseModel, ConfigDict

from funreason_refine.record import Record, Verdict


class StageConfig(BaseModel):
    """Base of every stage's ``Config``: unknown keys in ``[[stages]]`` are errors."""

    model_config = ConfigDict(extra="forbid")


class Stage(ABC):
    """A refinement step. Subclass it, set ``name``, nest a ``Config``, implement ``check``.

    ``check`` must be deterministic and side-effect free: it receives a record and returns a
    :class:`Verdict` (pass, regenerate with a corrected record, or discard with a reason code).
    It must not mutate the record it receives; return a copy (``record.model_copy(update=...)``).
    """

    name: ClassVar[str]
    #: One line shown by ``refine stages``; defaults to the first line of the class docstring.
    description: ClassVar[str] = ""
    #: Re-run this stage when a later stage regenerates the answer (the CoT stage does).
    recheck_on_answer_change: ClassVar[bool] = False
    #: The record field a [generate] model can rewrite when this stage fails and its on_fail is
    #: "regenerate" ("cot" for the CoT stage); None: failures are discards.
    regenerates: ClassVar[str | None] = None
    #: Seconds a check may take before the record goes to errors.jsonl (``[[stages]] timeout``
    #: overrides it); None: no limit, for checks whose work the input size bounds.
    timeout: ClassVar[float | None] = 60.0

    class Config(StageConfig):
        pass

    def __init__(self, config: StageConfig | None = None):
        self.config = config if config is not None else self.Config()

    @classmethod
    def summary(cls) -> str:
        if cls.description:
            return cls.description
        doc = (cls.__doc__ or "").strip()
        return doc.splitlines()[0] if doc else ""

    @abstractmethod
    def check(self, record: Record) -> Verdict:
        """Judge one record."""


class SpecStage(Stage):
    """A stage defined by a TOML spec alone: no rules of its own, its judge decides."""

    name = "spec_stage"
    timeout = None

    def check(self, record: Record) -> Verdict:
        return Verdict.passed()


def spec_stage(name: str, description: str) -> type[Stage]:
    """The class of a judge-only stage named ``name``."""
    return type(f"SpecStage_{name}", (SpecStage,), {"name": name, "description": description})
