"""Exact and near-duplicate look-up among the records kept so far: a dict of keys, MinHash LSH buckets.

Written by hand, not taken from a library: datasketch's and rensa's LSH indexes hold 1.5-3 KB per
record (a Python or Rust object per key and bucket) and answer "is there a match" rather than
"which record". This one keeps, per record it indexes, one dict entry per band holding a small
int and the 256-byte signature in one flat array: about 1 KB a record at the default threshold.
"""

from __future__ import annotations

from array import array
from typing import NamedTuple

from funreason_refine.audit.features import NUM_PERM, Features

RECALL = 0.95  # a pair exactly at the threshold is a candidate at least this often


class Match(NamedTuple):
    """An earlier record this one duplicates."""

    kind: str  # "exact" or "near"
    of: int  # the earlier record's input index
    similarity: float  # estimated Jaccard similarity of the queries' word pairs (1.0 for exact)


def lsh_bands(threshold: float, num_perm: int = NUM_PERM) -> tuple[int, int]:
    """(bands, rows per band): the most rows per band (fewest false candidates) whose bands still find
    a pair at the threshold with probability RECALL; candidates are then checked on all slots."""
    for rows in range(num_perm, 0, -1):
        bands = num_perm // rows
        if 1 - (1 - threshold**rows) ** bands >= RECALL:
            return bands, rows
    return num_perm, 1


class DuplicateIndex:
    """The records indexed so far: their keys (exact duplicates) and signatures (near-duplicates).

    A record found to duplicate an earlier one is not indexed: the first of each group stands
    for it, so whether duplicates are dropped or kept, the same records are found.
    """

    def __init__(self, threshold: float):
        self.threshold = threshold
        self.bands, self.rows = lsh_bands(threshold)
        self._first: dict[int, int] = {}  # exact key -> input index of the first record with it
        self._buckets: dict[int, int] = {}  # band key -> position of the first indexed record in it
        self._signatures = array("I")  # NUM_PERM slots per indexed record, by position
        self._indices = array("q")  # input index per position

    def find(self, features: Features) -> Match | None:
        """The earlier record this one duplicates: one with the same key, else the most similar one
        whose query reaches the threshold (the earliest on a tie); None if there is none."""
        first = self._first.get(features.key)
        if first is not None:
            return Match("exact", first, 1.0)
        if features.signature is None:
            return None
        found = {self._buckets.get(key) for key in self._band_keys(features.signature)}
        best: Match | None = None
        for position in sorted(p for p in found if p is not None):
            similarity = self._similarity(position, features.signature)
            if similarity >= self.threshold and (best is None or similarity > best.similarity):
                best = Match("near", self._indices[position], similarity)
        return best

    def add(self, index: int, features: Features) -> None:
        """Index a record that duplicates none before it."""
        self._first.setdefault(features.key, index)
        if features.signature is None:
            return
        position = len(self._indices)
        self._indices.append(index)
        self._signatures.frombytes(features.signature)
        for key in self._band_keys(features.signature):
            self._buckets.setdefault(key, position)

    def _band_keys(self, signature: bytes) -> list[int]:
        # Hashes of the bands' bytes: equal within this process, which is all a look-up needs (the
        # index lives in the main process only). A collision of two hashes only adds a candidate.
        width = 4 * self.rows
        return [hash(signature[b * width : (b + 1) * width]) ^ b for b in range(self.bands)]

    def _similarity(self, position: int, signature: bytes) -> float:
        stored = self._signatures[position * NUM_PERM : (position + 1) * NUM_PERM]
        same = sum(a == b for a, b in zip(stored, memoryview(signature).cast("I"), strict=True))
        return round(same / NUM_PERM, 4)
