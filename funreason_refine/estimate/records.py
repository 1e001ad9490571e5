"""The records an estimate walks: every input record, streamed, or a seeded random sample of them.

Either way memory does not grow with the input: the whole input is read again for each pass, and a
sample holds only its own raw items (a reservoir: one pass, no count first).
"""

from __future__ import annotations

import random
from collections.abc import Iterator

from funreason_refine.config import Pipeline
from funreason_refine.readers import InputStream, RawItem
from funreason_refine.record import Record

SEED = 20192  # the sample is drawn the same way every time


class EstimateInput:
    """Re-iterable records of the pipeline's input. After a pass, ``drawn`` is the input lines read for it
    (quarantined ones included: they make no call, and scaling up must not give their share of the input the
    calls of records) and ``total`` the lines the input holds."""

    def __init__(self, pipeline: Pipeline, sample: int | None = None):
        self._stream = InputStream.open(pipeline.input, pipeline.input_name)
        self._sample: list[RawItem] | None = None
        self.drawn = self.total = 0
        if sample is not None:
            self._sample = _reservoir(self._stream, sample)
            self.drawn, self.total = len(self._sample), self._stream.count

    def __iter__(self) -> Iterator[Record]:
        items = self._sample if self._sample is not None else self._read()
        for item in items:
            record = self._stream.convert(item)
            if isinstance(record, Record):
                yield record

    def _read(self) -> Iterator[RawItem]:
        self.drawn = 0
        for item in self._stream.raw_items(parse=False):
            self.drawn += 1
            yield item
        self.total = self._stream.count


def _reservoir(stream: InputStream, size: int) -> list[RawItem]:
    """``size`` raw items drawn at random, every one equally likely, in input order."""
    chosen: list[RawItem] = []
    rng = random.Random(SEED)
    for number, item in enumerate(stream.raw_items(parse=False)):
        if number < size:
            chosen.append(item)
        elif (slot := rng.randrange(number + 1)) < size:
            chosen[slot] = item
    chosen.sort(key=lambda item: item[0])
    return chosen
