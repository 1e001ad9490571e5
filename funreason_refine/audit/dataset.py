"""The dataset audits of a run: every record the stages kept, in the order records finish, checked against
the eval sets and against the records kept before it; what they find goes under ``dataset`` in summary.json.

A function of the finished records in order: the run calls ``check`` on each finished record before
the run folder writes it (a kept record the audits drop becomes a discarded one, stage ``dataset``),
and ``read_back`` on each line already in the folder when it resumes, which rebuilds the same state.
Anything that replays finished records in input order (a merge of shards) gets the same bytes.
"""

from __future__ import annotations

import json
from typing import Any, cast

from pydantic import ValidationError

from funreason_refine.audit.counts import AuditCounts, Finding, call_mix_warnings
from funreason_refine.audit.features import CALL_KINDS, FeatureReader, Features
from funreason_refine.audit.index import DuplicateIndex, Match
from funreason_refine.audit.settings import AuditSettings
from funreason_refine.record import Action, DatasetDiscard, Outcome, Step
from funreason_refine.run_folder import Written, to_json_line
from funreason_refine.summary import DatasetSection, Summary

STAGE = "dataset"  # the stage name of the records the audits discard
DUPLICATE, NEAR_DUPLICATE, CONTAMINATED = "duplicate", "near_duplicate", "contaminated"


class DatasetAudit:
    def __init__(self, settings: AuditSettings):
        self.settings = settings
        self.features = FeatureReader(settings)
        self.index = DuplicateIndex(settings.near_duplicate_threshold)
        self.counts = AuditCounts()

    def check(self, written: Written) -> Written:
        """A finished record as the run folder must write it: kept, or discarded by the audits."""
        if written.outcome is not Outcome.KEPT:
            return written
        # Features, as refined records carry them (the run folder, below the audits, types them as a tuple)
        features = cast(Features, written.features) or self.features.of_line(written.line)
        if features.signature is None and features.contamination is None:
            # The common case, in one dict operation (half the time of the whole way below): a record
            # whose key is new is no duplicate and stays; it is indexed by the same call.
            if self.index.first(features.key, written.index) == written.index:
                self.counts.add_clean(features)
                return written
        finding = self._find(written.index, features)
        if finding.drop is None:
            self.counts.add(written.index, features, finding, lambda: json.loads(written.line))
            return written
        line = json.loads(written.line)
        discarded = _discarded(written, line, finding.drop, self._message(finding), self._details(finding))
        self.counts.add(written.index, features, finding, lambda: line)
        return discarded

    def read_back(self, outcome: str, line: dict[str, Any]) -> None:
        """A line already in the run folder (a resumed run): counted, and indexed as when it was written."""
        if outcome == Outcome.KEPT:
            features = self.features.of(line)
            finding = self._find(line["index"], features, may_drop=False)
        elif outcome == Outcome.DISCARDED and line.get("stage") == STAGE:
            features = self.features.of(line)
            finding = _dropped(line, features)
        else:
            return
        self.counts.add(line["index"], features, finding, lambda: line)

    def add_to(self, summary: Summary) -> None:
        """Put the ``dataset`` section into a run's summary; when the audits dropped records (their stage
        is then among the stages), the records they let through count as its passes."""
        summary.dataset = dataset = self.summary()
        stage = summary.stages.get(STAGE)
        if stage is not None:
            stage.passed = dataset.audited - sum(dataset.dropped.values())

    def summary(self) -> DatasetSection:
        """The ``dataset`` section of summary.json."""
        evals = self.features.evals
        section = self.counts.section(self.settings, evals)
        unreadable = [f"eval set entry left out, {p}" for e in (evals.sets if evals else []) for p in e.problems]
        section.warnings = call_mix_warnings(section.call_mix) + unreadable
        return section

    def _find(self, index: int, features: Features, may_drop: bool = True) -> Finding:
        """Contamination first (a record dropped for it is not compared further), then duplicates; a
        record that stays is indexed for those after it."""
        s = self.settings
        contamination = features.contamination
        if contamination is not None and s.drop_contaminated and may_drop:
            return Finding(contamination, None, CONTAMINATED)
        found = self.index.find(features)
        drop = self._drop_for(found.match) if may_drop else None
        if drop is None:
            self.index.add(index, features, found)
        return Finding(contamination, found.match, drop)

    def _drop_for(self, match: Match | None) -> str | None:
        """Dropping near-duplicates drops exact ones too: they are the nearest."""
        s = self.settings
        if match is None:
            return None
        if match.kind == "exact":
            return DUPLICATE if s.drop_duplicates or s.drop_near_duplicates else None
        return NEAR_DUPLICATE if s.drop_near_duplicates else None

    def _message(self, finding: Finding) -> str:
        if finding.drop == CONTAMINATED:
            assert finding.contamination is not None
            name, item_id, _ = self._eval_item(finding.contamination)
            overlap = finding.contamination[0]
            return (
                f"{overlap:.0%} of the query's {self.settings.contamination_ngram}-word sequences are in eval set "
                f"{name}, most of them in item {item_id}"
            )
        assert finding.match is not None
        if finding.match.kind == "exact":
            return f"same query and answer as record {finding.match.of}, which is kept"
        return (
            f"near-duplicate query of record {finding.match.of}, which is kept "
            f"(similarity {finding.match.similarity:.2f})"
        )

    def _details(self, finding: Finding) -> dict[str, Any]:
        if finding.drop == CONTAMINATED:
            assert finding.contamination is not None
            name, item_id, _ = self._eval_item(finding.contamination)
            return {"eval_set": name, "eval_id": item_id, "overlap": finding.contamination[0]}
        assert finding.match is not None
        return {"duplicate_of": finding.match.of, "similarity": finding.match.similarity}

    def _eval_item(self, contamination: tuple[float, int, int]) -> tuple[str, str, str]:
        assert self.features.evals is not None
        eval_set = self.features.evals.sets[contamination[1]]
        item = contamination[2]
        return str(eval_set.path), eval_set.ids[item], eval_set.queries[item]


def _dropped(line: dict[str, Any], features: Features) -> Finding:
    """What the audits had found about a record they discarded, from its line."""
    details = line.get("audit") or {}
    reason = line.get("reason")
    match = None
    if reason in (DUPLICATE, NEAR_DUPLICATE):
        kind = "exact" if reason == DUPLICATE else "near"
        match = Match(kind, int(details.get("duplicate_of", -1)), float(details.get("similarity", 1.0)))
    return Finding(features.contamination, match, str(reason))


def _discarded(written: Written, line: dict[str, Any], reason: str, message: str, details: dict[str, Any]) -> Written:
    """The kept line as a discarded one: the audits' verdict added to its trail, stage, reason and
    message, and what they found under ``audit``; written as the run folder writes every line."""
    step = Step(stage=STAGE, verdict=Action.DISCARD, reason=reason, message=message)
    fields = {**line, "trail": [*line.get("trail", []), step], "stage": STAGE, "reason": reason, "message": message}
    fields["audit"] = details
    try:
        model = DatasetDiscard.model_validate(fields)
    except ValidationError:  # a stage wrote a value its model does not read back: the line as it is
        model = DatasetDiscard.model_construct(**fields)
    trail = (*written.trail, (STAGE, Action.DISCARD, reason))
    return Written(written.index, Outcome.DISCARDED, to_json_line(model), trail, STAGE, reason, scores=written.scores)


__all__ = ["CALL_KINDS", "STAGE", "DatasetAudit"]
