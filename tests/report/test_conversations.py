"""refine report, audit and compare on conversations: numbers checked against counts made by hand."""

import json

import pytest
from click.testing import CliRunner

from funreason_refine import Stage, Verdict, hookimpl
from funreason_refine.cli import main
from funreason_refine.report.turns import is_error_result
from funreason_refine.review.view import record_view
from funreason_refine.testing import registered
from tests.chats import WEATHER, calls, chat, result, run_chats, say, user
from tests.report.test_report import Numbers


class Boom(Stage):
    """Breaks on turn 1 of the conversation "boom", as a broken plugin would: errors.jsonl."""

    name = "boom"

    def check(self, record):
        if record.id == "boom" and record.turn == 1:
            raise RuntimeError("the boom plugin broke on turn 1")
        return Verdict.passed()


class BoomPlugin:
    @hookimpl
    def register_stages(self, register):
        register(Boom)


TRACEBACK = 'Traceback (most recent call last):\n  File "w.py", line 1\nTimeoutError: read timed out'
ROWS = [
    # 0 kept, 2 turns; its turn 1 is text, which classification accepts as it is (no later stage)
    chat(
        "paris-ok",
        user("Weather in Paris?"),
        calls(("w", "get_weather", {"city": "Paris"})),
        result("w", '{"temp": 20}'),
        say("It is 20 C in Paris."),
    ),
    # 1 kept, 3 turns; two of its three tool results are error messages (both get_weather's)
    chat(
        "tool-errors",
        user("Weather in Atlantis and the time in UTC?"),
        calls(("a", "get_weather", {"city": "Atlantis"}), ("b", "get_time", {"tz": "UTC"})),
        result("a", '{"error": "city not found"}'),
        result("b", "12:00 \ud800"),  # a lone surrogate: a legal JSON escape, not Unicode
        user("Then Paris?"),
        calls(("c", "get_weather", {"city": "Paris"})),
        result("c", TRACEBACK),
        say("Atlantis does not exist, Paris timed out; it is 12:00 UTC."),
    ),
    # 2 truncated at turn 1 (unknown function): kept with turn 0 alone, its error result cut off with turn 1
    chat(
        "cut-at-1",
        user("Weather in Rome?"),
        calls(("r", "get_weather", {"city": "Rome"})),
        result("r", "Error: timeout"),
        calls(("s", "get_wether", {"city": "Rome"})),
        result("s", '{"temp": 9}'),
        say("9 C"),
    ),
    # 3 discarded at turn 0: its call has no result
    chat("no-result", user("Weather in Oslo?"), calls(("o", "get_weather", {"city": "Oslo"})), say("Cold.")),
    # 4 kept, 3 turns; turn 1 repaired ("5" -> 5), then checked again
    chat(
        "days-fixed",
        user("Weather in Oslo?"),
        calls(("o", "get_weather", {"city": "Oslo"})),
        result("o", '{"temp": 2}'),
        user("And the forecast for 5 days?"),
        calls(("f", "get_forecast", {"city": "Oslo", "days": "5"})),
        result("f", '{"rain": true}'),
        say("Cold, then rain."),
    ),
    # 5 discarded at turn 2 (days missing), 4 turns
    chat(
        "no-days-at-2",
        user("Weather in Oslo?"),
        calls(("o", "get_weather", {"city": "Oslo"})),
        result("o", '{"temp": 2}'),
        user("Time there?"),
        calls(("t", "get_time", {"tz": "CET"})),
        result("t", "09:00"),
        user("Forecast?"),
        calls(("f", "get_forecast", {"city": "Oslo"})),
        result("f", '{"rain": true}'),
        say("Rain."),
    ),
    # 6 errors at turn 1 (the boom stage raises), 2 turns
    chat(
        "boom",
        user("Weather in Bern?"),
        calls(("b", "get_weather", {"city": "Bern"})),
        result("b", '{"temp": 5}'),
        user("Time?"),
        calls(("t", "get_time", {"tz": "CET"})),
    ),
    # 7 a single-turn record: not a conversation, in none of the counts below
    chat("single", user("Weather in Paris?"), calls(("x", "get_weather", {"city": "Paris"}))),
]
STAGES = """
[[stages]]
name = "conversation"
[[stages]]
name = "classification"
[[stages]]
name = "query_tool"
on_fail = "{on_fail}"
[[stages]]
name = "function_params"
[[stages]]
name = "format"
[[stages]]
name = "boom"
"""


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("chats")
    with registered(BoomPlugin(), "boom"):
        out = run_chats(ROWS, folder, STAGES.replace("{on_fail}", "truncate"))
    assert [r["id"] for r in out["kept"]] == ["paris-ok", "tool-errors", "cut-at-1", "days-fixed", "single"]
    assert [r["id"] for r in out["discarded"]] == ["no-result", "no-days-at-2"]
    assert [r["id"] for r in out["errors"]] == ["boom"]
    return folder / "run"


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


