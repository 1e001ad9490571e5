"""Multi-turn conversations: read from each format, every assistant turn checked, written back out."""

import json

import pytest

from funreason_refine.config import load_pipeline
from funreason_refine.engine import run_pipeline
from funreason_refine.export import export_run
from funreason_refine.readers import InputStream
from funreason_refine.record import Quarantined, Record
from tests.conftest import read_jsonl, write_jsonl

WEATHER = {
    "name": "get_weather",
    "description": "Weather now.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
FORECAST = {
    "name": "get_forecast",
    "description": "Forecast.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
        "required": ["city", "days"],
    },
}
TOOLS = [{"type": "function", "function": t} for t in (WEATHER, FORECAST)]


def call(cid, name, **arguments):
    return {"id": cid, "type": "function", "function": {"name": name, "arguments": json.dumps(arguments)}}


def result(cid, content):
    return {"role": "tool", "tool_call_id": cid, "content": content}


def turns(n):
    """A conversation of ``n`` assistant turns (n >= 1): the first makes two parallel calls, then each
    pair of turns is a text answer and a new call, and the last answers with text when n is even."""
    messages = [
        {"role": "system", "content": "You are a weather bot."},
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {
            "role": "assistant",
            "reasoning_content": "Two cities: get_weather for each.",
            "tool_calls": [call("a", "get_weather", city="Paris"), call("b", "get_weather", city="Rome")],
        },
    ]
    done = 1
    cities = ["Oslo", "Bergen", "Lima", "Quito"]
    while done < n:
        last = messages[-1]
        if last.get("tool_calls"):
            messages += [result(c["id"], "sunny") for c in last["tool_calls"]]
            messages.append({"role": "assistant", "content": "It is sunny there."})
        else:
            city = cities.pop(0)
            messages.append({"role": "user", "content": f"Forecast for {city}, 3 days?"})
            messages.append(
                {
                    "role": "assistant",
                    "content": "<think>A forecast: get_forecast.</think>",
                    "tool_calls": [call(f"c{done}", "get_forecast", city=city, days=3)],
                }
            )
        done += 1
    return {"id": f"conv{n}", "tools": TOOLS, "messages": messages}


def run(tmp_path, rows, stages="", fmt="openai"):
    write_jsonl(tmp_path / "in.jsonl", rows)
    (tmp_path / "p.toml").write_text(f'[input]\npath = "in.jsonl"\nformat = "{fmt}"\n{stages}')
    return run_pipeline(load_pipeline(tmp_path / "p.toml"))


def outcome(tmp_path, kind):
    return read_jsonl(tmp_path / "runs" / "p" / f"{kind}.jsonl")


# --- reading -------------------------------------------------------------------------------------


def read(tmp_path, rows, fmt="openai"):
    path = write_jsonl(tmp_path / "r.jsonl", rows)
    return list(InputStream(path, fmt).items())


def test_one_user_message_and_one_answer_is_a_single_turn_record(tmp_path):
    (record,) = read(tmp_path, [turns(1)])
    assert isinstance(record, Record) and record.messages == [] and record.turn is None
    assert record.system == "You are a weather bot."  # kept, not dropped
    assert record.query == "Weather in Paris and Rome?" and [c.arguments for c in record.calls] == [
        {"city": "Paris"},
        {"city": "Rome"},
    ]
    assert record.cot == "Two cities: get_weather for each."


@pytest.mark.parametrize("n", [2, 5])
def test_a_conversation_keeps_every_message_with_its_last_turn_in_focus(tmp_path, n):
    (record,) = read(tmp_path, [turns(n)])
    roles = [m.role for m in record.messages]
    assert roles.count("assistant") == n and record.turn == n - 1
    assert record.system == "You are a weather bot."
    first = record.messages[1]
    assert first.call_ids == ["a", "b"] and [c.name for c in first.answer] == ["get_weather", "get_weather"]
    assert [m.call_id for m in record.messages if m.role == "tool"][:2] == ["a", "b"]
    last = [m for m in record.messages if m.role == "assistant"][-1]
    assert record.answer == last.answer and record.cot == last.cot


