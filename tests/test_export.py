"""Every export format, JSONL and Parquet, reads back through our own readers to the same records."""

import json

import pytest
from click.testing import CliRunner

from funreason_refine.calls import same_calls
from funreason_refine.cli import main
from funreason_refine.config import load_pipeline
from funreason_refine.engine import run_pipeline
from funreason_refine.export import FORMATS, export_run
from funreason_refine.readers import InputStream, detect_format
from funreason_refine.record import FunctionCall, Record
from tests.conftest import QUICKSTART, read_jsonl

EXPECTED_READER = {"funreason": "openai", "hermes": "openai", "openai": "openai", "sharegpt": "sharegpt"}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("qs") / "run"
    run_pipeline(load_pipeline(QUICKSTART / "pipeline.toml", out))
    return out


def originals(run_dir):
    return {r["id"]: r for r in read_jsonl(run_dir / "kept.jsonl")}


def same_record(read: Record, original: dict) -> None:
    answer = original["answer"]
    if isinstance(answer, list):
        assert isinstance(read.answer, list), (original["id"], read.answer)
        assert same_calls(read.answer, [FunctionCall(**c) for c in answer]), original["id"]
    else:
        assert read.answer == answer
    assert read.query == original["query"]
    assert (read.cot or None) == (original.get("cot") or None), original["id"]
    assert [t["name"] for t in read.tools] == [t["name"] for t in original["tools"]]
    assert read.tools == original["tools"]


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_each_format_round_trips_through_our_reader(run_dir, tmp_path, fmt, suffix):
    out = tmp_path / f"{fmt}{suffix}"
    assert export_run(run_dir, fmt, out) == 31
    assert detect_format(out) == EXPECTED_READER[fmt]
    read = list(InputStream(out, None).items())
    assert all(isinstance(r, Record) and not r.problems for r in read), [r for r in read if not isinstance(r, Record)]
    by_id = originals(run_dir)
    assert len(read) == len(by_id)
    for record in read:
        same_record(record, by_id[record.id])


@pytest.mark.parametrize("first", FORMATS)
@pytest.mark.parametrize("second", FORMATS)
def test_every_format_pair_keeps_the_calls(run_dir, tmp_path, first, second):
    """Export as one format, refine the export again, export as another: the same calls."""
    export_run(run_dir, first, tmp_path / "a.jsonl")
    (tmp_path / "p.toml").write_text('[input]\npath = "a.jsonl"\n[output]\ndir = "r"\n')
    result = run_pipeline(load_pipeline(tmp_path / "p.toml"))
    assert result.summary.as_dict()["outcomes"]["kept"] == 31, result.summary.as_dict()["stages"]
    export_run(tmp_path / "r", second, tmp_path / f"b-{second}.jsonl")
    by_id = originals(run_dir)
    for record in InputStream(tmp_path / f"b-{second}.jsonl", None).items():
        same_record(record, by_id[record.id])


def test_the_shapes_trainers_expect(run_dir, tmp_path):
    export_run(run_dir, "openai", tmp_path / "o.jsonl")
    row = next(r for r in read_jsonl(tmp_path / "o.jsonl") if r["id"] == "ok-parallel")
    calls = row["messages"][1]["tool_calls"]
    assert [json.loads(c["function"]["arguments"]) for c in calls] == [{"city": "Rome"}, {"city": "Madrid"}]
    assert all(isinstance(c["function"]["arguments"], str) for c in calls), "arguments as JSON strings (TRL)"
    assert row["tools"][0]["type"] == "function"
    export_run(run_dir, "funreason", tmp_path / "f.jsonl")
    row = next(r for r in read_jsonl(tmp_path / "f.jsonl") if r["id"] == "ok-weather")
    assert row["messages"][2]["content"].endswith('</think>\n\n[get_weather(city="Paris")]')
    assert '"name": "get_weather"' in row["messages"][0]["content"]
    export_run(run_dir, "hermes", tmp_path / "h.jsonl")
    row = next(r for r in read_jsonl(tmp_path / "h.jsonl") if r["id"] == "ok-weather")
    assert (
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'
        in row["messages"][2]["content"]
    )


