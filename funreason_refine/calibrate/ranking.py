"""Which candidate judge agrees best with the labels, among those that scored enough of them.

A candidate's scores count only the records it ended kept or discarded; a judge that gave no verdict on most
records (answers outside the protocol, calls that failed: errors.jsonl) or whose run stopped early is scored on
the few the rules decided, and its precision and recall say nothing of it. Such a candidate is shown with what
it did not score, and not ranked. Records the golden file holds but no format can read (quarantined) are no
candidate's doing: they are left out of the share.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

MIN_SCORED = 0.9
"""The share of the golden records (the readable ones) a candidate must score to be ranked (--min-scored)."""
ORDER = ("kappa", "f1", "cost per 1,000 records")
MESSAGE_CHARS = 200
WHY = {
    "errors": "in errors.jsonl: no verdict (answers outside the protocol, calls that failed)",
    "missing": "not reached: the run stopped",
    "quarantined": "unreadable in the golden file",
}


def coverage(candidate: dict[str, Any]) -> dict[str, Any]:
    """What a scored candidate scored: records scored, not scored by outcome, the share of the readable ones."""
    unscored = Counter(u["outcome"] for u in candidate["unscored"])
    scored = candidate["overall"]["records"]
    readable = scored + sum(unscored.values()) - unscored["quarantined"]
    return {
        "scored": scored,
        "unscored": sum(unscored.values()),
        "unscored_by_outcome": dict(unscored.most_common()),
        "readable": readable,
        "share": round(scored / readable, 4) if readable else None,
    }


def rank(candidates: list[dict[str, Any]], min_scored: float = MIN_SCORED) -> dict[str, Any]:
    """Rank the candidates in place (``rank``: 1 is the best; None with ``not_ranked`` saying why); the ranking."""
    rankable = []
    for c in candidates:
        if "error" in c:
            c["rank"], c["not_ranked"] = None, f"its run failed: {c['error']}"
            continue
        c["coverage"] = cover = coverage(c)
        if cover["share"] is None or cover["share"] < min_scored:
            c["rank"], c["not_ranked"] = None, _too_few(c, cover, min_scored)
        else:
            c["not_ranked"] = None
            rankable.append(c)
    rankable.sort(key=_order)
    for number, c in enumerate(rankable, 1):
        c["rank"] = number
    return {"by": list(ORDER), "min_scored": min_scored, "ranked": [c["name"] for c in rankable]}


def _order(c: dict[str, Any]) -> tuple[float, float, float]:
    o = c["overall"]
    kappa, f1 = o["kappa"], o["f1"]
    return (
        -(kappa if kappa is not None else -2.0),
        -(f1 if f1 is not None else -1.0),
        c["usage"]["per_1000"]["cost_usd"],
    )


def _too_few(c: dict[str, Any], cover: dict[str, Any], min_scored: float) -> str:
    """Why a candidate is not ranked, with what its unscored records were and where to look."""
    share = f" ({cover['share']:.0%})" if cover["share"] is not None else ""
    parts = [f"{n} {WHY.get(kind, kind)}" for kind, n in cover["unscored_by_outcome"].items()]
    first = next((u["message"] for u in c["unscored"] if u["outcome"] == "errors" and u["message"]), None)
    example = f"; the first error: {_cut(first)}" if first else ""
    stopped = f" ({c['stopped']})" if c.get("stopped") else ""
    return (
        f"it scored {cover['scored']} of {cover['readable']} records{share}, under --min-scored {min_scored:g}: "
        f"{'; '.join(parts)}{stopped}{example}. Its precision and recall rest on the few it decided; see "
        f"{c['run_dir']}/errors.jsonl"
    )


def _cut(text: str) -> str:
    return text if len(text) <= MESSAGE_CHARS else text[:MESSAGE_CHARS] + "..."
