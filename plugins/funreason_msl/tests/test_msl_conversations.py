import itertools

import pytest
from funreason_msl.data import MSLCollator, MSLDataset, encode
from funreason_msl.loss import NOT_TARGET, RESULT, THINK

TURN_0 = '<think>Two cities.</think>\n\n[get_weather(city="Rome"), get_weather(city="Madrid")]'
TURN_1 = "<think>Both in.</think>\n\nSunny in Rome, rain in Madrid."
CONVERSATION = {
    "id": "rome-madrid",
    "query": "Thanks!",
    "tools": [{"name": "get_weather", "parameters": {}}],
    "target": "You are welcome.",
    "turn": 2,
    "messages": [
        {"role": "user", "content": "Weather in Rome and Madrid?"},
        {"role": "assistant", "answer": [], "call_ids": ["1", "2"], "target": TURN_0},
        {"role": "tool", "content": "sunny", "call_id": "1"},
        {"role": "tool", "content": "rain", "call_id": "2"},
        {"role": "assistant", "answer": "Sunny in Rome, rain in Madrid.", "target": TURN_1},
        {"role": "user", "content": "Thanks!"},
        {"role": "assistant", "answer": "You are welcome.", "target": "You are welcome."},
    ],
}


def runs(tokenizer, example, start=0, end=None):
    """The example's tokens ``start:end`` as (segment, text) runs of consecutive tokens with the same segment."""
    pairs = zip(example.input_ids[start:end], example.segments[start:end], strict=True)
    return [(seg, tokenizer.decode([t for t, _ in group])) for seg, group in itertools.groupby(pairs, lambda p: p[1])]


def test_each_assistant_turn_is_a_target_and_tool_results_and_user_turns_are_not(tokenizer):
    got = runs(tokenizer, encode(CONVERSATION, tokenizer))
    assert got[0][0] == NOT_TARGET and got[0][1].startswith("<|im_start|>system\nYou are an expert")
    assert got[0][1].endswith("<|im_start|>user\nWeather in Rome and Madrid?<|im_end|>\n<|im_start|>assistant\n")
    assert got[1:] == [
        (THINK, "<think>Two cities.</think>"),
        (RESULT, '\n\n[get_weather(city="Rome"), get_weather(city="Madrid")]<|im_end|>'),
        (NOT_TARGET, "\n<|im_start|>tool\nsunny<|im_end|>\n<|im_start|>tool\nrain<|im_end|>\n<|im_start|>assistant\n"),
        (THINK, "<think>Both in.</think>"),
        (RESULT, "\n\nSunny in Rome, rain in Madrid.<|im_end|>"),
        (NOT_TARGET, "\n<|im_start|>user\nThanks!<|im_end|>\n<|im_start|>assistant\n"),
        (RESULT, "You are welcome.<|im_end|>"),
        (NOT_TARGET, "\n"),  # the template's newline after <|im_end|>: never generated, no target
    ]


def by_id(records, record_id):
    return next(r for r in records if r["id"] == record_id)


@pytest.mark.parametrize("record_id, turns", [("conv-1", 1), ("conv-2", 2), ("conv-5", 5)])
def test_conversations_of_a_run_have_every_turn_labelled(records, tokenizer, record_id, turns):
    record = by_id(records, record_id)
    example = encode(record, tokenizer)
    assert len(example.turns) == turns and not example.truncated
    assistant = [m for m in record["messages"] if m["role"] == "assistant"]
    for (start, end), message in zip(example.turns, assistant, strict=True):
        think, result = message["target"].split("</think>")
        assert runs(tokenizer, example, start, end) == [(THINK, think + "</think>"), (RESULT, result + "<|im_end|>")]
    not_targets = "".join(text for seg, text in runs(tokenizer, example) if seg == NOT_TARGET)
    for message in record["messages"]:
        if message["role"] != "assistant":  # user turns and tool results, whole, with their headers
            assert f"<|im_start|>{message['role']}\n{message['content']}<|im_end|>\n" in not_targets
    assert sum(1 for seg, _ in runs(tokenizer, example) if seg == THINK) == turns


def test_truncation_cuts_the_last_turns_cot_first(tokenizer):
    full = encode(CONVERSATION, tokenizer)
    # the last turn has no CoT: the chat ends after turn 1, whose CoT loses tokens from its end
    end_1 = full.turns[1][1]
    short = encode(CONVERSATION, tokenizer, max_length=end_1 - 2)
    assert short.truncated and short.turns_dropped == 1 and len(short.turns) == 2
    assert len(short.input_ids) == end_1 - 2
    got = runs(tokenizer, short)
    assert got[:-2] == runs(tokenizer, encode(CONVERSATION, tokenizer, max_length=end_1))[:-2]
    think, result = got[-2:]
    assert think[0] == THINK and think[1].startswith("<think>") and think[1].endswith("</think>")
    assert len(think[1]) < len("<think>Both in.</think>")
    assert result == (RESULT, "\n\nSunny in Rome, rain in Madrid.<|im_end|>")