def test_sharegpt_writes_a_dataset_info_entry(run_dir, tmp_path):
    result = CliRunner().invoke(main, ["export", str(run_dir), "--format", "sharegpt", "-o", str(tmp_path / "fc.json")])
    assert result.exit_code == 0 and "dataset_info.json" in result.output
    assert "LLaMA-Factory" not in result.output  # every conversation alternates as it expects
    info = json.loads((tmp_path / "dataset_info.json").read_text())
    assert info["fc"]["formatting"] == "sharegpt" and info["fc"]["tags"]["function_tag"] == "function_call"
    assert info["fc"]["columns"] == {"messages": "conversations", "tools": "tools"}  # no row has a system prompt


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_the_dataset_info_entry_maps_the_system_column_when_rows_carry_one(tmp_path, suffix):
    # LLaMA-Factory reads a row's system field only through columns.system: every system prompt was empty.
    from tests.chats import calls, chat, result, run_chats, say, user

    rows = [
        chat("fr", {"role": "system", "content": "Answer in French."}, user("Weather in Oslo?"), say("Il fait beau.")),
        chat("en", user("Weather in Oslo?"), calls(("c1", "get_weather", {"city": "Oslo"})), result("c1", "3C")),
    ]
    rows[1]["messages"].append(say("3 degrees."))
    assert len(run_chats(rows, tmp_path, '[[stages]]\nname = "classification"\ntext_answers = "keep"\n')["kept"]) == 2
    export_run(tmp_path / "run", "sharegpt", tmp_path / f"t{suffix}")
    info = json.loads((tmp_path / "dataset_info.json").read_text())
    assert info["t"]["columns"] == {"messages": "conversations", "tools": "tools", "system": "system"}
    (fr,) = [r for r in InputStream(tmp_path / f"t{suffix}", None).items() if r.id == "fr"]
    assert fr.system == "Answer in French."


def test_sharegpt_says_which_conversations_llamafactory_would_skip(tmp_path):
    """LLaMA-Factory drops a conversation whose turns do not alternate (human or observation, then gpt or
    function_call) with only a line in its log: the export names the first such record."""
    from tests.chats import calls, chat, result, run_chats, say, user

    ok = chat("ok", user("Weather in Oslo?"), calls(("c1", "get_weather", {"city": "Oslo"})), result("c1", "3C"))
    ok["messages"].append(say("3 degrees."))
    rows = [
        ok,
        chat(
            "mid-system", user("Hi"), say("Hi."), {"role": "system", "content": "Be brief."}, user("Bye"), say("Bye.")
        ),
        chat("two-answers", user("Weather in Oslo?"), say("Let me see."), say("Sunny.")),
    ]
    assert len(run_chats(rows, tmp_path, '[[stages]]\nname = "classification"\ntext_answers = "keep"\n')["kept"]) == 3
    out = tmp_path / "t.jsonl"
    said = CliRunner().invoke(main, ["export", str(tmp_path / "run"), "--format", "sharegpt", "-o", str(out)])
    assert said.exit_code == 0, said.output
    said_ = " ".join(said.output.split())
    assert "2 record(s) of this sharegpt export will not train as written in LLaMA-Factory" in said_
    assert (
        "(the first: record 1 (id mid-system): its conversations[2] is a system turn where LLaMA-Factory expects "
        "human or observation, so it skips the record as abnormal)" in said_
    )
    assert len(read_jsonl(out)) == 3  # written all the same: other ShareGPT readers (ours) take them


def test_sharegpt_says_a_value_of_content_parts_will_not_load_in_llamafactory(tmp_path):
    """A message read as content parts is written as its list, as read (our reader takes it back), but
    LLaMA-Factory reads a value only as a text: the export now says so, naming the record and turn."""
    from tests.readers.test_faithful import WEATHER, refine

    parts = [{"type": "text", "text": "Weather here?"}, {"type": "image_url", "image_url": {"url": "data:,x"}}]
    messages = [{"role": "user", "content": parts}, {"role": "assistant", "content": "Oslo: sunny."}]
    refine(tmp_path, [{"id": "pic", "messages": messages, "tools": [WEATHER]}])
    out = tmp_path / "t.jsonl"
    said = CliRunner().invoke(main, ["export", str(tmp_path / "run"), "--format", "sharegpt", "-o", str(out)])
    assert said.exit_code == 0, said.output
    said_ = " ".join(said.output.split())
    assert "1 record(s) of this sharegpt export will not train as written in LLaMA-Factory" in said_
    assert "record 0 (id pic): its conversations[0] value is a list of content parts (as read)" in said_
    (row,) = read_jsonl(out)
    assert row["conversations"][0]["value"] == parts


