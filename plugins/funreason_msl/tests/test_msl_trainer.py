import json
import os

import pytest
import torch
from click.testing import CliRunner
from funreason_msl import MSLCollator, MSLDataset, MSLLoss, MSLTrainer
from funreason_msl.cli import msl_stats
from funreason_msl.data import encode
from funreason_msl.tiny import tiny_model
from transformers import Trainer, TrainingArguments


def args(tmp_path, **kw):
    base = dict(
        output_dir=str(tmp_path / "out"),
        per_device_train_batch_size=4,
        num_train_epochs=1,
        learning_rate=5e-3,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        seed=0,
        use_cpu=True,
        dataloader_num_workers=0,
        disable_tqdm=True,
    )
    base.update(kw)
    return TrainingArguments(**base)


@pytest.fixture(scope="module")
def dataset(records, tokenizer):
    return MSLDataset(records, tokenizer, max_length=512)


def test_training_a_tiny_model_lowers_the_loss_and_logs_both_segments(tmp_path, dataset, tokenizer):
    model = tiny_model(len(tokenizer))
    trainer = MSLTrainer(
        model=model,
        args=args(tmp_path, max_steps=30, per_device_train_batch_size=8),
        train_dataset=dataset,
        data_collator=MSLCollator(tokenizer.pad_token_id),
        tokenizer_for_msl=tokenizer,
        alpha=0.7,
    )
    trainer.train()
    logs = [h for h in trainer.state.log_history if "loss" in h]
    assert {"loss_think", "loss_result", "alpha"} <= set(logs[0])
    assert logs[0]["alpha"] == 0.7
    first, last = sum(h["loss"] for h in logs[:3]) / 3, sum(h["loss"] for h in logs[-3:]) / 3
    assert last < 0.8 * first, (first, last)


def first_step_weights(tmp_path, dataset, tokenizer, batch, accumulation):
    model = tiny_model(len(tokenizer), seed=1)
    trainer = MSLTrainer(
        model=model,
        args=args(
            tmp_path,
            max_steps=1,
            per_device_train_batch_size=batch,
            gradient_accumulation_steps=accumulation,
            optim="sgd",
            learning_rate=1.0,
            lr_scheduler_type="constant",
            warmup_steps=0,
        ),
        train_dataset=torch.utils.data.Subset(dataset, range(8)),
        data_collator=MSLCollator(tokenizer.pad_token_id),
        tokenizer_for_msl=tokenizer,
    )
    trainer.train()
    return model.lm_head.weight.detach().clone()


def test_gradient_accumulation_gives_the_step_of_one_large_batch(tmp_path, dataset, tokenizer):
    one = first_step_weights(tmp_path / "a", dataset, tokenizer, batch=8, accumulation=1)
    four = first_step_weights(tmp_path / "b", dataset, tokenizer, batch=2, accumulation=4)
    untrained = tiny_model(len(tokenizer), seed=1).lm_head.weight.detach()
    assert not torch.allclose(one, untrained)
    assert torch.allclose(one, four, atol=1e-6)


