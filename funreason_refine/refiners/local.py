"""Rules only, in this process: one record after another, from its input line to its written line."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from funreason_refine.readers import InputStream, RawItem
from funreason_refine.record import Quarantined
from funreason_refine.refine import refine_record
from funreason_refine.refiners.base import Emit, Refiner
from funreason_refine.run_folder import UnwritableRecord, Written
from funreason_refine.stages.base import PipelineStage

if TYPE_CHECKING:
    from funreason_refine.audit.features import Features
    from funreason_refine.record import Record


class InProcessRefiner(Refiner):
    def __init__(
        self, stream: InputStream, stages: list[PipelineStage], features: Callable[[Record], Features] | None = None
    ):
        self.stream = stream
        self.stages = stages
        self.features = features

    def run(self, items: Iterator[RawItem], emit: Emit) -> None:
        for raw in items:
            emit(refine_raw(raw, self.stream, self.stages, self.features))


def refine_raw(
    raw: RawItem,
    stream: InputStream,
    stages: list[PipelineStage],
    features: Callable[[Record], Features] | None = None,
) -> Written:
    """One input item through the stages' rules: read (or quarantined), refined, serialised (a kept
    record with the ``features`` the dataset audits read)."""
    item = stream.convert(raw)
    if isinstance(item, Quarantined):
        return Written.quarantined(item)
    try:
        return refine_record(item, stages).written(features)
    except UnwritableRecord as exc:
        return Written.quarantined(stream.quarantine(raw, str(exc)))
