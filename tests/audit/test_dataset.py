"""The dataset audits in whole runs, on literal records: duplicates, near-duplicates, contamination, the call mix."""

import json

import pytest
from click.testing import CliRunner

from funreason_refine.cli import main
from funreason_refine.config import load_pipeline
from funreason_refine.engine import run_pipeline
from funreason_refine.errors import ConfigError
from tests.conftest import read_jsonl, write_jsonl, xlam_row

WEATHER = {
    "name": "get_weather",
    "description": "Weather.",
    "parameters": {"city": {"type": "str", "description": "c"}},
}
TIME = {"name": "city_time", "description": "Local time.", "parameters": {"city": {"type": "str", "description": "c"}}}
LONG = "Please tell me what the weather will be like in Paris today and tomorrow"


def weather(*cities):
    return [{"name": "get_weather", "arguments": {"city": c}} for c in cities]


def run(tmp_path, rows, audit="", out="run", **kw):
    write_jsonl(tmp_path / "in.jsonl", rows)
    path = tmp_path / "pipeline.toml"
    path.write_text(f'[input]\npath = "in.jsonl"\n[output]\ndir = "run"\n[audit]\n{audit}\n', encoding="utf-8")
    return run_pipeline(load_pipeline(path, tmp_path / out), **kw)


def outcome_bytes(folder):
    return {k: (folder / f"{k}.jsonl").read_bytes() for k in ("kept", "discarded", "quarantined", "errors")}


ROWS = [
    xlam_row("first", "What's the weather in Paris?", answers=weather("Paris")),
    xlam_row("same", "what's the WEATHER in   Paris? ", answers=weather("Paris")),  # case and spacing
    xlam_row("other-city", "What's the weather in Paris?", answers=weather("Lyon")),  # same query, other call
    xlam_row("long", LONG, answers=weather("Paris")),
    xlam_row("long-thanks", LONG + ", thanks", answers=weather("Paris", "Paris")),
    xlam_row("different", "Is it raining in Oslo right now?", answers=weather("Oslo")),
]


def test_exact_duplicates_by_default_near_ones_when_asked_found_listed_and_kept(tmp_path):
    default = run(tmp_path, ROWS, out="default").summary.as_dict()["dataset"]["duplicates"]
    assert (default["exact"], default["near"]) == (1, None)  # near-duplicates: not looked for
    assert [(e["id"], e["of"]) for e in default["examples"]] == [("same", 0)]
    result = run(tmp_path, ROWS, "near_duplicates = true")
    dataset = result.summary.as_dict()["dataset"]
    assert result.summary.as_dict()["outcomes"]["kept"] == 6 and dataset["dropped"] == {}
    dups = dataset["duplicates"]
    assert (dups["exact"], dups["near"]) == (1, 2)
    found = {e["id"]: (e["kind"], e["of"], e["similarity"], e["dropped"]) for e in dups["examples"]}
    assert found["same"] == ("exact", 0, 1.0, False)
    assert found["other-city"] == ("near", 0, 1.0, False)  # the same question answered otherwise
    kind, of, similarity, _ = found["long-thanks"]
    assert (kind, of) == ("near", 3) and 0.8 <= similarity < 1.0
    assert "different" not in found and "first" not in found


