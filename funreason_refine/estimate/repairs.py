"""What repairing a stage's failing verdicts adds to a run, apart from the estimate's range.

The range's low end has every judge passing and its high end every record at every stage. A judge that discards
makes a run cheaper than the low end; one whose failures are repaired asks more (refine.Refinement): a judge's
corrected calls (NewFC) are checked again by every earlier stage that re-checks a changed answer, then by its own
stage; a field that the stage's generator rewrites after a failing verdict (its judge's or its scorer's) is
checked again by the stage. So each stage that repairs gets figures of its own: a repair's calls and cost (each
call as long as that kind's calls on the rules' way), and how many repairs a share of verdicts comes to, the share
measured by a probe (its judges' votes, one per record asked) or, unprobed or for a scorer, one verdict in ten.
Only first repairs are counted: a repaired record that fails again is repaired again (up to the stage's
max_attempts), which no dry run sees, and how often a judge fails its own correction no probe measures.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from funreason_refine.calibrate.correction import Share, Z
from funreason_refine.estimate.figures import DEFAULT_OUTPUT_TOKENS, Answers, Key, assumed
from funreason_refine.estimate.findings import Findings, StageVerdicts
from funreason_refine.estimate.sums import CallSums
from funreason_refine.judge.prices import Price
from funreason_refine.stages.base import TAKES_REPAIRS, PipelineStage

UNPROBED_SHARE = 0.1
"""Without a probe: the share of a stage's verdicts assumed to lead to a repair, to show what repairs weigh."""

CORRECTED, REWRITTEN = "corrected", "rewritten"


@dataclass
class Repair:
    """One way a stage repairs what it failed: ``asks_again`` (stages, and "generator") is what a repair asks,
    ``calls`` and ``cost_usd`` what one costs; ``verdicts`` the stage's verdicts still to be given on the rules'
    way (scaled to the input; those the answer cache holds from a run gave theirs), ``share`` of them leading to
    this repair (``measured``: "k of n" probe verdicts, ``interval`` its 95% interval; None: assumed)."""

    stage: str
    kind: str
    asks_again: list[str]
    rewrites: str | None  # the field the generator rewrites (a rewrite)
    calls: float
    cost_usd: float
    verdicts: float
    share: float
    measured: str | None
    max_attempts: int
    generator_priced: bool = True  # False: no rewrite on the rules' way to price the generator's call by
    interval: tuple[float, float] | None = None
    measurable: bool = True  # a probe measures the share (a judge's votes; a scorer's verdicts are not probed)

    @property
    def repairs(self) -> float:
        return self.verdicts * self.share

    def repairs_between(self) -> tuple[float, float] | None:
        """The repairs at either end of the share's interval, when it was measured."""
        if self.interval is None:
            return None
        return self.verdicts * self.interval[0], self.verdicts * self.interval[1]

    def as_dict(self) -> dict[str, Any]:
        between = self.repairs_between()
        return {
            "stage": self.stage,
            "kind": self.kind,
            "asks_again": self.asks_again,
            "rewrites": self.rewrites,
            "calls_per_repair": round(self.calls, 2),
            "cost_usd_per_repair": round(self.cost_usd, 6),
            "verdicts": round(self.verdicts),
            "share": round(self.share, 4),
            "measured": self.measured,
            "share_interval": None if self.interval is None else [round(x, 4) for x in self.interval],
            "repairs": round(self.repairs),
            "repairs_interval": None if between is None else [round(x) for x in between],
            "calls": round(self.repairs * self.calls),
            "cost_usd": round(self.repairs * self.cost_usd, 6),
            "generator_priced": self.generator_priced,
            "measurable": self.measurable,
            "max_attempts": self.max_attempts,
        }


def repairs(
    stages: list[PipelineStage],
    sums: CallSums,
    answers: dict[Key, Answers],
    prices: dict[str, Price | None],
    reasks: dict[str, float],
    scale: float,
    findings: Findings | None,
    ran: bool = False,
) -> list[Repair]:
    """The repairs each stage's failing verdicts lead to (a stage that discards them has none). ``ran``: a run
    has begun in the folder, so the verdicts its answer cache holds were given and their repairs made."""
    asks = _Asks(sums, ran)
    cost = _Costs(asks, answers, prices, reasks)
    out = []
    for at, stage in enumerate(stages):
        verdicts = asks.verdicts(stage.name, to_come=True) * scale
        if not verdicts:
            continue
        probed = findings.verdicts.get(stage.name) if findings is not None else None
        judge = stage.judge
        if judge and judge.allow_newfc and judge.calls_may_change and stage.on_fail in TAKES_REPAIRS:
            again = [s.name for s in stages[:at] if s.stage.recheck_on_answer_change and asks.verdicts(s.name)]
            again.append(stage.name)
            share, measured, interval = share_of(probed, CORRECTED)
            calls, usd = cost.asking(again)
            out.append(Repair(stage.name, CORRECTED, again, None, calls, usd, verdicts, share, measured,
                              stage.max_attempts, interval=interval))  # fmt: skip
        if stage.generator is not None:
            share, measured, interval = share_of(probed if judge is not None else None, REWRITTEN)
            calls, usd = cost.asking([stage.name], generator=True)
            priced = bool(asks.kinds(stage.name, generator=True))
            out.append(Repair(stage.name, REWRITTEN, ["generator", stage.name], stage.stage.regenerates,
                              calls + (not priced), usd, verdicts, share, measured, stage.max_attempts, priced,
                              interval, measurable=judge is not None))  # fmt: skip
    return out


