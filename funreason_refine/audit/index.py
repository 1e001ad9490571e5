"""Exact and near-duplicate look-up among the records kept so far: a dict of keys, MinHash LSH buckets.

Written by hand, not taken from a library: datasketch's and rensa's LSH indexes hold 1.5-3 KB per
record (a Python or Rust object per key and bucket) and answer "is there a match" rather than
"which record". This one keeps, per record it indexes, one dict entry per band holding a small
int and the query's word-pair hashes: about 1 KB a record at the default threshold. Candidates
from the buckets are checked on their exact Jaccard similarity, so the threshold is exact: the
MinHash estimate, compared with many similar records, would let pairs below it through.
"""

from __future__ import annotations

from array import array
from typing import NamedTuple

from funreason_refine.audit.features import NUM_PERM, Features

RECALL = 0.95  # a pair exactly at the threshold is a candidate at least this often


class Found(NamedTuple):
    """What ``find`` said of a record: the earlier record it duplicates, if any, and its band keys."""

    match: Match | None
    band_keys: list[int]


class Match(NamedTuple):
    """An earlier record this one duplicates."""

    kind: str  # "exact" or "near"
    of: int  # the earlier record's input index
    similarity: float  # Jaccard similarity of the queries' word pairs (1.0 for exact)


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

    Only the first of a group of near-duplicates is indexed for its query (it stands for the
    group); each record kept is indexed for its exact key.
    """

    def __init__(self, threshold: float):
        self.threshold = threshold
        self.bands, self.rows = lsh_bands(threshold)
        self._first: dict[bytes, int] = {}  # exact key -> input index of the first record with it
        self._buckets: dict[int, int] = {}  # band key -> position of the first indexed record in it
        self._pairs: list[bytes] = []  # word-pair hashes per position
        self._indices = array("q")  # input index per position

    def first(self, key: bytes, index: int) -> int:
        """The first record with this exact key; this one, now indexed, if there was none."""
        return self._first.setdefault(key, index)

    def find(self, features: Features) -> Found:
        """The earlier record this one duplicates: one with the same key, else the most similar one
        whose query reaches the threshold (the earliest on a tie); None if there is none."""
        first = self._first.get(features.key)
        if first is not None:
            return Found(Match("exact", first, 1.0), [])
        if features.signature is None or features.pairs is None:
            return Found(None, [])
        keys = self._band_keys(features.signature)
        candidates = {self._buckets.get(key) for key in keys}
        mine = set(memoryview(features.pairs).cast("Q"))
        best: Match | None = None
        for position in sorted(p for p in candidates if p is not None):
            similarity = self._similarity(position, mine)
            if similarity >= self.threshold and (best is None or similarity > best.similarity):
                best = Match("near", self._indices[position], similarity)
        return Found(best, keys)

    def add(self, index: int, features: Features, found: Found) -> None:
        """Index a record that is kept, with what ``find`` said of it."""
        self._first.setdefault(features.key, index)
        if found.match is not None or features.pairs is None:
            return
        position = len(self._indices)
        self._indices.append(index)
        self._pairs.append(features.pairs)
        for key in found.band_keys:
            self._buckets.setdefault(key, position)

    def _band_keys(self, signature: bytes) -> list[int]:
        # Hashes of the bands' bytes: equal within this process, which is all a look-up needs (the
        # index lives in the main process only). A collision of two hashes only adds a candidate.
        width = 4 * self.rows
        return [hash(signature[b * width : (b + 1) * width]) ^ b for b in range(self.bands)]

    def _similarity(self, position: int, mine: set[int]) -> float:
        theirs = memoryview(self._pairs[position]).cast("Q")
        common = len(mine.intersection(theirs))
        return round(common / (len(mine) + len(theirs) - common), 4)
