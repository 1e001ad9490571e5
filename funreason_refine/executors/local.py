"""Rules only, in this process: one record after another."""

from __future__ import annotations

from collections.abc import Iterator

from funreason_refine.executors.base import Emit, Executor, refine_raw
from funreason_refine.readers import InputStream, RawItem
from funreason_refine.stages.base import PipelineStage


class LocalExecutor(Executor):
    def __init__(self, stream: InputStream, stages: list[PipelineStage]):
        self.stream = stream
        self.stages = stages

    def run(self, items: Iterator[RawItem], emit: Emit) -> None:
        for raw in items:
            emit(refine_raw(raw, self.stream, self.stages))
