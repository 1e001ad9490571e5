"""The ``[audit]`` table of a pipeline file: the eval sets to check against, and which findings drop a record."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


class AuditSettings(BaseModel):
    """What the dataset audits look for, and which of their findings discard a record (stage ``dataset``).

    Without any ``drop_*`` key the audits only count and list what they find (summary.json,
    `refine report`); no record changes its outcome.
    """

    model_config = ConfigDict(extra="forbid")

    eval_sets: list[Path] = Field(
        default_factory=list,
        description="Evaluation sets (any input format) whose queries kept records must not copy; "
        "relative to the pipeline file.",
    )
    drop_duplicates: bool = Field(
        False, description="Discard exact duplicates (same normalised query and answer) after the first: duplicate."
    )
    near_duplicates: bool = Field(
        False,
        description="Look for near-duplicate queries too (MinHash LSH over word pairs; up to 40% more CPU in a "
        "rules-only run on templated queries, nothing next to a judge's time).",
    )
    drop_near_duplicates: bool = Field(
        False, description="Discard near-duplicate queries after the first: near_duplicate (implies near_duplicates)."
    )
    near_duplicate_threshold: float = Field(
        0.8,
        gt=0,
        le=1,
        description="Estimated Jaccard similarity of two queries' word pairs from which they are near-duplicates.",
    )
    drop_contaminated: bool = Field(
        False, description="Discard records whose query overlaps an eval set: contaminated."
    )
    contamination_ngram: int = Field(8, ge=1, le=64, description="Words per n-gram compared with the eval sets.")
    contamination_threshold: float = Field(
        0.5,
        gt=0,
        le=1,
        description="Share of a query's n-grams found in the eval sets from which the record is contaminated.",
    )

    @property
    def near(self) -> bool:
        """Whether near-duplicate queries are looked for."""
        return self.near_duplicates or self.drop_near_duplicates