def test_a_function_call_turn_holds_its_cot_as_llamafactory_reads_it(tmp_path):
    """The CoT of a call turn was only in cots, which LLaMA-Factory does not read: it trained those turns
    without their CoT. Its FunctionFormatter takes a thought in its templates' thought words before the JSON."""
    import re

    from tests.readers.test_faithful import WEATHER, call, refine

    messages = [
        {"role": "user", "content": "Weather in Oslo?"},
        {"role": "assistant", "content": "<think>I call get_weather.</think>", "tool_calls": [call("c1", "Oslo")]},
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
        {"role": "assistant", "content": "Sunny."},
    ]
    refine(tmp_path, [{"id": "chat", "messages": messages, "tools": [WEATHER]}])
    export_run(tmp_path / "run", "sharegpt", tmp_path / "t.jsonl")
    (row,) = read_jsonl(tmp_path / "t.jsonl")
    value = row["conversations"][1]["value"]
    assert value == '<think>\nI call get_weather.\n</think>\n\n{"name": "get_weather", "arguments": {"city": "Oslo"}}'
    # What LLaMA-Factory's FunctionFormatter does with it (default thought words "<think>\n", "\n</think>\n\n"):
    thought = re.search(r"<think>\n(.*?)\n</think>\n\n", value, re.DOTALL)
    assert thought and json.loads(value.replace(thought.group(0), ""))["name"] == "get_weather"
    (read,) = InputStream(tmp_path / "t.jsonl", None).items()
    assert isinstance(read, Record) and read.messages[1].cot == "I call get_weather."


def test_a_gpt_turn_holds_its_cot_in_the_thought_words_llamafactory_takes_out(tmp_path):
    """A gpt turn's CoT was written <think>{cot}</think>: not LLaMA-Factory's thought words (those of its
    function_call turns), so `enable_thinking: false` (remove_thought) left the CoT in the training text."""
    import re

    from tests.readers.test_faithful import WEATHER, call, refine

    one_call = call("c1", "Oslo")
    messages = [
        {"role": "user", "content": "Weather in Oslo?"},
        {"role": "assistant", "content": "<think>Ask first.</think>Which Oslo?"},
        {"role": "user", "content": "Norway."},
        {"role": "assistant", "content": "<think>I call get_weather.</think>On it.", "tool_calls": [one_call]},
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
        {"role": "assistant", "content": "<think>Say it.</think>Sunny."},
    ]
    refine(tmp_path, [{"id": "chat", "messages": messages, "tools": [WEATHER]}])
    export_run(tmp_path / "run", "sharegpt", tmp_path / "t.jsonl")
    (row,) = read_jsonl(tmp_path / "t.jsonl")
    gpt = [t["value"] for t in row["conversations"] if t["from"] == "gpt"]
    assert gpt[0] == "<think>\nAsk first.\n</think>\n\nWhich Oslo?" and gpt[2] == "<think>\nSay it.\n</think>\n\nSunny."
    assert gpt[1].startswith("<think>\nI call get_weather.\n</think>\n\nOn it.\n<tool_call>")
    # LLaMA-Factory's ReasoningTemplate.remove_thought with its default thought words:
    removed = [re.sub(r"<think>\n(.*?)\n</think>\n\n", "", v, flags=re.DOTALL).lstrip("\n") for v in gpt]
    assert removed[0] == "Which Oslo?" and removed[2] == "Sunny." and "<think>" not in removed[1]
    (read,) = InputStream(tmp_path / "t.jsonl", None).items()
    assert isinstance(read, Record)
    assert [m.cot for m in read.messages if m.role == "assistant"] == ["Ask first.", "I call get_weather.", "Say it."]