# Verdicts on conversation turns, counted by hand from the rows above: (passed, regenerated, discarded).
# Turn 0: every conversation but no-result passes every stage; no-result fails the conversation stage.
# Turn 1: paris-ok's text ends at classification; cut-at-1 fails query_tool; days-fixed is repaired by
# function_params and checked again by every stage before it (its calls changed: conversation, classification,
# query_tool) and function_params; boom breaks in the boom stage (no verdict). Turn 2: tool-errors' and
# days-fixed's texts end at classification; no-days-at-2 fails function_params.
PER_TURN = {  # passed / regenerated / discarded / truncated (cut-at-1's turn 1: a cut, not a discard)
    "conversation": [(6, 0, 1, 0), (7, 0, 0, 0), (3, 0, 0, 0)],
    "classification": [(6, 0, 0, 0), (7, 0, 0, 0), (3, 0, 0, 0)],
    "query_tool": [(6, 0, 0, 0), (5, 0, 0, 1), (1, 0, 0, 0)],
    "function_params": [(6, 0, 0, 0), (4, 1, 0, 0), (0, 0, 1, 0)],
    "format": [(6, 0, 0, 0), (4, 0, 0, 0), (0, 0, 0, 0)],
    "boom": [(6, 0, 0, 0), (3, 0, 0, 0), (0, 0, 0, 0)],
}


def test_report_counts_turns_verdicts_cuts_and_tool_errors(run_dir):
    result = invoke("report", run_dir)
    assert result.exit_code == 0, result.output
    numbers = Numbers()
    numbers.feed((run_dir / "report.html").read_text())
    got = numbers.values
    assert got["conv.conversations"] == "7"
    outcomes = {k: int(got[f"conv.outcomes.{k}"]) for k in ("kept", "truncated", "discarded", "errors")}
    assert outcomes == {"kept": 4, "truncated": 1, "discarded": 2, "errors": 1}
    turns = {(t, k): int(got[f"conv.turns.{t}.{k}"]) for t in "1234" for k in ("kept", "discarded", "errors")}
    assert {key: n for key, n in turns.items() if n} == {
        ("1", "kept"): 1,  # cut-at-1, as kept
        ("2", "kept"): 1,
        ("2", "discarded"): 1,
        ("2", "errors"): 1,
        ("3", "kept"): 2,
        ("4", "discarded"): 1,
    }
    for stage, per_turn in PER_TURN.items():
        for turn, counts in enumerate(per_turn):
            verdicts = ("passed", "regenerated", "discarded", "truncated")
            cell = tuple(int(got[f"conv.verdicts.{stage}.{turn}.{v}"]) for v in verdicts)
            assert cell == counts, (stage, turn)
    assert "conv.verdicts.conversation.3.passed" not in got
    assert got["conv.left.truncated.query_tool.unknown_function.1"] == "1"
    assert got["conv.left.discarded.conversation.missing_result.0"] == "1"
    assert got["conv.left.discarded.function_params.missing_required.2"] == "1"
    assert got["conv.left.errors.boom.-.1"] == "1"
    # Kept tool results: paris-ok 1, tool-errors 3 (2 errors), days-fixed 2; cut-at-1's was cut off.
    assert (got["conv.tool_results"], got["conv.tool_errors"], got["conv.conversations_with_errors"]) == ("6", "2", "1")
    assert (got["conv.tool_results.get_weather"], got["conv.tool_errors.get_weather"]) == ("4", "2")
    assert (got["conv.tool_results.get_time"], got["conv.tool_errors.get_time"]) == ("1", "0")

    md = (run_dir / "report.md").read_text()
    assert "| conversation | 6 / 0 / 1 / 0 | 7 / 0 / 0 / 0 | 3 / 0 / 0 / 0 |" in md
    assert "| query_tool | 6 / 0 / 0 / 0 | 5 / 0 / 0 / 1 | 1 / 0 / 0 / 0 |" in md
    assert "| format | 6 / 0 / 0 / 0 | 4 / 0 / 0 / 0 | - |" in md
    assert "| truncated | query_tool | unknown_function | 1 | 1 |" in md
    assert '| get_weather | 4 | 2 | {"error": "city not found"} |' in md
    assert "7 conversations: 4 kept (1 of them truncated" in md
    terminal = " ".join(result.output.split())
    assert "Verdicts per turn" in terminal and "2 of 6 are error messages" in terminal
    assert "truncated │ query_tool │ unknown_function │ 1 │ 1" in terminal


