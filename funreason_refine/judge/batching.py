"""Which calls go as provider batch jobs, and the one :class:`~funreason_refine.judge.batch.Batcher` of a run folder.

The calls of models with ``batch = true`` go as batches, and so does any call of a run folder that
journals batches: one submitted before is collected, never paid for again, even if its model's
``batch`` has been turned off since. The batch machinery is imported only when a call takes this way.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from funreason_refine.judge.cache import AnswerCache
from funreason_refine.judge.settings import ModelSettings

if TYPE_CHECKING:
    from funreason_refine.judge.batch import Batcher, Taken


class BatchRoute:
    """The batch way of one run folder (its answers go to the folder's answer cache)."""

    def __init__(
        self,
        run_dir: Path,
        cache: AnswerCache | None,
        litellm: Any,
        notes: set[str],
        on_change: Callable[[], None] | None = None,
    ):
        self._run_dir = run_dir
        self._cache = cache
        self._litellm = litellm
        self._notes = notes
        self._on_change = on_change
        self._batcher: Batcher | None = None
        self._journaled: bool | None = None

    @property
    def owed(self) -> float:
        """Cost of answers collected for waiting calls that have not yet counted them (max_cost sees it)."""
        return self._batcher.owed if self._batcher is not None else 0.0

    def takes(self, settings: ModelSettings) -> bool:
        return settings.batch or self._batches_journaled()

    def _batches_journaled(self) -> bool:
        if self._journaled is None:
            from funreason_refine.judge.batch_journal import FOLDER, JOURNAL

            self._journaled = (self._run_dir / FOLDER / JOURNAL).exists()
        return self._journaled

    async def ask(
        self, settings: ModelSettings, messages: list[dict[str, str]], key: str, on_retry: Callable[[], None]
    ) -> Taken | None:
        """The answer by way of a batch job; None when the call is to be made as an ordinary one (its model's
        batch is off, or its line failed in its batch: then ``on_retry`` is called; the batch's note says why)."""
        from funreason_refine.judge.batch import Batcher, BatchLineFailed

        if self._batcher is None:
            assert self._cache is not None, "batches need the run folder's answer cache"
            self._batcher = Batcher(self._run_dir, self._cache, self._litellm, self._notes, self._on_change)
        try:
            return await self._batcher.ask(settings, messages, key)
        except BatchLineFailed:
            on_retry()
            return None

    def counts(self) -> dict[str, int] | None:
        """Batch jobs submitted, in progress and done so far; None when no call went as a batch."""
        return dict(self._batcher.counts) if self._batcher is not None else None

    async def aclose(self) -> None:
        if self._batcher is not None:
            await self._batcher.aclose()