class _Asks:
    """How often each stage's models are asked on the rules' way; ``ran``: a run has begun in the folder, so what
    the answer cache holds was asked by it (not still to come)."""

    def __init__(self, sums: CallSums, ran: bool) -> None:
        self.sums, self.ran = sums, ran

    def kinds(self, stage: str, generator: bool = False) -> list[Key]:
        return [key for key in self.sums.kinds if key[0] == stage and key[2] == generator]

    def verdicts(self, stage: str, to_come: bool = False) -> int:
        """How often the stage is asked (the most of its models: one call each); ``to_come``: only what no run
        has asked yet."""
        return max((self.asked(key, to_come) for key in self.kinds(stage)), default=0)

    def asked(self, key: Key, to_come: bool = False) -> int:
        low = self.sums.sums.get(("low", key))
        if low is None:
            return 0
        return low.calls if to_come and self.ran else low.calls + low.cached


class _Costs:
    """One more call of each kind of the rules' way: its calls (re-asks at the probe's rate) and cost."""

    def __init__(
        self, asks: _Asks, answers: dict[Key, Answers], prices: dict[str, Price | None], reasks: dict[str, float]
    ) -> None:
        self.asks, self.answers, self.prices, self.reasks = asks, answers, prices, reasks

    def asking(self, stages: list[str], generator: bool = False) -> tuple[float, float]:
        """The calls and cost of asking the judges of ``stages`` once more for a record the last of them repairs
        (and the generator of the last). A stage asked less often than the last on the rules' way (a CoT judge
        where records have no CoT, a stage for conversations only) counts in that proportion."""
        repairing, asks = stages[-1], self.asks
        weighted = [(key, min(1.0, asks.verdicts(stage) / asks.verdicts(repairing)))
                    for stage in stages for key in asks.kinds(stage)]  # fmt: skip
        if generator:
            weighted += [(key, 1.0) for key in asks.kinds(repairing, generator=True)]
        calls = usd = 0.0
        for key, weight in weighted:
            more, cost = self._one(key)
            calls, usd = calls + weight * more, usd + weight * cost
        return calls, usd

    def _one(self, key: Key) -> tuple[float, float]:
        low = self.asks.sums.sums[("low", key)]
        answers = self.answers.get(key) or assumed(DEFAULT_OUTPUT_TOKENS)
        prompt = (low.prompt + low.cached_prompt) / (low.calls + low.cached) * answers.prompt_ratio
        factor = 1.0 if key[2] else self.reasks.get(key[0], 1.0)
        price = self.prices.get(key[1])
        return factor, factor * (price.cost(prompt, answers.output_tokens) if price is not None else 0.0)


def share_of(probed: StageVerdicts | None, kind: str) -> tuple[float, str | None, tuple[float, float] | None]:
    """The share of verdicts that lead to a repair of ``kind`` (corrected calls; or failing without them, which a
    generator rewrites), as the probe measured it ("k of n", and its 95% interval), or assumed."""
    if probed is None or not probed.verdicts:
        return UNPROBED_SHARE, None, None
    found = probed.corrected if kind == CORRECTED else probed.failing - probed.corrected
    share = Share(found, probed.verdicts)
    spread = Z * math.sqrt(share.variance())
    interval = (max(0.0, share.adjusted() - spread), min(1.0, share.adjusted() + spread))
    return share.value, f"{found} of {probed.verdicts}", interval


def given_up(
    stages: list[PipelineStage], sums: CallSums, scale: float, findings: Findings | None, ran: bool = False
) -> dict[str, float]:
    """Per stage, the records still to come that would end in errors.jsonl at the probe's rate of verdicts given
    up (a judge's answers that followed no protocol after every re-ask), where the probe gave any up. The rate is
    per judge asked: each of an ensemble's judges may give a record's verdict up."""
    if findings is None:
        return {}
    asks = _Asks(sums, ran)
    out = {}
    for stage in stages:
        probed = findings.protocol.get(stage.name)
        if probed is not None and probed.given_up and probed.answers > probed.reasks:
            rate = probed.given_up / (probed.answers - probed.reasks)  # each judge's verdict: one answer, its re-asks
            judged = sum(asks.asked(key, to_come=True) for key in asks.kinds(stage.name))
            out[stage.name] = min(rate * judged, asks.verdicts(stage.name, to_come=True)) * scale
    return out
