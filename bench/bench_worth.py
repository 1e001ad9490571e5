"""How often the worth intervals (docs/worth.md) hold the truth: a simulation with a fixed seed.

python bench/bench_worth.py [--trials 1000] [--records 2000]

Each trial draws a run of ``records`` records, each truly bad with probability ``bad``, which a
judge of sensitivity ``se`` and specificity ``sp`` discards or keeps; and a golden set of ``m1``
truly bad and ``m0`` truly good records the same judge decides. The interval of "bad among kept"
holds the truth when the share of truly bad records among that run's kept ones lies in it (and
the same for "good among discarded"). A 95% interval should hold it in about 95% of the trials.
"""

from __future__ import annotations

import argparse
import random
from dataclasses import dataclass

from funreason_refine.calibrate.correction import Share, Undefined, correct

SEED = 20260513


@dataclass(frozen=True)
class Setting:
    bad: float
    se: float
    sp: float
    m1: int
    m0: int


SETTINGS = (
    Setting(0.2, 0.8, 0.9, 30, 70),
    Setting(0.2, 0.8, 0.9, 100, 300),
    Setting(0.3, 0.95, 0.95, 10, 20),
    Setting(0.1, 0.7, 0.8, 15, 15),
    Setting(0.4, 0.6, 0.7, 50, 50),
    Setting(0.2, 1.0, 1.0, 20, 30),
)


def hits(rng: random.Random, n: int, p: float) -> int:
    return sum(rng.random() < p for _ in range(n))


def trial(rng: random.Random, s: Setting, records: int) -> tuple[bool, bool, float, float] | None:
    """(bad among kept held, good among discarded held, their widths); None when undefined or empty."""
    truth = [rng.random() < s.bad for _ in range(records)]
    discarded = [rng.random() < (s.se if bad else 1 - s.sp) for bad in truth]
    kept_bad = sum(b and not d for b, d in zip(truth, discarded, strict=True))
    let_go_good = sum(d and not b for b, d in zip(truth, discarded, strict=True))
    n_discarded = sum(discarded)
    if n_discarded in (0, records):
        return None
    try:
        c = correct(Share(n_discarded, records), Share(hits(rng, s.m1, s.se), s.m1), Share(hits(rng, s.m0, s.sp), s.m0))
    except Undefined:
        return None
    k, g = c.bad_among_kept, c.good_among_discarded
    assert k is not None and g is not None
    true_k, true_g = kept_bad / (records - n_discarded), let_go_good / n_discarded
    return k.low <= true_k <= k.high, g.low <= true_g <= g.high, k.high - k.low, g.high - g.low


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--records", type=int, default=2000)
    args = parser.parse_args()
    rng = random.Random(SEED)
    print("| bad | se | sp | m1 | m0 | bad among kept: held | mean width | good among discarded: held | mean width |")
    print("|---|---|---|---|---|---|---|---|---|")
    for s in SETTINGS:
        results = [r for r in (trial(rng, s, args.records) for _ in range(args.trials)) if r is not None]
        n = len(results)
        cover_k, cover_g = (sum(r[i] for r in results) / n for i in (0, 1))
        width_k, width_g = (sum(r[i] for r in results) / n for i in (2, 3))
        print(
            f"| {s.bad} | {s.se} | {s.sp} | {s.m1} | {s.m0} | {cover_k:.1%} | {width_k:.3f} | {cover_g:.1%} | "
            f"{width_g:.3f} |" + ("" if n == args.trials else f" ({args.trials - n} trials undefined)")
        )


if __name__ == "__main__":
    main()