def test_truncation_drops_whole_turns_never_a_call_without_what_came_before(tokenizer):
    full = encode(CONVERSATION, tokenizer)
    end_0 = full.turns[0][1]
    short = encode(CONVERSATION, tokenizer, max_length=end_0 + 3)  # turn 1 cannot fit even without its CoT
    assert short.turns_dropped == 2 and short.turns == full.turns[:1]
    assert short.input_ids == full.input_ids[:end_0] and short.segments == full.segments[:end_0]
    assert tokenizer.decode(short.input_ids).endswith('get_weather(city="Madrid")]<|im_end|>')


def test_a_conversation_whose_first_turn_does_not_fit_is_dropped_and_reported(tokenizer):
    first = encode(CONVERSATION, tokenizer).turns[0]
    dataset = MSLDataset([CONVERSATION], tokenizer, max_length=first[0] + 1)
    assert len(dataset) == 0
    assert dataset.report.dropped[0].startswith("rome-madrid: prompt and call alone take")
    assert "(the first of 3 assistant turns)" in dataset.report.dropped[0]


def test_the_dataset_reports_turns_left_out_by_truncation(tokenizer):
    end_0 = encode(CONVERSATION, tokenizer).turns[0][1]
    dataset = MSLDataset([CONVERSATION, {**CONVERSATION, "id": "again"}], tokenizer, max_length=end_0)
    assert dataset.report.truncated == 2 and dataset.report.turns_dropped == 4


# Qwen3-style: the CoT of an assistant turn is dropped once a later message follows it.
REWRITING = (
    "{% for m in messages %}{% set c = m['content'] %}"
    "{% if m['role'] == 'assistant' and not loop.last and '</think>' in c %}{% set c = c.split('</think>')[-1] %}"
    "{% endif %}<|im_start|>{{ m['role'] }}\n{{ c }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
REFUSING = (
    "{% for m in messages %}{% if m['role'] == 'tool' %}{{ raise_exception('no tool role here') }}{% endif %}"
    "<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
)


@pytest.mark.parametrize(
    "template, reason",
    [
        (REWRITING, "renders assistant turn 0 differently once later messages follow"),
        (REFUSING, "the chat template refuses this chat: no tool role here"),
    ],
)
def test_templates_that_cannot_label_every_turn_drop_the_conversation_with_the_reason(
    tokenizer, monkeypatch, template, reason
):
    monkeypatch.setattr(tokenizer, "chat_template", template)
    dataset = MSLDataset([CONVERSATION], tokenizer)
    assert len(dataset) == 0 and reason in dataset.report.dropped[0]


def test_a_kept_conversation_with_a_turn_without_target_is_named(tmp_path, kept_run):
    from conftest import run_with_kept
    from funreason_msl.data import read_records

    broken = {**CONVERSATION, "messages": [*CONVERSATION["messages"][:4], {"role": "assistant", "answer": "x"}]}
    with pytest.raises(
        ValueError, match=r"kept.jsonl: record 0 \(id 'rome-madrid'\) has no training target in assistant turn 1"
    ):
        read_records(run_with_kept(kept_run, tmp_path / "run", broken))


def test_segments_read_off_the_labels_match_the_dataset_for_conversations(records, tokenizer):
    from funreason_msl.trainer import MSLLoss

    dataset = MSLDataset([by_id(records, i) for i in ("conv-1", "conv-2", "conv-5")] + [CONVERSATION], tokenizer)
    batch = MSLCollator(tokenizer.pad_token_id)([dataset[i] for i in range(len(dataset))])
    assert (batch["segments"] == THINK).sum() > 0
    assert MSLLoss(tokenizer).segments(batch["labels"]).tolist() == batch["segments"].tolist()


def test_a_token_that_straddles_the_role_header_and_the_answer_is_a_target(tokenizer, monkeypatch):
    # The header ends with a space that the tokenizer joins to the answer's first word (" You").
    template = (
        "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}{{ 'assistant: ' }}{% endif %}"
    )
    monkeypatch.setattr(tokenizer, "chat_template", template)
    got = runs(tokenizer, encode(CONVERSATION, tokenizer))
    assert got[-3:] == [
        (RESULT, "\n\nSunny in Rome, rain in Madrid.\n"),
        (NOT_TARGET, "user: Thanks!\nassistant:"),
        (RESULT, " You are welcome.\n"),
    ]
