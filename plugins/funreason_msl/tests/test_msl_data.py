import json

import pytest
import torch
from conftest import run_with_kept
from funreason_msl.data import MSLCollator, MSLDataset, encode, messages, read_records, read_run
from funreason_msl.loss import IGNORE_INDEX, NOT_TARGET, RESULT, THINK

RECORD = {
    "id": "r1",
    "query": "Weather in Rome and Madrid?",
    "tools": [{"name": "get_weather", "parameters": {}}],
    "target": '<think>Two cities: get_weather twice.</think>\n\n[get_weather(city="Rome"), get_weather(city="Madrid")]',
}


def text_of(tokenizer, example, segment):
    return tokenizer.decode([t for t, s in zip(example.input_ids, example.segments, strict=False) if s == segment])


def test_target_tokens_are_labelled_think_then_result(tokenizer):
    example = encode(RECORD, tokenizer)
    think = text_of(tokenizer, example, THINK)
    result = text_of(tokenizer, example, RESULT)
    assert think == "<think>Two cities: get_weather twice.</think>"
    assert result.startswith('\n\n[get_weather(city="Rome"), get_weather(city="Madrid")]')
    assert result.endswith("]<|im_end|>"), "the end of turn is a result target: the model must learn to stop"
    not_target = text_of(tokenizer, example, NOT_TARGET)
    # the newline after <|im_end|> is the template's separator, never generated: not a target
    assert not_target.endswith("<|im_start|>assistant\n\n") and "Weather in Rome and Madrid?" in not_target
    pairs = zip(example.labels, example.segments, strict=True)
    assert all((label == IGNORE_INDEX) == (seg == NOT_TARGET) for label, seg in pairs)
    assert [t for t, lab in zip(example.input_ids, example.labels, strict=False) if lab != IGNORE_INDEX] == [
        lab for lab in example.labels if lab != IGNORE_INDEX
    ]


def test_a_target_without_cot_is_all_result(tokenizer):
    example = encode({**RECORD, "target": '[get_weather(city="Rome")]'}, tokenizer)
    assert THINK not in example.segments and RESULT in example.segments


@pytest.mark.parametrize(
    "target",
    ['[echo(text="</think>")]', "Reasoning models close their thoughts with </think>, not this one."],
)
def test_a_target_without_a_leading_think_block_is_all_result_whatever_it_mentions(tokenizer, target):
    example = encode({**RECORD, "target": target}, tokenizer)
    assert THINK not in example.segments
    assert text_of(tokenizer, example, RESULT) == target + "<|im_end|>"


def test_truncation_cuts_the_cot_never_the_call(tokenizer):
    long_cot = "<think>" + "I think about the weather in Rome. " * 40 + "get_weather.</think>"
    record = {**RECORD, "target": long_cot + '\n\n[get_weather(city="Rome")]'}
    full = encode(record, tokenizer)
    short = encode(record, tokenizer, max_length=len(full.input_ids) - 30)
    assert short.truncated and len(short.input_ids) == len(full.input_ids) - 30
    assert text_of(tokenizer, short, RESULT) == text_of(tokenizer, full, RESULT)
    think = text_of(tokenizer, short, THINK)
    assert think.startswith("<think>I think") and think.endswith("</think>")
    # the same prompt; the newline after the closing <|im_end|>, no target, goes first (one CoT token less cut)
    assert text_of(tokenizer, short, NOT_TARGET) == text_of(tokenizer, full, NOT_TARGET).removesuffix("\n")


def test_truncation_never_keeps_part_of_a_character_the_tokenizer_splits_into_bytes(tokenizer):
    cot = "Rome 🌧🌦 Madrid ☀ 晴天与雨天"  # no token for these: each character is two or more byte tokens
    record = {**RECORD, "target": f'<think>{cot}</think>\n\n[get_weather(city="Rome")]'}
    full = encode(record, tokenizer)
    assert text_of(tokenizer, full, THINK) == f"<think>{cot}</think>"
    for cut in range(1, 20):
        short = encode(record, tokenizer, max_length=len(full.input_ids) - cut)
        think = text_of(tokenizer, short, THINK)
        assert "\ufffd" not in think, (cut, think)  # a broken character decodes as the replacement character
        assert think.removesuffix("</think>") in f"<think>{cot}"
        assert text_of(tokenizer, short, RESULT) == text_of(tokenizer, full, RESULT)


