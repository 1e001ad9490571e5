"""selfrefine.json as typed models: the rounds of `refine selfrefine` and how they ended (``refine schema
selfrefine`` prints its JSON Schema). Each round is a run folder, with its summary.json (summary.py)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from funreason_refine.summary import Section

StoppedBy = Literal["target", "max_candidates", "max_cost", "rounds", "pool", "sampling"]


class SelfRefineRound(Section):
    """One round of self-refinement: what it drew, what its stages kept, what it cost."""

    round: int
    queries_sampled: int = Field(description="queries drawn from the pool in this round")
    candidates: int = Field(description="answers drawn (round-N/candidates.jsonl)")
    sampling_errors: int = Field(0, description="sampling calls that failed (round-N/sampling_errors.jsonl)")
    kept: int = Field(description="candidates the stages kept (round-N/kept.jsonl)")
    errors: int = Field(
        0,
        description="candidates that got no verdict: a judge call failed (round-N/errors.jsonl); "
        "`refine retry round-N` redoes them",
    )
    errors_per_stage: dict[str, int] = Field(default_factory=dict, description="those errors, by the stage they met")
    queries_with_a_survivor: int
    pool_after: int = Field(description="queries left to sample after this round")
    queries_held: int = Field(
        0,
        description="queries of this round with a candidate in errors.jsonl and none kept: out of the pool until "
        "`refine retry round-N` gives those candidates a verdict",
    )
    pass_rate: dict[str, float | None] = Field(
        description="per stage, passed / (passed + discarded): over the verdicts given, errors apart"
    )
    cost_usd: float = Field(0.0, description="what drawing and judging this round's candidates cost, whenever paid")
    complete: bool = Field(True, description="the round's stages gave every candidate its outcome")
    run_dir: str

    @property
    def drawn(self) -> int:
        """Answers asked for in this round, failed ones included (what max_candidates counts)."""
        return self.candidates + self.sampling_errors


class SelfRefineSummary(Section):
    """selfrefine.json: the rounds of `refine selfrefine` and, with ``--target-kept``, how near the target
    they came, within which caps, and why they stopped."""

    optional_keys = ("selected", "unreadable_first")

    schema_version: int = Field(1, description="changes when a reader must change")
    model: str = Field(description="[source] sample_from")
    samples: int = Field(description="[source] samples: candidates per query per round")
    queries: int = Field(description="single-turn records of the input (the queries sampled)")
    conversations_skipped: int
    unreadable: int = Field(0, description="input lines that could not be read as records: not sampled")
    unreadable_first: str | None = Field(None, description="the first of them: FILE:LINE: what is wrong")
    target_kept: int | None = Field(None, description="--target-kept: the kept records asked for (None: no target)")
    max_candidates: int | None = Field(None, description="[source] max_candidates: the cap on candidates drawn")
    max_cost: float | None = Field(None, description="max_cost: the cap on what drawing and judging cost, USD")
    candidates_drawn: int = Field(0, description="answers asked for over all rounds, failed ones included")
    kept: int = Field(0, description="candidates kept over all rounds, before trimming")
    errors: int = Field(0, description="candidates in the rounds' errors.jsonl: `refine retry round-N` redoes them")
    selected: int | None = Field(None, description="with a target: the records in <dir>/kept.jsonl")
    trimmed: int = Field(0, description="kept beyond the target, the last in input order (<dir>/surplus.jsonl)")
    missing: int = Field(0, description="with a target: how many kept records it is short of")
    cost_usd: float = Field(
        0.0,
        description="what drawing and judging every candidate cost, kept or not (and the samples of a round a "
        "cap cut short)",
    )
    cap_hit: bool = Field(False, description="max_candidates or max_cost stopped the drawing")
    stopped_by: StoppedBy = Field(
        description="target (reached), max_candidates, max_cost, rounds (--rounds), pool (no query left to sample: "
        "each has a survivor, left for good, or is held for `refine retry`) or sampling (every sampling call of a "
        "round failed)"
    )
    stopped: str = Field(description="why no further round was drawn, in words")
    rounds: list[SelfRefineRound] = Field(default_factory=list)
