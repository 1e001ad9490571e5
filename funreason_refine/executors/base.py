"""The executor interface, and one record from raw input to the line the run folder writes."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from typing import Any

from funreason_refine.memo import Memo
from funreason_refine.readers import InputStream, RawItem
from funreason_refine.record import Outcome, Quarantined, Step
from funreason_refine.refine import Finished, refine_record
from funreason_refine.run_folder import Written, to_json_line
from funreason_refine.stages.base import PipelineStage

Emit = Callable[[Written], None]


class Executor(ABC):
    """Where the work of a run happens.

    The engine hands ``run`` the input records not yet done and ``emit``, which writes one
    finished record to the run folder and counts it; ``run`` calls it once per record, in input
    order. Executors decide only where records are refined; the result is the same bytes.
    """

    workers: int = 1
    start_method: str | None = None  # how worker processes start, where there are some

    @abstractmethod
    def run(self, items: Iterator[RawItem], emit: Emit) -> str | None:
        """Refine every item, emitting each in input order; why it stopped before the end, or None."""

    def judge_usage(self) -> dict[str, Any] | None:
        """Calls, tokens and cost of the models asked, for summary.json; None when none were."""
        return None


# What the tally counts of a step; most steps are shared (see refine._shared_steps), and so are these.
_counted: Memo[Step, tuple[str, str, str | None]] = Memo(
    lambda s: (s.stage, s.verdict, s.reason), max_size=4096, by_identity=True
)


def written(finished: Finished) -> Written:
    trail = tuple(map(_counted, finished.record.trail))
    line = to_json_line(finished.line())
    return Written(finished.record.index, finished.outcome, line, trail, finished.stage, finished.reason)


def quarantined(item: Quarantined) -> Written:
    return Written(item.index, Outcome.QUARANTINED, to_json_line(item))


def refine_raw(raw: RawItem, stream: InputStream, stages: list[PipelineStage]) -> Written:
    """One input item through the stages' rules: its line, ready to write."""
    item = stream.convert(raw)
    if isinstance(item, Quarantined):
        return quarantined(item)
    return written(refine_record(item, stages))