def test_records_whose_prompt_and_call_do_not_fit_are_dropped_and_reported(tokenizer):
    fits = len(encode(RECORD, tokenizer).input_ids) + 10
    dataset = MSLDataset([RECORD, {**RECORD, "id": "huge", "query": "word " * 500}], tokenizer, max_length=fits)
    assert len(dataset) == 1
    assert dataset.report.dropped[0].startswith("huge: prompt and call alone take")


def test_a_slow_tokenizer_is_refused_clearly(tokenizer):
    class Slow:
        is_fast = False

    with pytest.raises(TypeError, match="fast tokenizer"):
        encode(RECORD, Slow())


def test_offsets_are_requested_from_the_tokenizer_not_through_the_chat_template(tokenizer):
    # apply_chat_template ignores return_offsets_mapping outside tokenizer_kwargs: we render text,
    # then tokenize it ourselves, so every example has think and result labels.
    example = encode(RECORD, tokenizer)
    assert example.segments.count(THINK) > 5 and example.segments.count(RESULT) > 5


def test_run_folder_records_read_and_a_missing_target_is_named(kept_run, tmp_path):
    records = read_records(kept_run)
    assert len(records) == 31 and all(r["target"] for r in records)
    assert read_records(kept_run / "kept.jsonl") == records
    broken = run_with_kept(kept_run, tmp_path / "run", {"id": "x", "query": "q", "tools": []})
    with pytest.raises(ValueError, match=r"kept.jsonl: record 0 \(id 'x'\) has no training target"):
        read_records(broken)


def review(run, *decisions):
    """Write a review of ``run``: (outcome line, kind) pairs each marked wrong."""
    from funreason_refine.overrides import OVERRIDES, decision_for

    (run / OVERRIDES).write_text(
        "".join(decision_for(line, kind, "wrong").model_dump_json() + "\n" for line, kind in decisions)
    )


def test_the_records_are_those_export_writes_the_review_applied(kept_run, tmp_path, tokenizer):
    import shutil

    from funreason_refine.export import export_reviewed
    from funreason_refine.jsonl import read_jsonl

    run = shutil.copytree(kept_run, tmp_path / "run")
    wrongly_kept = next(iter(read_jsonl(run / "kept.jsonl")))
    # discarded by query_tool, before the format stage wrote its target: export renders it
    wrongly_discarded = next(line for line in read_jsonl(run / "discarded.jsonl") if line["id"] == "unknown-function")
    review(run, (wrongly_kept, "kept"), (wrongly_discarded, "discarded"))
    records, applied = read_run(run)
    exported = export_reviewed(run, "funreason", tmp_path / "train.jsonl")
    assert [messages(r) for r in records] == [row["messages"] for row in read_jsonl(tmp_path / "train.jsonl")]
    ids = [r["id"] for r in records]
    assert len(ids) == 31 and wrongly_kept["id"] not in ids and "unknown-function" in ids
    said = "applied the review (overrides.jsonl): 1 wrongly discarded record(s) restored; 1 wrongly kept left out"
    assert applied.describe() == exported.describe() == said
    dataset = MSLDataset.from_run(run, tokenizer)
    assert len(dataset) == 31 and dataset.report.review is not None and dataset.report.review.describe() == said


def test_a_folder_that_is_not_a_finished_run_is_refused_as_export_refuses_it(kept_run, tmp_path):
    from funreason_refine.run_state import PartialRun, UnreadableLine

    torn = run_with_kept(kept_run, tmp_path / "torn")
    (torn / "kept.jsonl").write_bytes((kept_run / "kept.jsonl").read_bytes()[:-40])  # its last line cut short
    with pytest.raises(PartialRun, match=r"the last line of .*kept.jsonl:31 is cut short .*again to finish it"):
        MSLDataset.from_run(torn, None)
    damaged = run_with_kept(kept_run, tmp_path / "damaged")
    lines = (kept_run / "kept.jsonl").read_bytes().splitlines(keepends=True)
    (damaged / "kept.jsonl").write_bytes(b"".join([lines[0], lines[1][:40] + b"\n", *lines[2:]]))
    with pytest.raises(UnreadableLine, match=r"kept.jsonl:2 is not a line `refine run` wrote"):
        read_records(damaged)
    bare = tmp_path / "bare"  # a kept.jsonl alone, without the run's run.json and summary.json
    bare.mkdir()
    (bare / "kept.jsonl").write_bytes((kept_run / "kept.jsonl").read_bytes())
    with pytest.raises(PartialRun, match=r"bare is an interrupted run: it has no summary.json"):
        read_records(bare)


