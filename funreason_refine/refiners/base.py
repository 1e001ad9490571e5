"""The refiner interface: how the records of a run are refined."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from typing import Any

from funreason_refine.readers import RawItem
from funreason_refine.run_folder import Written

Emit = Callable[[Written], None]


class EnoughKept(Exception):
    """Raised by ``emit`` once it has written the kept record that reaches the run's target (``refine run
    --target-kept``): the refiner stops where it is and lets it through. The records it read past that one, or
    has in flight, are not written (the next run reads them again); what their judge calls cost is counted."""


class Refiner(ABC):
    """How the records of a run are refined (rules in this process, worker processes, judges on an event loop).

    The engine hands ``run`` the input records not yet done and ``emit``, which writes one
    finished record to the run folder and counts it; ``run`` calls it once per record, in input
    order, until it raises EnoughKept. Refiners decide only how records are refined; the result is the same bytes.
    """

    workers: int = 1
    start_method: str | None = None  # how worker processes start, where there are some

    @abstractmethod
    def run(self, items: Iterator[RawItem], emit: Emit) -> str | None:
        """Refine every item, emitting each in input order; why it stopped before the end, or None."""

    def judge_usage(self) -> dict[str, Any] | None:
        """Calls, tokens and cost of the models asked, for summary.json; None when none were."""
        return None