def test_evaluation_after_training_is_the_loss_of_its_own_batches_and_stays_out_of_the_training_logs(
    tmp_path, dataset, tokenizer
):
    from funreason_msl import msl_loss

    train, held_out = torch.utils.data.Subset(dataset, range(4)), torch.utils.data.Subset(dataset, range(4, 7))
    collator = MSLCollator(tokenizer.pad_token_id)
    model = tiny_model(len(tokenizer), seed=0)
    with torch.no_grad():
        model.lm_head.weight.mul_(50)  # losses that differ from token to token, so that a mix-up shows

        def loss(batch):
            logits = model(batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            return msl_loss(logits, batch["labels"], batch["segments"], return_parts=True)

        evaluation = [float(loss(collator([held_out[i]]))[0]) for i in range(len(held_out))]
        _, (think, result) = loss(collator([train[i] for i in range(len(train))]))  # one step: the 4 examples
    trainer = MSLTrainer(
        # learning rate 0: the model never changes, so every evaluation and every step gives the same losses
        args=args(tmp_path, max_steps=2, learning_rate=0.0, per_device_eval_batch_size=1, eval_strategy="steps"),
        model=model,
        train_dataset=train,
        eval_dataset=held_out,
        data_collator=collator,
        alpha=0.7,
    )
    expected = sum(evaluation) / len(evaluation)
    assert trainer.evaluate()["eval_loss"] == pytest.approx(expected, rel=1e-5)
    trainer.train()  # evaluates after each step too
    assert trainer.evaluate()["eval_loss"] == pytest.approx(expected, rel=1e-5)  # not divided by the step's counts
    steps = [h for h in trainer.state.log_history if "loss" in h]
    assert len(steps) == 2  # each logs its own step's losses, no evaluation's mixed in
    for h in steps:
        assert (h["loss_think"], h["loss_result"]) == pytest.approx((float(think), float(result)), abs=2e-4)


def test_logged_segment_losses_are_the_steps_means_when_a_micro_batch_has_no_cot(tmp_path, dataset, tokenizer):
    from funreason_msl import msl_loss
    from funreason_msl.loss import THINK

    with_cot = [i for i in range(len(dataset)) if THINK in dataset[i]["segments"]][:2]
    without = [i for i in range(len(dataset)) if THINK not in dataset[i]["segments"]][:2]
    step = torch.utils.data.Subset(dataset, with_cot + without)
    collator = MSLCollator(tokenizer.pad_token_id)
    model = tiny_model(len(tokenizer), seed=0)
    with torch.no_grad():
        batch = collator([step[i] for i in range(4)])
        logits = model(batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        _, (think, result) = msl_loss(logits, batch["labels"], batch["segments"], return_parts=True)
    trainer = MSLTrainer(
        args=args(
            tmp_path, max_steps=1, learning_rate=0.0, per_device_train_batch_size=1, gradient_accumulation_steps=4
        ),
        model=model,
        train_dataset=step,
        data_collator=collator,
        alpha=0.7,
    )
    trainer.train()
    (logged,) = [h for h in trainer.state.log_history if "loss" in h]
    # the two micro-batches without a CoT have no think loss: they must not pull loss_think toward 0
    assert (logged["loss_think"], logged["loss_result"]) == pytest.approx((float(think), float(result)), abs=2e-4)
    assert logged["loss"] == pytest.approx(0.7 * float(think) + 0.3 * float(result), abs=2e-4)


def test_msl_loss_alone_refuses_gradient_accumulation(tmp_path, dataset, tokenizer):
    trainer = Trainer(
        model=tiny_model(len(tokenizer)),
        args=args(
            tmp_path,
            max_steps=1,
            per_device_train_batch_size=2,
            gradient_accumulation_steps=2,
            remove_unused_columns=False,
        ),
        train_dataset=[{k: v for k, v in dataset[i].items() if k != "segments"} for i in range(4)],
        data_collator=MSLCollator(tokenizer.pad_token_id),
        compute_loss_func=MSLLoss(tokenizer),
    )
    with pytest.raises(RuntimeError, match="use MSLTrainer"):
        trainer.train()


def test_msl_loss_as_compute_loss_func_reads_segments_from_labels(dataset, tokenizer):
    batch = MSLCollator(tokenizer.pad_token_id)([dataset[i] for i in range(3)])
    assert torch.equal(MSLLoss(tokenizer).segments(batch["labels"]), batch["segments"])
    think_end = tokenizer.convert_tokens_to_ids("</think>")
    assert torch.equal(MSLLoss(think_token_id=think_end).segments(batch["labels"]), batch["segments"])


def test_msl_trainer_takes_segments_from_the_dataset_whatever_the_tokenization_of_think_end(
    tmp_path, records, plain_tokenizer
):
    # '</think>' is several tokens here (as in SmolLM2's tokenizer); the trainer never needs its id.
    assert len(plain_tokenizer.encode("</think>", add_special_tokens=False)) > 1
    dataset = MSLDataset(records[:8], plain_tokenizer, max_length=512)
    trainer = MSLTrainer(
        model=tiny_model(len(plain_tokenizer)),
        args=args(tmp_path, max_steps=3, per_device_train_batch_size=8),
        train_dataset=dataset,
        data_collator=MSLCollator(plain_tokenizer.pad_token_id),
        tokenizer_for_msl=plain_tokenizer,
        alpha=0.7,
    )
    trainer.train()
    logs = [h for h in trainer.state.log_history if "loss" in h]
    assert len(logs) == 3 and all(h["loss_think"] > 0 and h["loss_result"] > 0 for h in logs)


def test_reading_bare_labels_refuses_a_think_end_of_several_tokens_and_never_advises_new_tokens(
    records, plain_tokenizer
):
    loss = MSLLoss(plain_tokenizer)  # built fine: the id is looked up only when bare labels must be read
    dataset = MSLDataset(records[:2], plain_tokenizer)
    batch = MSLCollator(plain_tokenizer.pad_token_id)([dataset[0], dataset[1]])
    with pytest.raises(ValueError, match=r"'</think>' is \d tokens for this tokenizer") as refused:
        loss.segments(batch["labels"])
    message = str(refused.value)
    assert "MSLTrainer on MSLDataset and MSLCollator" in message and "untrained embedding" in message
    assert "add_special_tokens" not in message and "resize_token_embeddings" not in message
    with pytest.raises(ValueError, match="no tokenizer or think_token_id"):
        MSLLoss().segments(batch["labels"])


def test_msl_trainer_refuses_an_alpha_that_is_neither_a_number_nor_learnable(tmp_path, dataset, tokenizer):
    with pytest.raises(ValueError, match="'learnable'"):
        MSLTrainer(model=tiny_model(len(tokenizer)), args=args(tmp_path), train_dataset=dataset, alpha="0.7")


def test_learnable_alpha_is_trained_with_the_model(tmp_path, dataset, tokenizer):
    model = tiny_model(len(tokenizer))
    trainer = MSLTrainer(
        model=model,
        args=args(tmp_path, max_steps=5),
        train_dataset=dataset,
        data_collator=MSLCollator(tokenizer.pad_token_id),
        tokenizer_for_msl=tokenizer,
        alpha="learnable",
    )
    trainer.train()
    alphas = [h["alpha"] for h in trainer.state.log_history if "alpha" in h]
    assert alphas[0] != alphas[-1] and all(0.5 < a < 0.9 for a in alphas)


def test_msl_stats_prints_the_papers_table_for_a_run_and_counts_per_turn(tmp_path, mixed_run, tokenizer):
    tokenizer.save_pretrained(tmp_path / "tok")
    result = CliRunner().invoke(msl_stats, [str(mixed_run), "--tokenizer", str(tmp_path / "tok"), "--json"])
    assert result.exit_code == 0, result.output
    stats = json.loads(result.output)
    assert stats["examples"] == 34
    assert stats["think"]["mean"] > stats["result"]["mean"] > 0
    assert stats["think"]["sft_loss_share"] + stats["result"]["sft_loss_share"] == pytest.approx(1.0)
    # 29 single-turn records and conv-1; conv-2 and the quickstart's truncated conv-cut-at-turn-1; conv-oslo; conv-5
    assert stats["turns"]["examples_with"] == {"1": 30, "2": 2, "4": 1, "5": 1}
    assert [row["examples"] for row in stats["per_turn"]] == [34, 4, 2, 2, 1]
    assert all(row["think"]["mean"] > 0 and row["result"]["mean"] > 0 for row in stats["per_turn"])
    # turn 5 of conv-5: "<think>Both Oslo results are in.</think>" and "\n\nOslo: snow, -3 C, 14:05.<|im_end|>"
    # (the template's newline after <|im_end|> is never generated: no call token)
    last = stats["per_turn"][-1]
    assert last["think"]["max"] == len(tokenizer.tokenize("<think>Both Oslo results are in.</think>"))
    assert last["result"]["max"] == len(tokenizer.tokenize("\n\nOslo: snow, -3 C, 14:05.<|im_end|>"))
    table = CliRunner().invoke(msl_stats, [str(mixed_run), "--tokenizer", str(tmp_path / "tok")], terminal_width=160)
    assert "share of plain-SFT loss" in table.output
    assert "per assistant turn (1.26 per example: 30 with 1, 2 with 2, 1 with 4, 1 with 5)" in " ".join(
        table.output.split()
    )  # a title wraps
    cut = CliRunner().invoke(
        msl_stats, [str(mixed_run), "--tokenizer", str(tmp_path / "tok"), "--max-length", "400", "--json"]
    )
    assert json.loads(cut.output)["turns"]["dropped_by_truncation"] == 5  # later turns of conv-5 and conv-oslo
    missing = CliRunner().invoke(msl_stats, [str(mixed_run), "--tokenizer", str(tmp_path / "nope")])
    assert missing.exit_code == 1 and "cannot load a tokenizer" in missing.output


def test_msl_stats_names_the_records_training_would_drop_and_why(tmp_path, mixed_run, records, tokenizer):
    tokenizer.save_pretrained(tmp_path / "tok")
    lengths = sorted(len(encode(r, tokenizer).input_ids) for r in records)
    cut = ["--max-length", str(lengths[len(lengths) // 4])]  # too short for many prompts and calls
    expected = MSLDataset(records, tokenizer, max_length=int(cut[1])).report.dropped
    assert len(expected) > 10
    result = CliRunner().invoke(msl_stats, [str(mixed_run), "--tokenizer", str(tmp_path / "tok"), *cut, "--json"])
    stats = json.loads(result.stdout)
    assert stats["dropped"] == len(expected) and stats["dropped_records"] == expected
    assert f"{len(expected)} record(s) dropped, left out of training:" in result.stderr
    assert expected[0] in result.stderr and expected[-1] not in result.stderr  # the first ten, then how many more
    assert f"... and {len(expected) - 10} more (--json lists them all, under dropped_records)" in result.stderr
    table = CliRunner().invoke(msl_stats, [str(mixed_run), "--tokenizer", str(tmp_path / "tok"), *cut])
    assert expected[0] in table.stderr and "prompt and call alone take" in expected[0]


def test_msl_stats_counts_the_records_export_writes_and_says_what_the_review_changed(tmp_path, mixed_run, tokenizer):
    import shutil

    from funreason_refine.jsonl import read_jsonl
    from funreason_refine.overrides import OVERRIDES, decision_for

    tokenizer.save_pretrained(tmp_path / "tok")
    run = shutil.copytree(mixed_run, tmp_path / "run")
    wrongly_kept = next(iter(read_jsonl(run / "kept.jsonl")))
    (run / OVERRIDES).write_text(decision_for(wrongly_kept, "kept", "wrong").model_dump_json() + "\n")
    result = CliRunner().invoke(msl_stats, [str(run), "--tokenizer", str(tmp_path / "tok"), "--json"])
    assert result.exit_code == 0, result.output
    stats = json.loads(result.stdout)
    assert stats["examples"] == 33  # of 34: the one a person marked wrongly kept is left out, as export leaves it
    assert stats["review"] == {"restored": 0, "left_out": 1, "stale": 0, "not_exportable": []}
    assert "0 wrongly discarded record(s) restored; 1 wrongly kept left out" in result.stderr


def test_msl_stats_refuses_a_run_with_a_line_cut_short_naming_it_and_what_to_do(tmp_path, mixed_run, tokenizer):
    import shutil

    tokenizer.save_pretrained(tmp_path / "tok")
    torn = shutil.copytree(mixed_run, tmp_path / "torn")
    (torn / "kept.jsonl").write_bytes((mixed_run / "kept.jsonl").read_bytes()[:-40])
    result = CliRunner().invoke(msl_stats, [str(torn), "--tokenizer", str(tmp_path / "tok")])
    assert result.exit_code == 1 and "Unterminated" not in result.output
    assert f"cannot read {torn}: the last line of {torn}/kept.jsonl:34 is cut short" in " ".join(result.output.split())


def without_cot(record):
    """No assistant turn of the record has a CoT (read off the targets, not the tokens)."""
    targets = [m["target"] for m in record.get("messages") or [] if m["role"] == "assistant"] or [record["target"]]
    return all("</think>" not in target for target in targets)


def test_msl_stats_counts_the_examples_without_a_cot(tmp_path, mixed_run, records, tokenizer):
    tokenizer.save_pretrained(tmp_path / "tok")
    result = CliRunner().invoke(msl_stats, [str(mixed_run), "--tokenizer", str(tmp_path / "tok"), "--json"])
    stats = json.loads(result.output)
    expected = sum(without_cot(r) for r in records)
    assert stats["without_cot"] == expected > 0
    assert stats["per_turn"][0]["without_cot"] == expected  # here every conversation's first turn has a CoT
    table = CliRunner().invoke(msl_stats, [str(mixed_run), "--tokenizer", str(tmp_path / "tok")], terminal_width=160)
    assert f"34 examples ({expected} without a CoT, 0 truncated, 0 dropped)" in table.output


def test_msl_stats_reads_the_tokenizer_stored_in_a_gguf_file(tmp_path, mixed_run, gguf_checkpoint, plain_tokenizer):
    path, _ = gguf_checkpoint
    plain_tokenizer.save_pretrained(tmp_path / "tok")
    reference = CliRunner().invoke(msl_stats, [str(mixed_run), "--tokenizer", str(tmp_path / "tok"), "--json"])
    by_name = ["--tokenizer", str(path.parent), "--gguf-file", path.name]
    for tokenizer_args in (by_name, ["--tokenizer", str(path)]):
        result = CliRunner().invoke(msl_stats, [str(mixed_run), *tokenizer_args, "--json"])
        assert result.exit_code == 0, result.output
        assert json.loads(result.output) == json.loads(reference.output)
    folder = CliRunner().invoke(msl_stats, [str(mixed_run), "--tokenizer", str(path.parent)])
    assert folder.exit_code == 1
    assert f"holds {path.name}: name the GGUF file (--gguf-file {path.name}" in folder.output
    assert "sentencepiece" not in folder.output


def test_the_runnable_example_trains_and_the_loss_goes_down_on_single_turn_records_and_conversations(mixed_run):
    import subprocess
    import sys

    from conftest import REPO

    script = REPO / "examples" / "msl_train" / "train_tiny.py"
    env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}  # this worker's share of the cores (conftest)
    out = subprocess.run(
        [sys.executable, str(script), str(mixed_run), "--steps", "20"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    first, last = (float(x) for x in out.stdout.strip().splitlines()[-1].removeprefix("loss ").split(" -> "))
    assert last < first


def test_msl_mixin_gives_trls_sft_trainer_the_multiscale_loss(tmp_path, records, plain_tokenizer):
    pytest.importorskip("trl", reason="TRL is optional: pip install -e 'plugins/funreason_msl[trl]'")
    from datasets import Dataset
    from funreason_msl import MSLMixin
    from trl import SFTConfig, SFTTrainer

    class MSLSFTTrainer(MSLMixin, SFTTrainer):
        pass

    dataset = MSLDataset(records[:8], plain_tokenizer, max_length=512)
    config = SFTConfig(
        output_dir=str(tmp_path / "out"),
        max_steps=4,
        per_device_train_batch_size=4,
        gradient_accumulation_steps=2,
        learning_rate=5e-3,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        disable_tqdm=True,
        dataset_kwargs={"skip_prepare_dataset": True},  # MSLDataset has tokenized, labelled and truncated
    )
    trainer = MSLSFTTrainer(
        model=tiny_model(len(plain_tokenizer)),
        args=config,
        train_dataset=Dataset.from_list(list(dataset)),
        data_collator=MSLCollator(plain_tokenizer.pad_token_id),
        processing_class=plain_tokenizer,
        alpha=0.7,
    )
    trainer.train()
    logs = [h for h in trainer.state.log_history if "loss" in h]
    assert [h["alpha"] for h in logs] == [0.7] * 4 and logs[-1]["loss"] < logs[0]["loss"]
    assert all(h["loss_think"] > 0 and h["loss_result"] > 0 for h in logs)