def test_the_kept_facts_count_every_assistant_turn(run_dir):
    """The kept set's facts (CoTs, lengths, calls per answer, functions) counted each conversation's last turn
    alone: a conversation set that ends in text replies had "top function: -" and no calls per record."""
    assert invoke("report", run_dir).exit_code == 0
    numbers = Numbers()
    numbers.feed((run_dir / "report.html").read_text())
    got = numbers.values
    # kept answers by hand: paris-ok call, text; tool-errors 2 calls, call, text; cut-at-1 call;
    # days-fixed call, call, text; single call
    assert (got["facts.kept"], got["facts.answers"], got["facts.text_answers"]) == ("5", "10", "3")
    assert (got["calls.1"], got["calls.2"]) == ("6", "1")
    assert (got["functions.get_weather"], got["functions.get_time"], got["functions.get_forecast"]) == ("6", "1", "1")


def test_verdicts_per_turn_add_up_to_summary_json(run_dir):
    """summary.json counts every verdict; the per-turn table those on conversation turns: the single-turn
    record adds one pass to each stage after the conversation stage (which does not check it)."""
    summary = json.loads((run_dir / "summary.json").read_text())
    for stage, per_turn in PER_TURN.items():
        single = 0 if stage == "conversation" else 1
        counts = summary["stages"][stage]
        assert counts["passed"] == sum(t[0] for t in per_turn) + single, stage
        assert counts["regenerated"] == sum(t[1] for t in per_turn), stage
        assert counts["discarded"] == sum(t[2] for t in per_turn), stage
        assert counts["truncated"] == sum(t[3] for t in per_turn), stage  # kept up to the turn before
    truncated = {stage: c["truncated"] for stage, c in summary["stages"].items() if c["truncated"]}
    assert truncated == {"query_tool": 1}, "the one conversation cut at a failing turn is kept, not discarded"
    assert summary["stages"]["query_tool"]["reasons"]["truncate"] == {"unknown_function": 1}


@pytest.mark.parametrize(
    "content",
    [
        '{"error": "city not found"}',
        '{"Error": {"code": 404}}',
        '{"errors": ["bad city"], "data": null}',
        '{"status": "error", "message": "quota"}',
        "Error: timeout",
        "  error 503 from upstream",
        "Exception in thread main",
        TRACEBACK,
        "ValueError: days must be positive",
        "requests.exceptions.HTTPError: 500",
        '"Error: quoted as a JSON string"',
    ],
)
def test_error_results(content):
    assert is_error_result(content)


@pytest.mark.parametrize(
    "content",
    [
        '{"temp": 20}',
        '{"error": null, "temp": 3}',
        '{"error": 0}',
        '{"errors": [], "items": [1]}',
        '{"status": "ok"}',
        '{"result": {"error": "nested errors are the tool\'s own data"}}',
        "12:00",
        "Errors: none today",
        "No error",
        "[1, 2]",
        "",
        None,
        "{not json",
    ],
)
def test_results_that_are_not_errors(content):
    assert not is_error_result(content)


def test_audit_shows_the_conversation_and_filters_by_turn(run_dir):
    result = invoke("audit", run_dir, "--turn", "2")
    assert result.exit_code == 0, result.output
    out = result.output
    assert "no-days-at-2" in out and "no-result" not in out
    assert "function_params / missing_required at turn 2" in out
    rows = [" ".join(line.split()) for line in out.splitlines()]
    assert 'assistant 2 ✗ [get_forecast(city="Oslo")] ← failed here' in rows
    assert 'assistant 1 [get_time(tz="CET")]' in rows and "tool t get_time: 09:00" in rows
    trail = [r for r in rows if r.startswith("2 function_params")]
    assert trail == [
        "2 function_params discard missing_required rules 1 get_forecast: required parameter(s) days missing"
    ]

    lines = invoke("audit", run_dir, "--turn", "0", "--json").output.splitlines()
    assert [json.loads(line)["id"] for line in lines] == ["no-result"]
    missing = invoke("audit", run_dir, "--turn", "1")
    assert missing.exit_code == 1
    assert (
        "there are: --stage conversation --reason missing_result --turn 0 (1), "
        "--stage function_params --reason missing_required --turn 2 (1)" in " ".join(missing.output.split())
    )