@pytest.mark.parametrize("fmt", ["sharegpt", "openai"])
def test_without_cot_writes_no_assistant_turn_with_its_cot(tmp_path, fmt):
    """Templates with no place for a thought (mistral, gemma: export.md) stopped on every call turn with a CoT."""
    from tests.readers.test_faithful import WEATHER, call, refine

    one_call = call("c1", "Oslo")
    messages = [
        {"role": "user", "content": "Weather in Oslo?"},
        {"role": "assistant", "content": [{"type": "text", "text": "<think>Ask.</think>Which Oslo?"}]},
        {"role": "user", "content": "Norway."},
        {"role": "assistant", "content": "<think>I call get_weather.</think>", "tool_calls": [one_call]},
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
        {"role": "assistant", "content": "<think>Say it.</think>Sunny."},
    ]
    refine(tmp_path, [{"id": "chat", "messages": messages, "tools": [WEATHER]}])
    out = tmp_path / f"t-{fmt}.jsonl"
    said = CliRunner().invoke(main, ["export", str(tmp_path / "run"), "--format", fmt, "-o", str(out), "--without-cot"])
    assert said.exit_code == 0 and "wrote 1 records to" in said.output and "without their CoTs" in said.output
    text = out.read_text(encoding="utf-8")
    assert "Ask." not in text and "I call get_weather" not in text and "Say it." not in text
    assert "Which Oslo?" in text and "Sunny." in text
    (row,) = read_jsonl(out)
    said_by_assistant = [
        json.dumps(m.get("content") if "role" in m else m["value"])
        for m in row.get("messages") or row["conversations"]
        if m.get("role") == "assistant" or m.get("from") in ("gpt", "function_call")
    ]
    assert len(said_by_assistant) == 3 and not any("think>" in said for said in said_by_assistant)
    (read,) = InputStream(out, None).items()
    assert isinstance(read, Record)
    turns = [m for m in read.messages if m.role == "assistant"]
    assert [m.cot for m in turns] == [None, None, None] and turns[1].answer[0].arguments == {"city": "Oslo"}
    with_cot = CliRunner().invoke(main, ["export", str(tmp_path / "run"), "--format", fmt, "-o", str(out)])
    assert with_cot.exit_code == 0 and "I call get_weather" in out.read_text(encoding="utf-8")


@pytest.mark.parametrize("fmt", ["funreason", "hermes"])
def test_without_cot_is_refused_for_formats_whose_system_prompt_asks_for_a_think_block(tmp_path, run_dir, fmt):
    said = CliRunner().invoke(
        main, ["export", str(run_dir), "--format", fmt, "-o", str(tmp_path / "t.jsonl"), "--without-cot"]
    )
    assert said.exit_code == 2 and "--without-cot applies to --format sharegpt or openai" in said.output
    assert not (tmp_path / "t.jsonl").exists()


def test_without_cot_is_for_a_training_file_not_a_hub_folder(tmp_path, run_dir):
    said = CliRunner().invoke(
        main, ["export", str(run_dir), "--format", "sharegpt", "--hub-dir", str(tmp_path / "hub"), "--without-cot"]
    )
    assert said.exit_code == 2 and "--without-cot applies to -o FILE" in said.output
    assert not (tmp_path / "hub").exists()


def test_what_llamafactory_would_do_with_a_sharegpt_row():
    from funreason_refine.export.sharegpt import llamafactory_problem

    def row(*tags, **fields):
        return {"conversations": [{"from": t, "value": "x"} for t in tags], **fields}

    assert llamafactory_problem(row("system", "human", "function_call", "observation", "gpt")) is None
    assert llamafactory_problem(row("human", "function_call", "observation")) == (
        "it ends with its observation turn, so LLaMA-Factory skips it as abnormal"
    )
    assert "conversations[3] is a gpt turn where LLaMA-Factory expects human or observation" in str(
        llamafactory_problem(row("system", "human", "function_call", "gpt"))
    )
    assert "reads in place of the row's system field" in str(
        llamafactory_problem(row("system", "human", "gpt", system="Be brief."))
    )


