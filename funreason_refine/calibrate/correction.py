"""A judge's measured error taken out of its verdicts: the Rogan-Gladen correction with a delta-method interval.

A stage (or the whole pipeline) is a test that discards a share ``q`` of a run's records. On a
golden set it discarded a share ``se`` (sensitivity) of the records a person discards, and let a
share ``sp`` (specificity) of those a person keeps through. Then (Rogan and Gladen, 1978; Lee et
al., arXiv 2511.21140, for LLM judges), with ``j = se + sp - 1``:

    bad share            pi = (q + sp - 1) / j             truly bad among all the records it decided
    bad among kept          = (1 - se) pi / (1 - q)        what it let through that a person would discard
    good among discarded    = (1 - sp) (1 - pi) / q        what it let go that a person would keep

Each is undefined when ``j <= 0`` (the test is no better than chance). The interval is the delta
method over the three independent proportions ``q`` (the run), ``se`` and ``sp`` (the golden
set), so it carries both the run's and the calibration's sampling error. The interval is
centred on the estimate at the three Agresti-Coull adjusted proportions ((hits + z^2/2) /
(n + z^2)), where the derivatives and variances are taken too: a judge that made no mistake on
12 labels still gets an interval wider than nothing, and a simulation (bench/bench_worth.py)
finds these intervals hold the truth 94-100% of the time where the unadjusted ones held it as
little as 89%. The estimate is the plain Rogan-Gladen value; it and the bounds are clipped to [0, 1]
(widened, where needed, to hold the estimate). Written by hand (three formulas and their derivatives):
the project has no scipy or numpy dependency, and the standard library's NormalDist gives z.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from statistics import NormalDist

CONFIDENCE = 0.95
Z = NormalDist().inv_cdf(0.5 + CONFIDENCE / 2)
TOO_FEW = 10  # labelled records of a class below which its rate is little more than a guess

Gradient = tuple[float, float, float]  # d/dq, d/dse, d/dsp


@dataclass(frozen=True)
class Share:
    """``hits`` of ``n``: a proportion and the variance of its estimate."""

    hits: int
    n: int

    @property
    def value(self) -> float:
        return self.hits / self.n

    def adjusted(self, z: float = Z) -> float:
        """The Agresti-Coull adjusted proportion: z^2/2 hits and z^2/2 misses added."""
        return (self.hits + z * z / 2) / (self.n + z * z)

    def variance(self, z: float = Z) -> float:
        """The binomial variance at the adjusted proportion (never 0, even at 0 or n hits)."""
        p = self.adjusted(z)
        return p * (1 - p) / (self.n + z * z)


@dataclass(frozen=True)
class Estimate:
    """A corrected share with its interval, clipped to [0, 1]; ``labels_to_halve``: about how many more
    golden labels (at the calibration's mix of keeps and discards) would halve the interval's half-width,
    None when labels alone cannot (the run's own sampling error is most of it); ``from_discards``: the
    labelled discards' part of the labels' share of its variance (the rest is the labelled keeps')."""

    value: float
    low: float
    high: float
    clipped: bool
    labels_to_halve: int | None
    from_discards: float | None = None


@dataclass(frozen=True)
class Correction:
    """What a test's verdicts are worth, corrected for its measured error."""

    bad_share: Estimate
    bad_among_kept: Estimate | None  # None when it kept nothing
    good_among_discarded: Estimate | None  # None when it discarded nothing
    youden: float  # se + sp - 1: how much better than chance
    notes: list[str] = field(default_factory=list)


class Undefined(ValueError):
    """The correction cannot be made; the message says why in a person's words."""


def _bad_share(q: float, se: float, sp: float) -> tuple[float, Gradient]:
    j = se + sp - 1
    pi = (q + sp - 1) / j
    return pi, (1 / j, -pi / j, (1 - pi) / j)


def _bad_among_kept(q: float, se: float, sp: float) -> tuple[float, Gradient]:
    pi, (pq, pse, psp) = _bad_share(q, se, sp)
    kept = 1 - q
    value = (1 - se) * pi / kept
    return value, ((1 - se) * (pq + pi / kept) / kept, (-pi + (1 - se) * pse) / kept, (1 - se) * psp / kept)


def _good_among_discarded(q: float, se: float, sp: float) -> tuple[float, Gradient]:
    pi, (pq, pse, psp) = _bad_share(q, se, sp)
    value = (1 - sp) * (1 - pi) / q
    return value, ((1 - sp) * (-pq - (1 - pi) / q) / q, -(1 - sp) * pse / q, (-(1 - pi) - (1 - sp) * psp) / q)


def _clip(x: float) -> float:
    return min(1.0, max(0.0, x))


def _estimate(
    formula: Callable[[float, float, float], tuple[float, Gradient]], q: Share, se: Share, sp: Share, z: float
) -> Estimate:
    value, _ = formula(q.value, se.value, sp.value)
    if se.adjusted(z) + sp.adjusted(z) <= 1:  # with its pseudo-counts the judge is no better than chance
        return Estimate(_clip(value), 0.0, 1.0, not 0 <= value <= 1, None)
    centre, (gq, gse, gsp) = formula(q.adjusted(z), se.adjusted(z), sp.adjusted(z))
    from_run = gq * gq * q.variance(z)
    from_labels = gse * gse * se.variance(z) + gsp * gsp * sp.variance(z)
    half = z * math.sqrt(from_run + from_labels)
    return Estimate(
        value=_clip(value),
        low=_clip(min(centre - half, value)),  # widened, in the rare case it must be, to hold the estimate
        high=_clip(max(centre + half, value)),
        clipped=not 0 <= value <= 1,
        labels_to_halve=_labels_to_halve(from_run, from_labels, se.n + sp.n),
        from_discards=gse * gse * se.variance(z) / from_labels if from_labels > 0 else None,
    )


def _labels_to_halve(from_run: float, from_labels: float, labels: int) -> int | None:
    """Labels to add so that the variance falls to a quarter: the labels' part shrinks as 1 / labels."""
    target = (from_run + from_labels) / 4
    if from_labels <= 0 or target <= from_run:
        return None
    factor = from_labels / (target - from_run)
    return math.ceil((factor - 1) * labels)


def correct(discarded: Share, sensitivity: Share, specificity: Share, z: float = Z) -> Correction:
    """The bad share of a run's records and the errors in what it kept and let go, corrected for the
    test's measured ``sensitivity`` (discards among the records a person discards) and ``specificity``
    (passes among those a person keeps); ``discarded``: the run's discards of the records it decided.
    Raises Undefined when there is nothing to correct with."""
    for share, what in ((sensitivity, "discards"), (specificity, "keeps")):
        if share.n == 0:
            raise Undefined(f"no labelled {what}: its error on them is unknown")
    if discarded.n == 0:
        raise Undefined("the run decided no record here")
    youden = sensitivity.value + specificity.value - 1
    if youden <= 0:
        raise Undefined(
            f"no better than chance on the labels (sensitivity {sensitivity.value:.2f} + specificity "
            f"{specificity.value:.2f} - 1 = {youden:.2f}): its verdicts say nothing about the records, so the "
            "correction is undefined"
        )
    q = discarded.value
    kept = _estimate(_bad_among_kept, discarded, sensitivity, specificity, z) if q < 1 else None
    let_go = _estimate(_good_among_discarded, discarded, sensitivity, specificity, z) if q else None
    notes = _notes(discarded, sensitivity, specificity, youden, z)
    bound = [
        what
        for what, e in (("bad among kept", kept), ("good among discarded", let_go))
        if e and e.labels_to_halve is None
    ]
    if bound and sensitivity.adjusted(z) + specificity.adjusted(z) > 1:
        notes.append(
            f"no number of labels alone halves the interval of {' and of '.join(bound)}: most of its uncertainty "
            f"is the run's own ({discarded.n:,} records)"
        )
    return Correction(
        bad_share=_estimate(_bad_share, discarded, sensitivity, specificity, z),
        bad_among_kept=kept,
        good_among_discarded=let_go,
        youden=youden,
        notes=notes,
    )


def _notes(discarded: Share, sensitivity: Share, specificity: Share, youden: float, z: float) -> list[str]:
    """What a person should know before trusting the figures."""
    notes = [
        f"only {share.n} labelled {what if share.n > 1 else what[:-1]} (fewer than {TOO_FEW}): its {rate} is "
        f"little more than a guess; label more {what}"
        for share, what, rate in ((sensitivity, "discards", "sensitivity"), (specificity, "keeps", "specificity"))
        if share.n < TOO_FEW
    ]
    if youden - z * math.sqrt(sensitivity.variance(z) + specificity.variance(z)) <= 0:
        notes.append(
            f"not clearly better than chance (sensitivity + specificity - 1 = {youden:.2f}, within sampling "
            "error of 0): the intervals are wide and the normal approximation is poor"
        )
    q, se, sp = discarded.value, sensitivity.value, specificity.value
    if not 1 - sp <= q <= se:
        notes.append(
            f"the run discarded {q:.1%}, outside the {1 - sp:.1%}-{se:.1%} its measured error allows: the run's "
            "records are not like the golden ones, or the judge behaves otherwise on them; the estimates are clipped"
        )
    return notes