def test_sharegpt_conversations_with_a_parallel_call_answered_by_one_observation(tmp_path):
    row = {
        "conversations": [
            {"from": "human", "value": "Weather in Paris and Rome?"},
            {
                "from": "function_call",
                "value": json.dumps(
                    [
                        {"name": "get_weather", "arguments": {"city": "Paris"}},
                        {"name": "get_weather", "arguments": {"city": "Rome"}},
                    ]
                ),
            },
            {"from": "observation", "value": json.dumps(["sunny", "rain"])},
            {"from": "gpt", "value": "<think>Both known.</think>Sunny in Paris, rain in Rome."},
        ],
        "tools": json.dumps([WEATHER]),
        "system": "Be brief.",
    }
    (record,) = read(tmp_path, [row], "sharegpt")
    results = [(m.call_id, m.content) for m in record.messages if m.role == "tool"]
    assert results == [("call_0_0", "sunny"), ("call_0_1", "rain")]  # ids by position, results split
    assert (record.answer, record.cot, record.system) == ("Sunny in Paris, rain in Rome.", "Both known.", "Be brief.")


def test_without_a_format_each_record_is_read_in_its_own(tmp_path):
    from tests.conftest import xlam_row

    rows = [
        xlam_row("single"),
        turns(3),
        {"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "hello"}]},
    ]
    path = write_jsonl(tmp_path / "mixed.jsonl", rows)
    items = list(InputStream(path, None).items())
    assert [(i.id, len(i.messages)) for i in items] == [("single", 0), ("conv3", 7), ("2", 0)]
    fixed = list(InputStream(path, "xlam").items())  # a format set in the pipeline holds for every record
    assert [type(i).__name__ for i in fixed] == ["Record", "Quarantined", "Quarantined"]


@pytest.mark.parametrize(
    "messages, field, words",
    [
        (
            [{"role": "user", "content": "hi"}, {"role": "robot", "content": "beep"}],
            "messages[1].role",
            "unknown role 'robot'",
        ),
        (
            [{"role": "user", "content": "hi"}, {"role": "user", "content": "anyone?"}],
            "messages",
            "no assistant message",
        ),
        (
            [{"role": "assistant", "content": "hi"}, {"role": "user", "content": "?"}],
            "messages[0]",
            "an assistant turn before any user message",
        ),
        ([{"role": "user", "content": "hi"}, "oops"], "messages[1]", "must be an object"),
        ([{"role": "user", "content": "hi"}, 7], "messages[1]", "must be an object"),
    ],
)
def test_malformed_conversations_are_quarantined_naming_the_message(tmp_path, messages, field, words):
    (item,) = read(tmp_path, [{"tools": TOOLS, "messages": messages}])
    assert isinstance(item, Quarantined) and item.field == field and words in item.error


# --- refining ------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [2, 5])
def test_every_assistant_turn_is_checked_and_the_trail_names_it(tmp_path, n):
    result = run(tmp_path, [turns(n)])
    (kept,) = outcome(tmp_path, "kept")
    assert result.summary.as_dict()["outcomes"]["kept"] == 1
    assert sorted({s["turn"] for s in kept["trail"]}) == list(range(n))
    assert all(s["stage"] == "conversation" for s in kept["trail"] if s["turn"] is not None and s is kept["trail"][0])
    assistant = [m for m in kept["messages"] if m["role"] == "assistant"]
    assert all(m["target"] for m in assistant)  # each turn has its training target
    assert (
        assistant[0]["target"].startswith("<think>Two cities") and 'get_weather(city="Rome")' in assistant[0]["target"]
    )


def test_a_single_turn_record_skips_the_conversation_stage(tmp_path):
    run(tmp_path, [turns(1)])
    (kept,) = outcome(tmp_path, "kept")
    assert "conversation" not in {s["stage"] for s in kept["trail"]} and {s["turn"] for s in kept["trail"]} == {None}


def test_a_repair_in_a_later_turn_is_written_back_into_the_conversation(tmp_path):
    row = turns(3)
    row["messages"][-1]["tool_calls"][0]["function"]["arguments"] = json.dumps({"city": "Oslo", "days": "3"})
    run(tmp_path, [row])
    (kept,) = outcome(tmp_path, "kept")
    repaired = [s for s in kept["trail"] if s["verdict"] == "regenerate"]
    assert [(s["stage"], s["reason"], s["turn"]) for s in repaired] == [("function_params", "coerced_type", 2)]
    assert kept["messages"][-1]["answer"][0]["arguments"] == {"city": "Oslo", "days": 3}
    assert kept["messages"][-1]["call_ids"] == ["c2"]  # the id stays with its call


def broken(kind):
    row = turns(5)
    messages = row["messages"]
    if kind == "missing_result":
        messages.remove(next(m for m in messages if m.get("tool_call_id") == "b"))
    elif kind == "result_without_call":
        messages.insert(4, result("zzz", "stray"))
    elif kind == "duplicate_call_id":
        messages[-1]["tool_calls"][0]["id"] = "a"
    elif kind == "duplicate_result":
        messages.insert(4, result("b", "again"))
    elif kind == "bad_argument_in_turn_4":
        messages[-1]["tool_calls"][0]["function"]["arguments"] = json.dumps({"city": "Lima"})
    return row


@pytest.mark.parametrize(
    "kind, reason, turn",
    [
        ("missing_result", "missing_result", 0),
        ("result_without_call", "result_without_call", 0),
        ("duplicate_call_id", "duplicate_call_id", 4),
        ("duplicate_result", "duplicate_result", 0),
        ("bad_argument_in_turn_4", "missing_required", 4),
    ],
)
def test_a_broken_turn_discards_the_conversation_at_that_turn(tmp_path, kind, reason, turn):
    run(tmp_path, [broken(kind)])
    (line,) = outcome(tmp_path, "discarded")
    assert (line["reason"], line["turn"], line["trail"][-1]["turn"]) == (reason, turn, turn)
    assert len([m for m in line["messages"] if m["role"] == "assistant"]) == 5  # kept whole, for the audit


def test_truncate_keeps_the_conversation_up_to_its_last_good_turn(tmp_path):
    stages = '[[stages]]\nname = "conversation"\n[[stages]]\nname = "function_params"\non_fail = "truncate"\n'
    stages += '[[stages]]\nname = "format"\n'
    run(tmp_path, [broken("bad_argument_in_turn_4"), broken("missing_result")], stages)
    (kept,) = outcome(tmp_path, "kept")
    assert [m["role"] for m in kept["messages"]][-1] == "assistant" and kept["turn"] == 3
    assert len([m for m in kept["messages"] if m["role"] == "assistant"]) == 4
    cut = kept["trail"][-1]
    assert (cut["verdict"], cut["reason"], cut["turn"]) == ("discard", "missing_required", 4)
    assert "conversation kept up to turn 3" in cut["message"]
    # the conversation stage's own on_fail is discard: its failure is not truncated
    (dropped,) = outcome(tmp_path, "discarded")
    assert dropped["reason"] == "missing_result"


def test_truncating_at_the_first_turn_leaves_nothing_and_discards(tmp_path):
    row = turns(2)
    row["messages"][2]["tool_calls"][0]["function"]["arguments"] = "{}"
    run(tmp_path, [row], '[[stages]]\nname = "function_params"\non_fail = "truncate"\n')
    (line,) = outcome(tmp_path, "discarded")
    assert (line["reason"], line["turn"]) == ("missing_required", 0)


def test_results_after_the_last_turn_are_cut_only_when_the_stage_may_repair(tmp_path):
    row = turns(3)  # ends with a call turn: add its result, which no assistant turn answers
    row["messages"].append(result("c2", "snow"))
    run(tmp_path, [row])
    assert outcome(tmp_path, "discarded")[0]["reason"] == "ends_without_assistant"
    (tmp_path / "repair").mkdir()
    run(tmp_path / "repair", [row], '[[stages]]\nname = "conversation"\non_fail = "regenerate"\n')
    (kept,) = read_jsonl(tmp_path / "repair" / "runs" / "p" / "kept.jsonl")
    assert kept["messages"][-1]["role"] == "assistant"


# --- writing -------------------------------------------------------------------------------------


def comparable(line):
    """What a round trip must keep of a conversation: the roles, texts, calls, CoTs and results."""
    out = []
    for m in line["messages"]:
        if m["role"] == "assistant":
            out.append(("assistant", json.dumps(m["answer"], sort_keys=True), m["cot"]))
        else:
            out.append((m["role"], m["content"]))
    return out


@pytest.mark.parametrize("fmt", ["funreason", "hermes", "sharegpt", "openai"])
def test_each_export_writes_whole_conversations_that_read_back_the_same(tmp_path, fmt):
    run(tmp_path, [turns(1), turns(2), turns(5)])
    first = outcome(tmp_path, "kept")
    assert len(first) == 3
    export_run(tmp_path / "runs" / "p", fmt, tmp_path / f"{fmt}.jsonl")
    again = tmp_path / "again"
    again.mkdir()
    (again / f"{fmt}.jsonl").write_text((tmp_path / f"{fmt}.jsonl").read_text())
    reader = "sharegpt" if fmt == "sharegpt" else "openai"
    (again / "p.toml").write_text(f'[input]\npath = "{fmt}.jsonl"\nformat = "{reader}"\n')
    run_pipeline(load_pipeline(again / "p.toml"))
    second = read_jsonl(again / "runs" / "p" / "kept.jsonl")
    assert [comparable(r) for r in second[1:]] == [comparable(r) for r in first[1:]]
    assert (second[0]["query"], second[0]["answer"]) == (first[0]["query"], first[0]["answer"])
    # a system prompt of the record's own survives; the instructions an export adds are not taken for it
    assert [r["system"] for r in second] == [r["system"] for r in first] == ["You are a weather bot."] * 3


def test_the_funreason_export_trains_on_every_assistant_turn(tmp_path):
    run(tmp_path, [turns(3)])
    export_run(tmp_path / "runs" / "p", "funreason", tmp_path / "f.jsonl")
    (row,) = read_jsonl(tmp_path / "f.jsonl")
    roles = [m["role"] for m in row["messages"]]
    assert roles == ["system", "user", "assistant", "tool", "tool", "assistant", "user", "assistant"]
    assert row["messages"][0]["content"].startswith(
        "You are a weather bot.\n\nYou are an expert in composing functions"
    )
    assert row["messages"][2]["content"].startswith("<think>Two cities")
    assert (
        row["messages"][-1]["content"]
        == '<think>A forecast: get_forecast.</think>\n\n[get_forecast(city="Oslo", days=3)]'
    )


def test_the_judge_sees_which_call_each_earlier_result_answers(tmp_path):
    # The results named call ids the calls above them did not show: with Bergen's result first, a judge
    # read "timeout" as Oslo's.
    from funreason_refine.conversation import focus
    from funreason_refine.judge.prompt import conversation_text

    row = {
        "id": "ids",
        "tools": TOOLS,
        "messages": [
            {"role": "user", "content": "Weather in Oslo and Bergen?"},
            {
                "role": "assistant",
                "tool_calls": [call("o", "get_weather", city="Oslo"), call(7, "get_weather", city="Bergen")],
            },
            result(7, "timeout"),
            result("o", "snow"),
            {"role": "assistant", "content": "Snow in Oslo; Bergen timed out."},
        ],
    }
    (record,) = read(tmp_path, [row])
    shown = conversation_text(focus(record, 1))
    assert 'assistant calls: [get_weather(city="Oslo"), get_weather(city="Bergen")] (call ids: o, 7)\n' in shown
    assert "tool result for 7: timeout\ntool result for o: snow" in shown


def test_a_judged_conversation_shows_the_judge_each_turn_with_the_conversation_before_it(tmp_path, monkeypatch):
    from funreason_refine.testing.fake_llm import FakeLLM

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")

    def script(request):
        answer = request.prompt.split("===== ANSWER =====")[-1]
        if "checking the function calls" in request.prompt and 'get_forecast(city="Bergen", days=3)' in answer:
            # the judge corrects turn 4's call: the answer is replaced, checked again, and kept
            return '<judge>False</judge><reason>two days</reason><NewFC>[get_forecast(city="Bergen", days=2)]</NewFC>'
        return "<judge>True</judge>"

    with FakeLLM(script) as server:
        judge = f'[judge]\nmodel = "openai/fake"\napi_base = "{server.api_base}"\ntimeout = 5\nmax_retries = 1\n'
        stages = judge + "".join(f'[[stages]]\nname = "{s}"\n' for s in ("conversation", "function_params", "format"))
        run(tmp_path, [turns(5)], stages)
    (kept,) = outcome(tmp_path, "kept")
    asked = [r.prompt for r in server.requests if "checking the function calls" in r.prompt]
    assert len(asked) == 5 + 1  # every turn (no classification stage ends the text turns early), turn 4 again
    first, later = asked[0], asked[1]
    assert "CONVERSATION SO FAR" not in first.split("===== QUERY")[0]  # turn 0: nothing before it
    before = later.split("===== CONVERSATION SO FAR =====")[1].split("===== QUERY")[0]
    assert "user: Weather in Paris and Rome?" in before and "tool result for a: sunny" in before
    corrected = [s for s in kept["trail"] if s["reason"] == "judge_corrected"]
    assert [(s["stage"], s["turn"]) for s in corrected] == [("function_params", 4)]
    assert kept["messages"][-1]["answer"] == [{"name": "get_forecast", "arguments": {"city": "Bergen", "days": 2}}]
    assert kept["messages"][-1]["target"].endswith('[get_forecast(city="Bergen", days=2)]')


# --- long conversations --------------------------------------------------------------------------


def long_conversation(exchanges):
    """``exchanges`` times: a user asks, the assistant calls, the result comes, the assistant answers."""
    messages = []
    for n in range(exchanges):
        messages += [
            {"role": "user", "content": f"Weather in city{n}?"},
            {"role": "assistant", "content": None, "tool_calls": [call(f"c{n}", "get_weather", city=f"city{n}")]},
            result(f"c{n}", "sunny"),
            {"role": "assistant", "content": "Sunny."},
        ]
    return {"id": "long", "tools": TOOLS, "messages": messages}


def test_each_turn_of_a_long_conversation_costs_the_same_however_long_it_is(tmp_path, monkeypatch):
    """The layout of a conversation (where its turns are, what they ask, which turns use each call id)
    is worked out once per refinement, not once per turn: 16 s for 10,000 messages before, 1.4 s after."""
    from funreason_refine import conversation
    from funreason_refine.refine import refine_record

    (record,) = read(tmp_path, [long_conversation(100)])
    (tmp_path / "p.toml").write_text('[input]\npath = "r.jsonl"\nformat = "openai"\n')
    stages = load_pipeline(tmp_path / "p.toml").stages
    worked_out = []
    real = conversation.Layout.of
    monkeypatch.setattr(conversation.Layout, "of", classmethod(lambda cls, m: worked_out.append(len(m)) or real(m)))
    finished = refine_record(record, stages)
    assert finished.outcome == "kept" and {s["turn"] for s in json.loads(finished.written().line)["trail"]} == set(
        range(200)
    )
    assert worked_out == [400]
    # the refinement wrote into its own copy: the record read is as it was
    assert all(m.target is None for m in record.messages) and all(m.target for m in finished.record.messages[1::2])
