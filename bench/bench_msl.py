"""Forward + backward time of the MSL loss against plain cross-entropy, same logits, same run.

    python bench/bench_msl.py [--device cuda] [--dtype bfloat16] [--repeats 7]

Plain cross-entropy is transformers' own causal-LM loss (ForCausalLMLoss). Logits are
[8, 512, 32000]; a third of each row is prompt, the target is 80% think and 20% result. The two
losses run interleaved, each timed from the logits to their gradient; the median is reported.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from funreason_msl import msl_loss
from transformers.loss.loss_utils import ForCausalLMLoss


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    b, t, v = 8, 512, 32000
    dtype = getattr(torch, args.dtype)
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(b, t, v, generator=g).to(args.device, dtype).requires_grad_(True)
    labels = torch.randint(0, v, (b, t), generator=g).to(args.device)
    segments = torch.zeros(b, t, dtype=torch.long, device=args.device)
    segments[:, t // 3 : t // 3 + int(t * 2 / 3 * 0.8)] = 1
    segments[:, t // 3 + int(t * 2 / 3 * 0.8) :] = 2
    labels = torch.where(segments == 0, -100, labels)

    def plain() -> None:
        ForCausalLMLoss(logits, labels, vocab_size=v).backward()

    def msl() -> None:
        msl_loss(logits, labels, segments, alpha=0.7).backward()

    times: dict[str, list[float]] = {"plain": [], "msl": []}
    for i in range(args.repeats + 1):
        for name, fn in (("plain", plain), ("msl", msl)):
            logits.grad = None
            sync(args.device)
            start = time.perf_counter()
            fn()
            sync(args.device)
            if i:  # the first round warms up
                times[name].append(time.perf_counter() - start)
    plain_s, msl_s = statistics.median(times["plain"]), statistics.median(times["msl"])
    print(f"device={args.device} dtype={args.dtype} logits=[{b}, {t}, {v}] repeats={args.repeats}")
    print(f"| plain cross-entropy | {plain_s * 1000:.0f} ms |")
    print(f"| MSL | {msl_s * 1000:.0f} ms |")
    print(f"| ratio | {msl_s / plain_s:.3f}x |")


if __name__ == "__main__":
    main()
