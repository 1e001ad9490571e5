"""Train a tiny, randomly initialised causal LM with the multiscale loss on the quickstart's kept records.

Everything is built locally (tokenizer and model), nothing is downloaded, and it runs on a CPU
in well under a minute:

    pip install torch==2.13.0 && pip install -e . -e plugins/funreason_msl
    refine run examples/quickstart/pipeline.toml
    python examples/msl_train/train_tiny.py examples/quickstart/runs/quickstart

With a real model, only the two `tiny_*` lines change: load your tokenizer and model with
`from_pretrained` (or funreason_msl.loading for a GGUF file). Do not add <think> and </think> as new
tokens: the trainer takes its labels from the dataset, and new tokens start untrained.
"""

from __future__ import annotations

import argparse
import json
import tempfile

from funreason_msl import MSLCollator, MSLDataset, MSLTrainer
from funreason_msl.data import messages, read_records
from funreason_msl.tiny import tiny_model, tiny_tokenizer
from transformers import TrainingArguments


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", help="a run folder of `refine run` (its kept.jsonl is used)")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--alpha", default="0.7", help="a number, or 'learnable'")
    args = parser.parse_args()

    records = read_records(args.run_dir)
    tokenizer = tiny_tokenizer([m["content"] for r in records for m in messages(r)])
    model = tiny_model(len(tokenizer))
    dataset = MSLDataset(records, tokenizer, max_length=512)
    print(f"{len(dataset)} examples ({dataset.report.truncated} truncated, {len(dataset.report.dropped)} dropped)")
    alpha = args.alpha if args.alpha == "learnable" else float(args.alpha)
    with tempfile.TemporaryDirectory() as out:
        training = TrainingArguments(
            output_dir=out,
            max_steps=args.steps,
            per_device_train_batch_size=8,
            gradient_accumulation_steps=2,
            learning_rate=5e-3,
            logging_steps=10,
            save_strategy="no",
            report_to=[],
            use_cpu=True,
            disable_tqdm=True,
        )
        trainer = MSLTrainer(
            model=model,
            args=training,
            train_dataset=dataset,
            data_collator=MSLCollator(tokenizer.pad_token_id),
            tokenizer_for_msl=tokenizer,
            alpha=alpha,
        )
        trainer.train()
    logs = [h for h in trainer.state.log_history if "loss" in h]
    for h in logs:
        print(json.dumps({k: h[k] for k in ("step", "loss", "loss_think", "loss_result", "alpha")}))
    print(f"loss {logs[0]['loss']:.3f} -> {logs[-1]['loss']:.3f}")


if __name__ == "__main__":
    main()