def test_drop_duplicates_discards_all_but_the_first_with_reason_duplicate(tmp_path):
    rows = [*ROWS, xlam_row("third", "What's the weather\tin PARIS?", answers=weather("Paris"))]
    result = run(tmp_path, rows, "drop_duplicates = true")
    folder = tmp_path / "run"
    assert [k["id"] for k in read_jsonl(folder / "kept.jsonl")] == [
        "first",
        "other-city",
        "long",
        "long-thanks",
        "different",
    ]
    discarded = read_jsonl(folder / "discarded.jsonl")
    assert [(d["id"], d["stage"], d["reason"]) for d in discarded] == [
        ("same", "dataset", "duplicate"),
        ("third", "dataset", "duplicate"),
    ]
    assert discarded[0]["message"] == "same query and answer as record 0, which is kept"
    assert discarded[0]["audit"] == {"duplicate_of": 0, "similarity": 1.0}
    assert discarded[0]["trail"][-1]["stage"] == "dataset" and discarded[0]["trail"][-2]["stage"] == "format"
    summary = result.summary.as_dict()
    assert summary["outcomes"] == {"kept": 5, "discarded": 2, "quarantined": 0, "errors": 0}
    assert summary["stages"]["dataset"]["records_discarded"] == {"duplicate": 2}
    assert summary["dataset"]["dropped"] == {"duplicate": 2} and summary["dataset"]["duplicates"]["exact"] == 2
    assert summary["dataset"]["call_mix"]["records"] == 5
    shown = CliRunner().invoke(main, ["audit", str(folder), "--stage", "dataset", "--reason", "duplicate"])
    assert shown.exit_code == 0 and "same query and answer as record 0" in shown.output


def test_drop_near_duplicates_also_drops_exact_ones(tmp_path):
    run(tmp_path, ROWS, "drop_near_duplicates = true")
    discarded = read_jsonl(tmp_path / "run" / "discarded.jsonl")
    assert [(d["id"], d["reason"]) for d in discarded] == [
        ("same", "duplicate"),
        ("other-city", "near_duplicate"),
        ("long-thanks", "near_duplicate"),
    ]
    assert discarded[2]["message"].startswith("near-duplicate query of record 3, which is kept (similarity 0.")


def test_the_near_duplicate_threshold_is_the_users(tmp_path):
    near = "near_duplicates = true\nnear_duplicate_threshold = "
    strict = run(tmp_path, ROWS, near + "1.0", out="strict").summary.as_dict()["dataset"]["duplicates"]
    assert [e["id"] for e in strict["examples"] if e["kind"] == "near"] == ["other-city"]
    loose = run(tmp_path, ROWS, near + "0.3", out="loose").summary.as_dict()["dataset"]["duplicates"]
    assert [e["id"] for e in loose["examples"] if e["kind"] == "near"] == ["other-city", "long-thanks"]


def bfcl_eval_set(path, *questions):
    rows = [
        {"id": f"simple_{i}", "question": [[{"role": "user", "content": q}]], "function": [{"name": "f"}]}
        for i, q in enumerate(questions)
    ]
    return write_jsonl(path, rows)


TRIANGLE = "Find the area of a triangle with a base of 10 units and height of 5 units."


def test_contamination_against_eval_sets_in_any_format_counted_listed_and_dropped(tmp_path):
    bfcl_eval_set(tmp_path / "BFCL_v4_simple_python.json", "Calculate the factorial of 5.", TRIANGLE)
    write_jsonl(tmp_path / "xlam_eval.jsonl", [xlam_row("x-7", "Is it raining in Oslo right now, or snowing?")])
    rows = [
        xlam_row("copied", "find the AREA of a triangle with a base of 10 units and height of 5 units", answers=[]),
        xlam_row("template", "Find the area of a triangle with a base of 7 units and height of 3 units.", answers=[]),
        xlam_row("clean", LONG, answers=weather("Paris")),
        xlam_row("copied-short", "Is it raining in Oslo right now, or snowing?", answers=weather("Oslo")),
    ]
    audit = 'eval_sets = ["BFCL_v4_simple_python.json", "xlam_eval.jsonl"]\n'
    found = run(tmp_path, rows, audit).summary.as_dict()["dataset"]["contamination"]
    assert [s["queries"] for s in found["eval_sets"]] == [2, 1]  # BFCL questions need no possible answers
    assert found["records"] == 2
    assert [(e["id"], e["eval_id"], e["overlap"], e["dropped"]) for e in found["examples"]] == [
        ("copied", "simple_1", 1.0, False),
        ("copied-short", "x-7", 1.0, False),
    ]
    assert found["examples"][0]["eval_query"] == TRIANGLE
    # Sharing 3 of its 10 eight-word sequences ("find the area of a triangle with a ...") is contamination at 0.3.
    loose = run(tmp_path, rows, audit + "contamination_threshold = 0.3\ndrop_contaminated = true", out="loose")
    discarded = read_jsonl(tmp_path / "loose" / "discarded.jsonl")
    assert [(d["id"], d["reason"]) for d in discarded] == [
        ("copied", "contaminated"),
        ("template", "contaminated"),
        ("copied-short", "contaminated"),
    ]
    assert discarded[1]["audit"]["eval_id"] == "simple_1" and discarded[1]["audit"]["overlap"] == 0.3
    assert "30% of the query's 8-word sequences are in eval set" in discarded[1]["message"]
    assert loose.summary.as_dict()["dataset"]["dropped"] == {"contaminated": 3}