def test_export_of_a_folder_that_is_not_a_run_is_a_clear_error(tmp_path):
    result = CliRunner().invoke(main, ["export", str(tmp_path), "--format", "openai", "-o", str(tmp_path / "x.jsonl")])
    assert result.exit_code == 1 and "is not a run folder: it has no summary.json and no outcome files" in result.output
    assert not (tmp_path / "x.jsonl").exists()


@pytest.mark.parametrize("fmt", ["funreason", "hermes", "sharegpt"])
def test_results_out_of_order_are_written_in_call_order_where_a_format_has_no_ids(tmp_path, fmt):
    """Results that came back in another order than their calls: formats without call ids tie each result to
    the call in its place, so they are written in the order of the calls, and read back to the same pairs."""
    from tests.chats import calls, chat, result, run_chats, say, user

    row = chat(
        "two-cities",
        user("Weather in Oslo and Bergen?"),
        calls(("c1", "get_weather", {"city": "Oslo"}), ("c2", "get_weather", {"city": "Bergen"})),
        result("c2", "5 degrees in Bergen"),
        result("c1", "3 degrees in Oslo"),
        say("Oslo 3, Bergen 5."),
    )
    assert len(run_chats([row], tmp_path)["kept"]) == 1
    export_run(tmp_path / "run", fmt, tmp_path / "out.jsonl")
    (read,) = InputStream(tmp_path / "out.jsonl", None).items()
    assert isinstance(read, Record), read
    turn = next(m for m in read.messages if m.role == "assistant" and isinstance(m.answer, list))
    asked = {call_id: call.arguments["city"] for call_id, call in zip(turn.call_ids, turn.answer, strict=True)}
    answered = {asked[m.call_id]: m.content for m in read.messages if m.role == "tool"}
    assert answered == {"Oslo": "3 degrees in Oslo", "Bergen": "5 degrees in Bergen"}


def test_results_that_cannot_be_placed_without_ids_refuse_the_export(tmp_path):
    """Only the second call answered (a pipeline without the conversation stage keeps it): written without
    ids, its result would answer the first call, so the export is refused, naming the turn."""
    from tests.chats import calls, chat, result, run_chats, say, user

    row = chat(
        "half-answered",
        user("Weather in Oslo and Bergen?"),
        calls(("c1", "get_weather", {"city": "Oslo"}), ("c2", "get_weather", {"city": "Bergen"})),
        result("c2", "5 degrees in Bergen"),
        say("Bergen 5."),
    )
    assert len(run_chats([row], tmp_path, '[[stages]]\nname = "classification"\n')["kept"]) == 1
    out = tmp_path / "out.jsonl"
    result_ = CliRunner().invoke(main, ["export", str(tmp_path / "run"), "--format", "hermes", "-o", str(out)])
    assert result_.exit_code == 1, result_.output
    assert "record 0 (id half-answered) cannot be written as hermes" in result_.output
    assert "the results after messages[1] answer the calls c2 of its calls c1, c2" in result_.output
    assert "Nothing was written; run the pipeline with the conversation stage, or export another format" in (
        result_.output
    )
    assert not out.exists()
    assert export_run(tmp_path / "run", "openai", out) == 1  # the openai format keeps the ids


@pytest.mark.parametrize("fmt", ["funreason", "hermes", "sharegpt"])
def test_a_result_after_a_later_assistant_turn_refuses_the_export(tmp_path, fmt):
    """A result that came back after the next assistant turn (kept without the conversation stage) was
    written after that turn, which made no calls: read back, it answered no call, without a word."""
    from tests.chats import calls, chat, result, run_chats, say, user

    row = chat(
        "late", user("Weather in Oslo?"), calls(("a", "get_weather", {"city": "Oslo"})), say("Wait."), result("a", "3C")
    )
    row["messages"].append(say("3 degrees."))
    assert len(run_chats([row], tmp_path, '[[stages]]\nname = "classification"\ntext_answers = "keep"\n')["kept"]) == 1
    out = tmp_path / "out.jsonl"
    said = CliRunner().invoke(main, ["export", str(tmp_path / "run"), "--format", fmt, "-o", str(out)])
    assert said.exit_code == 1 and not out.exists(), said.output
    assert (
        "record 0 (id late) cannot be written as "
        f"{fmt}: messages[3], the result of call a, comes after messages[2] (assistant), which made no calls"
    ) in " ".join(said.output.split())
    assert export_run(tmp_path / "run", "openai", out) == 1  # the openai format keeps the ids


