"""The yield target's round plan on simulated yields, and what the answer cache's paid ledger costs.

    python bench/bench_yield.py [--target 1000] [--samples 4] [--seeds 20]

Part 1 draws rounds with ``yield_target.draw_size`` (no model: each candidate is kept with probability
p) and reports rounds, candidates drawn against the ideal ``target / p``, and the overshoot trimmed.
Part 2 puts 20,000 answers into an AnswerCache and writes them, 256 a transaction, against the cache of
another checkout (``--baseline PATH/funreason_refine/judge/cache.py``, e.g. main's, before calls were
counted in it).
"""

from __future__ import annotations

import argparse
import importlib.util
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from funreason_refine.judge.cache import spent
from funreason_refine.yield_target import Caps, Tally, draw_size


def simulate(p: float, target: int, seed: int) -> tuple[int, int, int]:
    """(rounds, drawn, overshoot) of one run with yield p."""
    rng, tally, rounds = random.Random(seed), Tally(), 0
    caps = Caps(target=target, max_candidates=100 * target)
    while tally.kept < target:
        size = draw_size(caps, tally, available=10**9)
        kept = sum(rng.random() < p for _ in range(size))
        tally, rounds = Tally(tally.drawn + size, tally.kept + kept), rounds + 1
    return rounds, tally.drawn, tally.kept - target


def plan(target: int, seeds: int) -> None:
    print(f"target {target}, {seeds} seeds: median (max)")
    print("yield | rounds | drawn / ideal (target/yield) | overshoot trimmed")
    for p in (0.05, 0.2, 0.5, 0.9):
        runs = [simulate(p, target, seed) for seed in range(seeds)]
        rounds, drawn, over = ([r[i] for r in runs] for i in range(3))
        ratio = [d / (target / p) for d in drawn]
        print(
            f"{p:5.2f} | {statistics.median(rounds):g} ({max(rounds)}) | "
            f"{statistics.median(ratio):.2f} ({max(ratio):.2f}) | {statistics.median(over):g} ({max(over)})"
        )


def ledger(baseline: Path, answers: int = 20_000, repeats: int = 5) -> None:
    spec = importlib.util.spec_from_file_location("baseline_cache", baseline)
    assert spec is not None and spec.loader is not None
    old = sys.modules["baseline_cache"] = importlib.util.module_from_spec(spec)  # dataclasses look it up there
    spec.loader.exec_module(old)

    def once(module) -> float:
        with tempfile.TemporaryDirectory() as folder:
            cache = module.AnswerCache(Path(folder))
            t0 = time.perf_counter()
            for i in range(answers):
                cache.put(f"key-{i}", module.Cached("<judge>True</judge>", 500, 20, 1e-4, 0.5))
                if i % 256 == 255:
                    cache.write()  # a run writes every half second: the answers of that half second at once
            cache.close()
            seconds = time.perf_counter() - t0
            assert module is old or abs(spent(Path(folder)) - answers * 1e-4) < 1e-6
            return seconds

    for name, module in [("baseline", old), ("this", _this())] * 2:  # interleaved
        times = [once(module) for _ in range(repeats)]
        print(f"{name:8}: {answers} answers put and written in {statistics.median(times):.3f} s (median of {repeats})")


def _this():
    import funreason_refine.judge.cache as this

    return this


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--target", type=int, default=1000)
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--baseline", type=Path, help="another checkout's funreason_refine/judge/cache.py")
    args = parser.parse_args()
    plan(args.target, args.seeds)
    if args.baseline:
        ledger(args.baseline)