def test_an_unreadable_eval_entry_is_named_not_fatal_and_a_missing_eval_set_is_a_config_error(tmp_path):
    bfcl_eval_set(tmp_path / "eval.json", TRIANGLE)
    with (tmp_path / "eval.json").open("a") as fh:
        fh.write('{"id": "broken", "question": 7, "function": []}\n')
    summary = run(tmp_path, ROWS[:1], 'eval_sets = ["eval.json"]').summary.as_dict()["dataset"]
    assert summary["contamination"]["eval_sets"][0]["unreadable"] == 1
    assert any("eval.json:2" in w and "'question' must be a list" in w for w in summary["warnings"])
    with pytest.raises(ConfigError) as info:
        run(tmp_path, ROWS[:1], 'eval_sets = ["nowhere.json"]')
    assert "[audit] key 'eval_sets[0]': file" in str(info.value) and "nowhere.json not found" in str(info.value)
    with pytest.raises(ConfigError, match="\\[audit\\] key 'drop_duplicate': Extra inputs are not permitted"):
        run(tmp_path, ROWS[:1], "drop_duplicate = true")


def test_the_call_mix_warns_when_a_kind_is_missing(tmp_path):
    only_single = run(tmp_path, ROWS[:1] + ROWS[3:4], out="single").summary.as_dict()["dataset"]
    assert only_single["call_mix"]["missing"] == ["no_call", "parallel", "several_functions"]
    assert any("learns to always call" in w for w in only_single["warnings"])
    mixed = [
        xlam_row("one", answers=weather("Paris")),
        xlam_row("none", "Tell me a joke.", answers=[]),
        xlam_row("two", "Weather in Rome and Oslo?", answers=weather("Rome", "Oslo")),
        xlam_row(
            "both",
            "Weather and time in Rome?",
            tools=[WEATHER, TIME],
            answers=[*weather("Rome"), {"name": "city_time", "arguments": {"city": "Rome"}}],
        ),
    ]
    full = run(tmp_path, mixed, out="mixed").summary.as_dict()["dataset"]
    assert {k: full["call_mix"][k] for k in ("no_call", "one_call", "parallel", "several_functions")} == {
        "no_call": 1,
        "one_call": 1,
        "parallel": 1,
        "several_functions": 1,
    }
    assert full["call_mix"]["missing"] == [] and full["warnings"] == []