def xlam_lines(tmp_path, queries):
    from tests.conftest import write_jsonl, xlam_row

    write_jsonl(tmp_path / "in.jsonl", [{**xlam_row(), "id": f"r{i}", "query": q} for i, q in enumerate(queries)])
    (tmp_path / "p.toml").write_text('[input]\npath = "in.jsonl"\n[output]\ndir = "run"\n')
    run_pipeline(load_pipeline(tmp_path / "p.toml"))
    return tmp_path / "run"


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_lone_surrogate_is_exported_as_its_escape_and_reads_back(tmp_path, fmt):
    # The run keeps it (a legal JSON escape); the export failed with UnicodeEncodeError, a traceback.
    run = xlam_lines(tmp_path, ["Météo à Paris?", "Weather in \ud800 Oslo?"])
    assert export_run(run, fmt, tmp_path / "out.jsonl") == 2
    lines = (tmp_path / "out.jsonl").read_bytes().splitlines()
    assert "Météo à Paris?".encode() in lines[0]  # other lines stay UTF-8 text
    assert lines[1].isascii() and b"\\ud800" in lines[1]
    read = list(InputStream(tmp_path / "out.jsonl", None).items())
    assert read[1].query == "Weather in \ud800 Oslo?"


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_a_records_meta_travels_with_it_and_reads_back(tmp_path, fmt, suffix):
    # Every export dropped meta (a licence, a source), though kept.jsonl keeps it: a round trip lost it.
    from tests.conftest import write_jsonl, xlam_row

    metas = [{"license": "cc-by-nc", "n": 7, "tags": ["a"]}, {}, {"source": "crawl", "n": "seven", "x": {}}]
    write_jsonl(tmp_path / "in.jsonl", [{**xlam_row(), "id": f"r{i}", "meta": m} for i, m in enumerate(metas)])
    (tmp_path / "p.toml").write_text('[input]\npath = "in.jsonl"\n[output]\ndir = "run"\n')
    run_pipeline(load_pipeline(tmp_path / "p.toml"))
    out = tmp_path / f"out{suffix}"
    assert export_run(tmp_path / "run", fmt, out) == 3
    read = {r.id: r.meta for r in InputStream(out, None).items()}
    assert read == {"r0": metas[0], "r1": {}, "r2": metas[2]}  # keys and types as they were, in one column
    if suffix == ".jsonl":
        assert ["meta" in row for row in read_jsonl(out)] == [True, False, True]  # none when it says nothing


def test_what_parquet_cannot_hold_refuses_the_export_naming_the_record(tmp_path):
    run = xlam_lines(tmp_path, ["Weather in Paris?", "Weather in \ud800 Oslo?"])
    result = CliRunner().invoke(main, ["export", str(run), "--format", "openai", "-o", str(tmp_path / "o.parquet")])
    assert result.exit_code == 1 and not (tmp_path / "o.parquet").exists()
    assert "record 1 (id r1) cannot be written as openai in Parquet: it holds a lone surrogate ('\\ud800')" in (
        result.output
    )
    assert "export JSONL (-o FILE.jsonl)" in result.output