def test_review_view_shows_turns_the_cut_and_each_turns_repair(run_dir):
    kept = {r["id"]: r for r in map(json.loads, (run_dir / "kept.jsonl").read_text().splitlines())}
    cut = record_view(kept["cut-at-1"], "kept")
    assert [(m["role"], m["turn"]) for m in cut["conversation"]] == [("user", None), ("assistant", 0), ("cut", 1)]
    assert cut["failed"]["truncated"] and (cut["failed"]["stage"], cut["failed"]["turn"]) == ("query_tool", 1)
    assert cut["failed"]["message"].endswith("(conversation kept up to turn 0)")
    fixed = record_view(kept["days-fixed"], "kept")
    assert fixed["failed"] is None and not any(m["failed"] for m in fixed["conversation"])
    # The repair of turn 1 beside what turn 1 ended with (not the last turn's text).
    [regen] = fixed["regenerations"]
    assert (regen["turn"], regen["rejected"], regen["regenerated"]) == (
        1,
        '[get_forecast(city="Oslo", days="5")]',
        '[get_forecast(city="Oslo", days=5)]',
    )
    errors = record_view(kept["tool-errors"], "kept")
    tools = [(m["tool"], m["call_id"], m["error"]) for m in errors["conversation"] if m["role"] == "tool"]
    assert tools == [("get_weather", "a", True), ("get_time", "b", False), ("get_weather", "c", True)]
    assert record_view(kept["single"], "kept")["conversation"] is None


def test_compare_matches_conversations_by_index(run_dir, tmp_path):
    """The same conversations discarded whole instead of truncated (and without the boom stage)."""
    stages = STAGES.replace("{on_fail}", "discard").split('[[stages]]\nname = "boom"')[0]
    run_chats(ROWS, tmp_path, stages)
    result = invoke("compare", run_dir, tmp_path / "run", "--html", tmp_path / "compare.html")
    assert result.exit_code == 0, result.output
    out = " ".join(result.output.split())
    assert "8 records in both runs" in out and "Records they disagree on (2" in out
    assert "2 │ cut-at-1 │ kept │ discarded at query_tool unknown_function" in out
    assert "6 │ boom │ errors at boom │ kept" in out
    assert "records are matched by position" in out  # two input files with the same lines


def test_a_run_without_conversations_has_no_conversation_section(tmp_path):
    run_chats(
        [chat("single", user("Weather in Paris?"), calls(("x", "get_weather", {"city": "Paris"})), tools=[WEATHER])],
        tmp_path,
    )
    result = invoke("report", tmp_path / "run")
    assert result.exit_code == 0, result.output
    assert "Conversations" not in (tmp_path / "run" / "report.md").read_text()
    assert "conv." not in (tmp_path / "run" / "report.html").read_text()
    assert "Verdicts per turn" not in result.output


def test_audit_of_a_run_that_discarded_nothing_says_where_its_records_went(tmp_path):
    # It exited 1 with "no discarded record matches; there are: none", also for a run whose records all
    # waited in errors.jsonl for refine retry.
    boom = {**ROWS[0], "id": "boom"}  # two assistant turns: Boom breaks on its turn 1
    with registered(BoomPlugin(), "boom"):
        run_chats([ROWS[0], boom], tmp_path, '[[stages]]\nname = "boom"\n')
    said = CliRunner().invoke(main, ["audit", str(tmp_path / "run")])
    assert said.exit_code == 0, said.output
    assert f"no record of {tmp_path / 'run'} was discarded: 1 kept, 0 quarantined, 1 errors" in said.output
    assert f"fix the cause, then `refine retry {tmp_path / 'run'}`" in said.output
    assert CliRunner().invoke(main, ["audit", str(tmp_path / "run"), "--json"]).stdout == ""
