"""Browse discarded records: filter by stage and reason."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

from funreason_refine.report.data import RunData


def discarded(
    run: RunData, stage: str | None = None, reason: str | None = None, limit: int | None = None
) -> Iterator[dict[str, Any]]:
    shown = 0
    for record in run.lines("discarded"):
        if (stage is None or record.get("stage") == stage) and (reason is None or record.get("reason") == reason):
            yield record
            shown += 1
            if limit is not None and shown >= limit:
                return


def available(run: RunData) -> Counter[tuple[str | None, str | None]]:
    """(stage, reason) -> discarded records, to say what can be filtered on."""
    return Counter((r.get("stage"), r.get("reason")) for r in run.lines("discarded"))