@pytest.mark.parametrize("fmt", ["funreason", "hermes", "sharegpt"])
def test_content_parts_in_parquet_refuse_the_export_but_for_openai(tmp_path, fmt):
    # A column holds one type: parts beside texts failed inside polars ("Try setting strict=False").
    from tests.chats import WEATHER, calls, chat, run_chats, user

    image = {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}
    parts = {"role": "user", "content": [{"type": "text", "text": "Weather here?"}, image]}
    answer = calls(("c1", "get_weather", {"city": "Oslo"}))
    rows = [
        chat("text", user("Weather in Oslo?"), answer, tools=[WEATHER]),
        chat("parts", parts, answer, tools=[WEATHER]),
    ]
    assert len(run_chats(rows, tmp_path)["kept"]) == 2
    result = CliRunner().invoke(
        main, ["export", str(tmp_path / "run"), "--format", fmt, "-o", str(tmp_path / "o.parquet")]
    )
    assert result.exit_code == 1 and not (tmp_path / "o.parquet").exists()
    where = "conversations[0]" if fmt == "sharegpt" else "messages[1]"  # after the system prompt
    assert f"record 1 (id parts) cannot be written as {fmt} in Parquet: its {where} is content parts" in result.output
    assert export_run(tmp_path / "run", "openai", tmp_path / "o.parquet") == 2
    (read,) = [r for r in InputStream(tmp_path / "o.parquet", None).items() if r.id == "parts"]
    assert read.messages[0].parts == parts["content"]


def test_the_dataset_info_entry_is_added_to_the_entries_already_there(run_dir, tmp_path):
    # LLaMA-Factory's data folder lists every dataset in one dataset_info.json: it was replaced whole.
    (tmp_path / "dataset_info.json").write_text(json.dumps({"alpaca_en": {"file_name": "alpaca_en.json"}}))
    export_run(run_dir, "sharegpt", tmp_path / "a.jsonl")
    export_run(run_dir, "sharegpt", tmp_path / "b.parquet")
    info = json.loads((tmp_path / "dataset_info.json").read_text())
    assert list(info) == ["alpaca_en", "a", "b"] and info["b"]["file_name"] == "b.parquet"
    (tmp_path / "dataset_info.json").write_text("[1, 2]")
    result = CliRunner().invoke(main, ["export", str(run_dir), "--format", "sharegpt", "-o", str(tmp_path / "c.jsonl")])
    assert result.exit_code == 1 and "dataset_info.json is not a JSON object of datasets" in result.output
    assert not (tmp_path / "c.jsonl").exists()


def test_a_tool_that_is_no_function_is_exported_as_it_was_given(tmp_path):
    # It was wrapped as {"type": "function", "function": {"type": "web_search_preview"}}: a nameless function.
    from tests.chats import WEATHER, chat, run_chats, say, user

    row = chat("builtin", user("Weather in Oslo?"), say("Sunny."), tools=[WEATHER, {"type": "web_search_preview"}])
    assert len(run_chats([row], tmp_path, '[[stages]]\nname = "classification"\ntext_answers = "keep"\n')["kept"]) == 1
    export_run(tmp_path / "run", "openai", tmp_path / "o.jsonl")
    (line,) = read_jsonl(tmp_path / "o.jsonl")
    assert line["tools"] == [WEATHER, {"type": "web_search_preview"}]


def refine_text_beside_calls(folder):
    """A run folder (folder/run) of one kept chat whose call turn writes text beside its call."""
    from tests.readers.test_faithful import WEATHER, call, refine

    messages = [
        {"role": "user", "content": "Weather in Oslo?"},
        {
            "role": "assistant",
            "content": "<think>I call get_weather.</think>Let me check.",
            "tool_calls": [call("c1", "Oslo")],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
        {"role": "assistant", "content": "Sunny."},
    ]
    refine(folder, [{"id": "chat", "messages": messages, "tools": [WEATHER]}])


def test_the_funreason_format_says_which_text_beside_calls_it_leaves_out(tmp_path):
    refine_text_beside_calls(tmp_path)
    said = {}
    for fmt in ("funreason", "openai"):
        result = CliRunner().invoke(main, ["export", str(tmp_path / "run"), "--format", fmt, "-o", str(tmp_path / fmt)])
        assert result.exit_code == 0, result.output
        said[fmt] = " ".join(result.output.split())
    assert "1 assistant turn(s) of 1 record(s) wrote text beside their calls" in said["funreason"]
    assert "(the first: record 0 (id chat))" in said["funreason"] and "beside their calls" not in said["openai"]
    (row,) = read_jsonl(tmp_path / "openai")
    assert "Let me check." in json.dumps(row)