def test_resumed_and_worker_runs_give_the_bytes_and_audit_of_one_uninterrupted_run(tmp_path):
    bfcl_eval_set(tmp_path / "eval.json", TRIANGLE)
    copied = xlam_row("copied", TRIANGLE, answers=[])
    rows = [*ROWS, b"{broken", copied, *ROWS, xlam_row("bad", answers=[{"name": "nope", "arguments": {}}]), copied]
    audit = 'drop_near_duplicates = true\ndrop_contaminated = true\neval_sets = ["eval.json"]'
    reference = run(tmp_path, rows, audit, out="reference", workers=1)
    assert reference.summary.as_dict()["dataset"]["dropped"] == {"contaminated": 2, "duplicate": 5, "near_duplicate": 4}
    for limit in (1, 2, 5, 8, 9, 13, 15):
        run(tmp_path, rows, audit, out=f"limit-{limit}", limit=limit)
        resumed = run(tmp_path, rows, audit, out=f"limit-{limit}")
        assert outcome_bytes(tmp_path / f"limit-{limit}") == outcome_bytes(tmp_path / "reference"), limit
        assert resumed.summary.as_dict()["dataset"] == reference.summary.as_dict()["dataset"], limit
        assert resumed.summary.as_dict()["stages"] == reference.summary.as_dict()["stages"], limit
    workers = run(tmp_path, rows, audit, out="workers", workers=2)
    assert outcome_bytes(tmp_path / "workers") == outcome_bytes(tmp_path / "reference")
    assert workers.summary.as_dict()["dataset"] == reference.summary.as_dict()["dataset"]


def test_audit_settings_are_part_of_the_configuration(tmp_path):
    bfcl_eval_set(tmp_path / "a.json", TRIANGLE)
    bfcl_eval_set(tmp_path / "b.json", TRIANGLE)
    write_jsonl(tmp_path / "in.jsonl", ROWS)
    path = tmp_path / "pipeline.toml"
    hashes = []
    for audit in (
        "",
        'eval_sets = ["a.json"]',
        'eval_sets = ["./a.json"]',
        'eval_sets = ["b.json"]',
        "drop_duplicates = true",
    ):
        path.write_text(f'[input]\npath = "in.jsonl"\n[audit]\n{audit}\n', encoding="utf-8")
        pipeline = load_pipeline(path)
        hashes.append(pipeline.config_hash)
    assert hashes[1] == hashes[2]  # the same file, written two ways
    assert len({hashes[0], hashes[1], hashes[3], hashes[4]}) == 4
    assert json.dumps(pipeline.config).count("drop_duplicates") == 1


def test_conversations_are_duplicates_when_the_whole_conversation_is_not_when_the_last_turn_is(tmp_path):
    from tests.chats import calls, chat, result, say, user

    def weather_chat(rid, city, asked=None, ending="You're welcome."):
        return chat(
            rid,
            user(asked or f"What's the weather in {city}?"),
            calls(("c1", "get_weather", {"city": city})),
            result("c1", "sunny"),
            say("Sunny."),
            user("Thanks!"),
            say(ending),
        )

    rows = [
        weather_chat("paris", "Paris"),
        weather_chat("oslo", "Oslo"),  # the same last turn as paris, another conversation
        weather_chat("paris-again", "Paris", "what's the WEATHER in  Paris?"),  # the same but for case and spacing
        weather_chat("paris-new-ending", "Paris", ending="Anytime."),  # a later turn answered otherwise
    ]
    write_jsonl(tmp_path / "chats.jsonl", rows)
    path = tmp_path / "pipeline.toml"
    path.write_text(
        '[input]\npath = "chats.jsonl"\n[output]\ndir = "run"\n[audit]\ndrop_duplicates = true\n'
        "near_duplicates = true\n",
        encoding="utf-8",
    )
    summary = run_pipeline(load_pipeline(path)).summary.as_dict()
    folder = tmp_path / "run"
    assert [k["id"] for k in read_jsonl(folder / "kept.jsonl")] == ["paris", "oslo", "paris-new-ending"]
    [dropped] = read_jsonl(folder / "discarded.jsonl")
    assert (dropped["id"], dropped["reason"], dropped["audit"]["duplicate_of"]) == ("paris-again", "duplicate", 0)
    assert len(dropped["messages"]) == 6  # the whole conversation is kept where a person can see it
    near = {e["id"]: e["of"] for e in summary["dataset"]["duplicates"]["examples"] if e["kind"] == "near"}
    assert near == {"paris-new-ending": 0}  # what its user says is paris's, word for word
