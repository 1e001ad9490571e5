"""What the dataset audits found, counted, with the first examples; the ``dataset`` section of summary.json."""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

from funreason_refine.audit.features import CALL_KINDS, Features
from funreason_refine.summary import CallMix, ContaminationAudit, DatasetSection, DuplicateAudit, EvalSetInfo

if TYPE_CHECKING:
    from funreason_refine.audit.evalsets import EvalIndex
    from funreason_refine.audit.index import Match
    from funreason_refine.audit.settings import AuditSettings


class Finding(NamedTuple):
    """What the audits found about one kept record, and the reason it is dropped for, if it is."""

    contamination: tuple[float, int, int] | None
    match: Match | None
    drop: str | None


EXAMPLES = 10  # records listed per finding in summary.json
QUERY_CHARS = 300  # of each example's query

MISSING = {
    "no_call": "no kept record answers without calling a function (an empty call list or a text reply): a model "
    "trained on this set learns to always call one (When2Call and the xLAM community report this); add records "
    "whose answer is [] or a text reply",
    "one_call": "no kept record makes exactly one call: add records whose answer is a single call",
    "parallel": "no kept record calls one function several times in one answer (parallel calls): a model trained "
    "on this set does not learn to make them; add records whose answer calls a function more than once",
    "several_functions": "no kept record calls two or more different functions in one answer: a model trained on "
    "this set does not learn to combine functions; add records whose answer calls several functions",
}


def call_mix_warnings(mix: CallMix) -> list[str]:
    """What the kept set lacks, said as warnings (nothing for an empty set)."""
    return [MISSING[kind] for kind in mix.missing] if mix.records else []


class Examples:
    """The records of smallest input index among those added (records can come out of input order:
    a resumed folder is read file by file, and `refine retry` redoes records after the others)."""

    def __init__(self, size: int = EXAMPLES):
        self.size = size
        self.items: list[tuple[int, dict[str, Any]]] = []

    def wants(self, index: int) -> bool:
        return len(self.items) < self.size or index < self.items[-1][0]

    def add(self, index: int, item: dict[str, Any]) -> None:
        bisect.insort(self.items, (index, item), key=lambda pair: pair[0])
        del self.items[self.size :]


class AuditCounts:
    def __init__(self) -> None:
        self.audited = 0
        self.found: Counter[str] = Counter()  # exact, near, contaminated: found, dropped or not
        self.dropped: Counter[str] = Counter()  # by reason
        self.mix: Counter[str] = Counter()  # call kinds of the records that stay kept
        self.turn_mix: Counter[str] = Counter()  # call kinds of their assistant turns (one per single turn)
        self.duplicates = Examples()
        self.contaminated = Examples()

    def add_clean(self, features: Features) -> None:
        """An audited record in which nothing was found."""
        self.audited += 1
        self._count_kinds(features)

    def _count_kinds(self, features: Features) -> None:
        self.mix[features.kind] += 1
        if features.turns:
            self.turn_mix.update(features.turns)
        else:
            self.turn_mix[features.kind] += 1

    def add(self, index: int, features: Features, finding: Finding, line: Callable[[], dict[str, Any]]) -> None:
        """One audited record; ``line`` gives its line (parsed only when it becomes an example)."""
        self.audited += 1
        if finding.drop is None:
            self._count_kinds(features)
        else:
            self.dropped[finding.drop] += 1
        dropped = finding.drop is not None
        if finding.match is not None:
            self.found[finding.match.kind] += 1
            if self.duplicates.wants(index):
                match = finding.match
                extra = {"kind": match.kind, "of": match.of, "similarity": match.similarity, "dropped": dropped}
                self.duplicates.add(index, {**_example(line()), **extra})
        if finding.contamination is not None:
            self.found["contaminated"] += 1
            if self.contaminated.wants(index):
                overlap, set_no, item_no = finding.contamination
                extra = {"overlap": overlap, "set": set_no, "item": item_no, "dropped": dropped}
                self.contaminated.add(index, {**_example(line()), **extra})

    def section(self, settings: AuditSettings, evals: EvalIndex | None) -> DatasetSection:
        """The ``dataset`` section of summary.json (its warnings are added by the caller)."""
        return DatasetSection(
            audited=self.audited,
            dropped=dict(sorted(self.dropped.items())),
            duplicates=DuplicateAudit(
                drop=settings.drop_duplicates,
                drop_near=settings.drop_near_duplicates,
                near_threshold=settings.near_duplicate_threshold,
                exact=self.found["exact"],
                near=self.found["near"] if settings.near else None,  # None: not looked for
                examples=[item for _, item in self.duplicates.items],
            ),
            contamination=ContaminationAudit(
                drop=settings.drop_contaminated,
                ngram=settings.contamination_ngram,
                threshold=settings.contamination_threshold,
                eval_sets=[
                    EvalSetInfo(path=str(s.path), queries=len(s.queries), unreadable=s.unreadable)
                    for s in (evals.sets if evals else [])
                ],
                records=self.found["contaminated"],
                examples=[_eval_example(item, evals) for _, item in self.contaminated.items],
            ),
            call_mix=CallMix(
                records=sum(self.mix.values()),
                **{kind: self.mix[kind] for kind in CALL_KINDS},
                missing=_missing(self.turn_mix),
                turns={"assistant_turns": sum(self.turn_mix.values()), **{k: self.turn_mix[k] for k in CALL_KINDS}},
            ),
            warnings=[],
        )


def _missing(mix: Counter[str]) -> list[str]:
    """The kinds of answer no kept assistant turn has (a text reply counts as answering without a call):
    a conversation that makes parallel calls in its second turn has parallel calls."""
    have = {
        "no_call": mix["no_call"] + mix["text"],
        "one_call": mix["one_call"],
        "parallel": mix["parallel"],
        "several_functions": mix["several_functions"],
    }
    return [kind for kind, n in have.items() if not n]


def _example(line: dict[str, Any]) -> dict[str, Any]:
    query = line.get("query")
    text = query if isinstance(query, str) else ""
    return {"index": line["index"], "id": line.get("id"), "query": text[:QUERY_CHARS]}


def _eval_example(item: dict[str, Any], evals: EvalIndex | None) -> dict[str, Any]:
    """An example of contamination with the eval item it overlaps most."""
    out = {k: v for k, v in item.items() if k not in ("set", "item")}
    if evals is not None:
        eval_set = evals.sets[item["set"]]
        out.update(
            eval_set=str(eval_set.path),
            eval_id=eval_set.ids[item["item"]],
            eval_query=eval_set.queries[item["item"]][:QUERY_CHARS],
        )
    return out
