"""Evaluation sets that kept records must not copy: their queries, read with the readers, indexed by word n-grams."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from funreason_refine.audit.words import words
from funreason_refine.errors import InputError
from funreason_refine.record import Record

if TYPE_CHECKING:
    from funreason_refine.audit.settings import AuditSettings
    from funreason_refine.readers import InputStream

SHOWN_UNREADABLE = 5  # unreadable entries named in the summary, per eval set


@dataclass
class EvalSet:
    """One eval set's queries, in file order, and what of it could not be read."""

    path: Path
    ids: list[str] = field(default_factory=list)
    queries: list[str] = field(default_factory=list)
    unreadable: int = 0
    problems: list[str] = field(default_factory=list)  # the first few unreadable entries: file:line: error

    def add_problem(self, where: str, error: str) -> None:
        self.unreadable += 1
        if len(self.problems) < SHOWN_UNREADABLE:
            self.problems.append(f"{self.path}:{where}: {error}")


def read_eval_set(path: Path) -> EvalSet:
    """Every query of an eval set in any input format; an entry without a readable query is counted
    and named, not fatal. BFCL question files need no possible answers here."""
    from funreason_refine.readers import InputStream

    try:
        fmt = eval_set_format(path)
    except InputError as exc:
        raise InputError(f"[audit] eval_sets: {exc}") from None
    found = EvalSet(path)
    items = _bfcl_queries(path) if fmt == "bfcl" else _record_queries(InputStream(path, fmt))
    for where, rid, query in items:
        if query is None:
            found.add_problem(where, rid)
        else:
            found.ids.append(rid)
            found.queries.append(query)
    return found


EVAL_SET_ADVICE = (
    "an eval set is read in the format its records' keys say ([input] format does not apply to it): give it "
    "records with query and answers (xlam), question and function (bfcl), messages (openai) or conversations "
    "(sharegpt), or take it out of [audit] eval_sets"
)


def eval_set_format(path: Path) -> str:
    """The format of the eval set ``path``, as its records' keys say (`refine validate` tells it as the run does);
    InputError, saying what applies to an eval set, when they say none or it holds no records."""
    from funreason_refine.readers import guess_format

    fmt = guess_format(path, advice=EVAL_SET_ADVICE)
    if fmt is None:
        raise InputError(f"cannot tell the format of {path}: it holds no records; {EVAL_SET_ADVICE}")
    return fmt


def _bfcl_queries(path: Path) -> Iterator[tuple[str, str, str | None]]:
    """(line, id, query), or (line, error, None)."""
    from funreason_refine.readers import DEFAULT_MAX_RECORD_BYTES, bfcl
    from funreason_refine.readers.answers import FieldError, record_id
    from funreason_refine.readers.raw import iter_raw

    for line, obj, _ in iter_raw(path, DEFAULT_MAX_RECORD_BYTES):
        if not isinstance(obj, dict):
            yield str(line), str(obj), None
            continue
        try:
            yield str(line), record_id(obj, str(line)), bfcl.query_of(obj.get("question"))
        except FieldError as exc:
            yield str(line), str(exc), None


def _record_queries(stream: InputStream) -> Iterator[tuple[str, str, str | None]]:
    for item in stream.items():
        if isinstance(item, Record):
            yield str(item.source.line), item.id, item.query
        else:
            yield str(item.source.line), item.error, None


def ngrams(said: list[str], n: int) -> set[str]:
    """The distinct n-word sequences of a text's words; a text of fewer words is one n-gram, whole."""
    if len(said) <= n:
        return {" ".join(said)} if said else set()
    return {" ".join(said[i : i + n]) for i in range(len(said) - n + 1)}


class EvalIndex:
    """The eval sets' n-grams, each with the first (set, item) that has it."""

    def __init__(self, sets: list[EvalSet], n: int, threshold: float):
        self.sets = sets
        self.n = n
        self.threshold = threshold
        self.grams: dict[str, tuple[int, int]] = {}
        for set_no, eval_set in enumerate(sets):
            for item_no, query in enumerate(eval_set.queries):
                for gram in ngrams(words(query), n):
                    self.grams.setdefault(gram, (set_no, item_no))

    @classmethod
    def load(cls, settings: AuditSettings) -> EvalIndex:
        sets = [read_eval_set(path) for path in settings.eval_sets]
        return cls(sets, settings.contamination_ngram, settings.contamination_threshold)

    def match(self, said: list[str]) -> tuple[float, int, int] | None:
        """(share of the query's n-grams found in the eval sets, the set and item sharing the most)
        when the share reaches the threshold; else None."""
        grams = ngrams(said, self.n)
        hits = [self.grams[g] for g in grams if g in self.grams]
        overlap = len(hits) / len(grams) if grams else 0.0
        if not hits or overlap < self.threshold:
            return None
        (set_no, item_no), _ = Counter(hits).most_common(1)[0]
        return round(overlap, 4), set_no, item_no