def test_quickstart_dataset_and_collator(records, tokenizer):
    dataset = MSLDataset(records, tokenizer)
    assert len(dataset) == len(records)
    batch = MSLCollator(tokenizer.pad_token_id)([dataset[0], dataset[1], dataset[2]])
    width = max(len(dataset[i]["input_ids"]) for i in range(3))
    assert all(batch[k].shape == (3, width) for k in ("input_ids", "attention_mask", "labels", "segments"))
    short = min(range(3), key=lambda i: len(dataset[i]["input_ids"]))
    n = len(dataset[short]["input_ids"])
    if n < width:
        assert batch["labels"][short, n:].eq(IGNORE_INDEX).all() and batch["segments"][short, n:].eq(0).all()
        assert batch["attention_mask"][short, n:].eq(0).all()
    assert batch["labels"].dtype == torch.long


def test_a_collator_without_a_pad_id_is_refused_when_made_not_at_the_first_uneven_batch():
    # Llama 3's tokenizer has no pad token: MSLCollator(tokenizer.pad_token_id) is MSLCollator(None)
    with pytest.raises(ValueError, match=r"got None .*pass MSLCollator\(tokenizer.eos_token_id\)"):
        MSLCollator(None)


def test_a_chat_template_without_generation_markers_still_yields_targets(tokenizer):
    assert "{% generation %}" not in tokenizer.chat_template
    example = encode(RECORD, tokenizer)
    assert sum(label != IGNORE_INDEX for label in example.labels) > 10


def test_each_record_renders_its_own_tools_exactly_no_keys_from_other_rows(tokenizer):
    from funreason_msl.data import messages

    a = {**RECORD, "tools": [{"name": "f", "parameters": {"type": "object", "properties": {"x": {"type": "integer"}}}}]}
    b = {
        **RECORD,
        "tools": [
            {"name": "g", "parameters": {"type": "object", "properties": {"y": {"type": "string", "enum": ["p"]}}}}
        ],
    }
    MSLDataset([a, b], tokenizer)
    for record in (a, b):
        system = messages(record)[0]["content"]
        assert json.loads(system[system.index("[{") :]) == record["tools"]


def labelled_before_conversations(record, tokenizer, max_length=None):
    """The labelling of a single-turn record before conversations (commit c98c372), as the reference:
    the prompt is system + user with the generation prompt, every later token a target but the
    newline after the closing <|im_end|>."""
    from funreason_msl.data import messages

    chat = messages(record)
    prompt = tokenizer.apply_chat_template(chat[:-1], tokenize=False, add_generation_prompt=True)
    full = tokenizer.apply_chat_template(chat, tokenize=False)
    target_start = len(prompt)
    target_end = len(full) - len("\n")  # since issue 29: the newline after the final <|im_end|> is no target
    assert full[target_end:] == "\n" and full[:target_end].endswith("<|im_end|>")
    end_at = full.find("</think>", target_start)
    think_end = end_at + len("</think>") if end_at != -1 else target_start
    encoded = tokenizer(full, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = list(encoded["input_ids"]), encoded["offset_mapping"]
    targets = [end > target_start and start < target_end for start, end in offsets]
    labels = [t if is_target else IGNORE_INDEX for t, is_target in zip(ids, targets, strict=True)]
    segments = [
        (THINK if start < think_end else RESULT) if is_target else NOT_TARGET
        for (start, _), is_target in zip(offsets, targets, strict=True)
    ]
    if max_length is not None and len(ids) > max_length:
        ids, labels, segments = ids[:-1], labels[:-1], segments[:-1]  # a cut example ends at its last target
        excess = len(ids) - max_length
        think = [i for i, s in enumerate(segments) if s == THINK]
        closing = {i for i in think if offsets[i][1] > end_at} if end_at != -1 else set()
        cuttable = [i for i in think if i not in closing and offsets[i][0] >= target_start + len("<think>")]
        if len(cuttable) < excess:
            return None
        drop = set(cuttable[-excess:])
        ids, labels, segments = ([v for i, v in enumerate(xs) if i not in drop] for xs in (ids, labels, segments))
    return ids, labels, segments


@pytest.mark.parametrize("max_length", [None, 350, 300])
def test_single_turn_records_are_labelled_exactly_as_before_conversations(records, tokenizer, max_length):
    single = [r for r in records if not r.get("messages")]
    assert len(single) == 29
    for record in [RECORD, *single]:
        before = labelled_before_conversations(record, tokenizer, max_length)
        try:
            example = encode(record, tokenizer, max_length)
        except ValueError:
            assert before is None, record["id"]
            continue
        assert (example.input_ids, example.labels, example.segments) == before, record["id"]
        assert len(example.turns) == 1 and example.turns_dropped == 0
