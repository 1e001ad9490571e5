import json
import shutil
import subprocess
from html import unescape
from html.parser import HTMLParser

import pytest
from click.testing import CliRunner

from funreason_refine.cli import main
from funreason_refine.config import load_pipeline
from funreason_refine.engine import run_pipeline
from funreason_refine.report.compare import cohen_kappa
from funreason_refine.report.dataset import KINDS
from funreason_refine.testing import run_rows
from tests.conftest import CHROMIUM_QUIET, QUICKSTART, read_jsonl, xlam_row


class Numbers(HTMLParser):
    """Every element with a data-key attribute: key -> its text."""

    def __init__(self):
        super().__init__()
        self.values, self._key, self.tags = {}, None, set()

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        self._key = dict(attrs).get("data-key", self._key if tag == "span" and self._key else None)
        for name, value in attrs:
            if name in ("src", "href") and value and "://" in value:
                raise AssertionError(f"external resource {value}")

    def handle_data(self, data):
        if self._key:
            self.values[self._key] = data.strip()
            self._key = None


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("qs") / "run"
    run_pipeline(load_pipeline(QUICKSTART / "pipeline.toml", out))
    return out


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_report_numbers_in_the_html_equal_summary_json(run_dir):
    result = invoke("report", run_dir)
    assert result.exit_code == 0, result.output
    summary = json.loads((run_dir / "summary.json").read_text())
    parser = Numbers()
    parser.feed((run_dir / "report.html").read_text())
    got = parser.values
    assert "script" not in parser.tags
    assert int(got["input.records"]) == summary["input"]["records"] == 60
    for kind, n in summary["outcomes"].items():
        assert int(got[f"outcomes.{kind}"]) == n
    assert int(got["stages.function_params.truncated"]) == 1, "the conversation kept up to its failing turn"
    for stage, counts in summary["stages"].items():
        for key in ("passed", "regenerated", "discarded", "truncated"):
            assert int(got[f"stages.{stage}.{key}"]) == counts[key], (stage, key)
        for reason, n in counts["records_discarded"].items():
            assert int(got[f"reasons.{stage}.{reason}"]) == n
    assert int(got["funnel.kept"]) == summary["outcomes"]["kept"]
    assert int(got["funnel.readable"]) == 60 - summary["outcomes"]["quarantined"]
    assert int(got["regeneration.function_params.fixed"]) == 2
    assert int(got["facts.kept"]) == summary["outcomes"]["kept"]
    dataset = summary["dataset"]  # the quickstart shows each dataset audit
    assert int(got["dataset.exact"]) == dataset["duplicates"]["exact"] == 1
    assert int(got["dataset.near"]) == dataset["duplicates"]["near"] == 1
    assert int(got["dataset.contaminated"]) == dataset["contamination"]["records"] == 1
    assert int(got["dataset.dropped"]) == 2 and int(got["reasons.dataset.duplicate"]) == 1
    for kind in ("text", "no_call", "one_call", "parallel", "several_functions"):
        assert int(got[f"callmix.{KINDS[kind]}"]) == dataset["call_mix"][kind] >= 1
    html = (run_dir / "report.html").read_text()
    assert '[get_forecast(city="Rome", days="5")]' in unescape(html), "the rejected answer beside the regenerated one"
    md = (run_dir / "report.md").read_text()
    # the conversation cut before its failing turn is kept: a truncation, not a discard
    assert "| function_params | 36 | 2 | 6 | 1 | 0 | 2 / 0 |" in md
    assert "| exact duplicates | 1 | 1 |" in md and "item eval_0, dropped" in md
    assert "near (similarity 0.91) of record 7 (ok-search): Find wireless headphones" in md
    assert "Verdicts per stage" in result.output and "Funnel" in result.output
    # The quickstart's three conversations: conv-oslo kept, conv-cut-at-turn-1 truncated, conv-missing-result discarded
    assert (
        "3 conversations: 2 kept (1 of them truncated: kept up to the turn before the one that failed), 1 discarded"
        in md
    )
    assert "Verdicts per turn" in result.output


@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Debian's chromium (CI installs it)")
def test_the_html_report_renders_in_headless_chromium(run_dir, tmp_path):
    invoke("report", run_dir)
    png = tmp_path / "report.png"
    subprocess.run(
        [
            "chromium",
            "--headless",
            *CHROMIUM_QUIET,
            f"--user-data-dir={tmp_path / 'profile'}",
            "--window-size=1200,2000",
            f"--screenshot={png}",
            (run_dir / "report.html").as_uri(),
        ],
        capture_output=True,
        timeout=120,
        check=True,
    )
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000


def test_report_of_a_folder_that_is_not_a_run(tmp_path):
    result = invoke("report", tmp_path)
    assert result.exit_code == 1 and "is not a run folder: it has no summary.json" in result.output


def test_audit_filters_and_prints_the_trail(run_dir):
    result = invoke("audit", run_dir, "--stage", "function_params", "--reason", "wrong_type")
    assert result.exit_code == 0
    assert result.output.count("function_params / wrong_type") == 2
    assert "'a few' is not of type" in result.output or '"a few" is not of type' in result.output
    lines = invoke("audit", run_dir, "--stage", "cot", "--json", "--limit", "2").stdout.splitlines()
    records = [json.loads(line) for line in lines]
    assert len(records) == 2 and all(r["stage"] == "cot" and r["trail"] for r in records)
    missing = invoke("audit", run_dir, "--reason", "no_such_reason")
    assert missing.exit_code == 1 and "--stage cot --reason empty_cot (1)" in missing.output


def test_audit_says_how_many_more_match_than_it_shows(run_dir):
    total = len((run_dir / "discarded.jsonl").read_text(encoding="utf-8").splitlines())
    note = f"2 of {total} matching records shown, {total - 2} left out: --limit {total} shows them all"
    for extra in ([], ["--json"]):
        result = invoke("audit", run_dir, "--limit", "2", *extra)
        assert result.exit_code == 0, result.output
        assert note in " ".join(result.stderr.split()) and "left out" not in result.stdout
    assert [json.loads(line)["index"] for line in result.stdout.splitlines()] == [
        r["index"] for r in map(json.loads, (run_dir / "discarded.jsonl").read_text(encoding="utf-8").splitlines()[:2])
    ]
    everything = invoke("audit", run_dir, "--limit", str(total), "--json")
    assert len(everything.stdout.splitlines()) == total and everything.stderr == ""


def test_audit_to_a_pipe_is_neither_padded_nor_wrapped(tmp_path):
    url = "https://example.com/" + "a/" * 1500
    rows = [xlam_row("long", query=f"Weather at {url}?", answers=[{"name": "get_time", "arguments": {}}])]
    assert [r["id"] for r in run_rows(rows, tmp_path)["discarded"]] == ["long"]
    result = invoke("audit", tmp_path / "run")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert f"query  Weather at {url}?" in lines, "the query whole, on one line"
    assert lines[0] == "── record 0 · id long · line 1"
    assert len(result.stdout) < len(url) + 1500, "no line padded to the 10,000 columns a pipe is given"


def test_audit_shows_lone_surrogates_as_escapes(run_dir):
    result = invoke("audit", run_dir, "--reason", "round_trip_mismatch")
    assert result.exit_code == 0 and "\\ud800" in result.output


def test_cohen_kappa():
    assert cohen_kappa([True, True, False, False], [True, False, False, False]) == 0.5
    assert cohen_kappa([True, False], [True, False]) == 1.0
    assert cohen_kappa([True, True], [True, True]) is None


def test_compare_two_runs_of_the_same_input(run_dir, tmp_path):
    strict = tmp_path / "strict.toml"
    strict.write_text(
        (QUICKSTART / "pipeline.toml")
        .read_text()
        .replace("required = false", "required = true")
        .replace('path = "records.jsonl"', f'path = "{QUICKSTART / "records.jsonl"}"')
        .replace('"eval_set.json"', f'"{QUICKSTART / "eval_set.json"}"')
    )
    run_pipeline(load_pipeline(strict, tmp_path / "strict"))
    html = tmp_path / "compare.html"
    result = invoke("compare", run_dir, tmp_path / "strict", "--html", html)
    assert result.exit_code == 0, result.output
    parser = Numbers()
    parser.feed(html.read_text())
    assert parser.values["kappa.classification"] == "1.0" and parser.values["agreement.cot"] != "1.0"
    # The strict run also discards the kept records without a CoT (two: ok-no-cot, ok-no-cot-2) and the two
    # kept conversations, whose turns have none.
    assert "discarded at cot missing_cot" in result.output.replace("\n", " ") or "missing_cot" in result.output
    assert "Records they disagree on (7" in result.output
    assert "different inputs" not in result.output
    said = " ".join(result.output.split())
    assert "kappa on kept (of 54 decided by both)" in said, "the 6 quarantined in both are decided by neither"
    run_pipeline(load_pipeline(strict, tmp_path / "first-20"), limit=20)
    some = " ".join(invoke("compare", run_dir, tmp_path / "first-20", "--html", tmp_path / "c.html").output.split())
    assert "20 records in both runs; 40 in one run only, not compared" in some


def test_a_lone_surrogate_in_a_duplicate_example_is_written_as_its_escape(tmp_path):
    # The report's dataset section quotes the duplicate's query: report.md was left empty and report.html
    # unwritten, with a UnicodeEncodeError traceback.
    from tests.conftest import write_jsonl, xlam_row

    write_jsonl(
        tmp_path / "in.jsonl", [{**xlam_row(), "id": str(i), "query": "Weather in \ud800 Oslo?"} for i in (0, 1)]
    )
    (tmp_path / "p.toml").write_text(
        '[input]\npath = "in.jsonl"\n[output]\ndir = "run"\n[audit]\ndrop_duplicates = true\n'
    )
    run_pipeline(load_pipeline(tmp_path / "p.toml"))
    result = invoke("report", tmp_path / "run")
    assert result.exit_code == 0, result.output
    for page in ("report.md", "report.html"):
        assert "Weather in \\ud800 Oslo?" in (tmp_path / "run" / page).read_text(encoding="utf-8")


def test_a_run_that_finished_no_record_is_reported(tmp_path):
    # A run stopped by max_cost before its first record, or of an empty input: a polars traceback.
    (tmp_path / "in.jsonl").write_text("")
    (tmp_path / "p.toml").write_text('[input]\npath = "in.jsonl"\nformat = "xlam"\n[output]\ndir = "run"\n')
    run_pipeline(load_pipeline(tmp_path / "p.toml"))
    result = invoke("report", tmp_path / "run")
    assert result.exit_code == 0, result.output
    assert "records" in (tmp_path / "run" / "report.md").read_text(encoding="utf-8")


def test_a_filter_that_matches_nothing_lists_the_others_and_says_how_many_it_left_out(run_dir, monkeypatch):
    # The list was cut at 12 without a word: a reason past them seemed not to occur.
    import funreason_refine.report.audit as audit

    pairs = {(r["stage"], r["reason"]) for r in read_jsonl(run_dir / "discarded.jsonl")}
    monkeypatch.setattr(audit, "SHOWN_FILTERS", 3)
    result = invoke("audit", run_dir, "--reason", "no_such_reason")
    assert result.exit_code == 1 and result.output.count("--stage ") == 3, result.output
    assert f"and {len(pairs) - 3} more (`refine report` counts every stage and reason)" in result.output


def test_the_terminal_tables_print_a_lone_surrogate_as_its_escape(tmp_path):
    # report.md and report.html were written, then printing the tables failed with UnicodeEncodeError.
    from tests.chats import WEATHER, calls, chat, run_chats, say, user

    rows = [
        chat(
            "s1", user("Weather in Oslo \ud800?"), calls(("a", "get_weather", {"city": "Oslo\udc00"})), tools=[WEATHER]
        ),
        chat("s2", user("Weather in Oslo?"), calls(("a", "get_weather", {"city": "Oslo"})), tools=[WEATHER]),
        chat("s4\ud800", user("Weather in Oslo?"), say("Sunny \udfff"), tools=[]),  # a near duplicate, listed by id
    ]
    stages = '[[stages]]\nname = "classification"\ntext_answers = "keep"\n'
    run_chats(rows, tmp_path, "[audit]\ndrop_duplicates = true\nnear_duplicates = true\n" + stages)
    result = invoke("report", tmp_path / "run")
    assert result.exit_code == 0, result.output
    assert "s4\\ud800" in result.output


def test_audit_shows_the_hard_pool_beside_the_discarded(tmp_path):
    rows = [xlam_row("ok"), {**xlam_row("bad"), "answers": "[{"}, {**xlam_row("empty"), "answers": ""}]
    stages = '[[stages]]\nname = "classification"\non_fail = "hard_pool"\n[[stages]]\nname = "format"\n'
    run_rows(rows, tmp_path, stages)
    run = tmp_path / "run"
    assert {r["id"] for r in read_jsonl(run / "hard.jsonl")} == {"bad", "empty"}
    result = CliRunner().invoke(main, ["audit", str(run), "--json"])
    assert result.exit_code == 0, result.output
    shown = [json.loads(line) for line in result.output.splitlines() if line.startswith("{")]
    assert sorted(r["id"] for r in shown) == ["bad", "empty"] and {r["outcome"] for r in shown} == {"hard"}
    assert "(hard pool) classification / malformed_answer" in CliRunner().invoke(main, ["audit", str(run)]).output
    missing = CliRunner().invoke(main, ["audit", str(run), "--reason", "nope"])
    assert "--stage classification --reason malformed_answer (1)" in " ".join(missing.output.split())


def test_the_comparison_page_says_it_lists_only_the_first_disagreements_and_names_a_missing_judge(tmp_path):
    # It said "Records they disagree on (60)" above a table of 50 rows, and "judge None" for a run without one.
    rows = [xlam_row(f"r{i}", answers=[{"name": "get_time", "arguments": {}}]) for i in range(60)]
    run_rows(rows, tmp_path / "a")  # the rules discard every record at query_tool
    run_rows(rows, tmp_path / "b", stages_toml='[[stages]]\nname = "format"\n')  # and keep them here
    html = tmp_path / "compare.html"
    result = invoke("compare", tmp_path / "a" / "run", tmp_path / "b" / "run", "--html", html)
    assert result.exit_code == 0, result.output
    page = html.read_text(encoding="utf-8")
    assert "Records they disagree on (60, the first 50 listed)" in page
    assert page.count("discarded at query_tool unknown_function") == 50
    assert "judge None" not in page and "(judge none: no [judge] table)" in page
    assert "None" not in result.output


def test_the_report_says_why_a_judged_stage_passes_more_verdicts_than_it_had_records(tmp_path, fake_judge):
    # Two records through a judged stage: 4 passes (the rules' and the judge's for each), explained only as
    # "a record re-checked after a repair counts again", though nothing was repaired.
    server = fake_judge(lambda request: "<judge>True</judge>")
    judge = f'[judge]\nmodel = "openai/fake"\napi_base = "{server.api_base}"\nmax_retries = 0\n'
    run_rows([xlam_row("a"), xlam_row("b")], tmp_path, stages_toml='[[stages]]\nname = "query_tool"\n' + judge)
    result = invoke("report", tmp_path / "run")
    said = "at a judged stage the rules' pass and the judge's verdict count one each"
    assert said in " ".join(result.output.split())
    assert "| query_tool | 4 | 0 | 0 |" in (tmp_path / "run" / "report.md").read_text()
    assert said in (tmp_path / "run" / "report.md").read_text()
    assert said in unescape((tmp_path / "run" / "report.html").read_text())


def test_an_id_or_message_of_several_lines_stays_in_its_example_in_report_md(tmp_path, fake_judge):
    # The discarded example's id and message went into report.md as they were, unlike the query and the
    # judge's reasons: an id with a line break and "## b" after it became a heading of the report.
    reason = "The city is invented.\n\n# Reviewed by a person\n\n| all | right |"
    server = fake_judge(lambda request: f"<judge>False</judge><reason>{reason}</reason>")
    judge = f'[judge]\nmodel = "openai/fake"\napi_base = "{server.api_base}"\nmax_retries = 0\n'
    row = {**xlam_row("a"), "id": "a\n## b"}
    run_rows([row], tmp_path, stages_toml='[[stages]]\nname = "query_tool"\n' + judge)
    invoke("report", tmp_path / "run")
    markdown = (tmp_path / "run" / "report.md").read_text()
    headings = [line for line in markdown.splitlines() if line.startswith("#")]
    assert "# Reviewed by a person" not in headings and "## b" not in headings and "| all | right |" not in markdown
    assert "(record 0, id a ## b): The city is invented. # Reviewed by a person \\| all \\| right \\|\n" in markdown


def test_audit_shows_terminal_control_characters_in_record_text_and_does_not_send_them(tmp_path):
    # A query's escape sequences reached the terminal as they were: this one clears the screen, colours what
    # follows red and links "click" to another site; a carriage return writes over what the line said.
    query = "\x1b]8;;http://evil.example\x1b\\click\x1b]8;;\x1b\\ \x1b[2J\x1b[31mred\rfine"
    rows = [xlam_row("ok"), xlam_row("id\x1b[8m", query=query, answers=[{"name": "get_time", "arguments": {}}])]
    run_rows(rows, tmp_path)
    result = invoke("audit", tmp_path / "run")
    assert "\x1b" not in result.output and "\r" not in result.output
    assert "\\x1b]8;;http://evil.example\\x1b\\click" in result.output
    assert "\\x1b[2J\\x1b[31mred\\rfine" in result.output and "id\\x1b[8m" in result.output


def test_bidirectional_controls_in_record_text_are_shown_in_audit_and_on_the_report_page(tmp_path):
    # An RTL override (U+202E) reordered what followed it: "5 days" showed as "syad 5" to the person auditing.
    query = "Forecast for Oslo, \u202e5 days\u202c please"
    rows = [xlam_row("ok"), xlam_row("id\u2066", query=query, answers=[{"name": "get_time", "arguments": {}}])]
    run_rows(rows, tmp_path)
    audit = invoke("audit", tmp_path / "run")
    assert "\u202e" not in audit.output and "id\\u2066" in audit.output
    assert "\\u202e5 days\\u202c please" in audit.output
    assert invoke("report", tmp_path / "run").exit_code == 0
    page = (tmp_path / "run" / "report.html").read_text(encoding="utf-8")
    assert "\u202e" not in page and "\u2066" not in page and "\\u202e5 days" in page


def test_the_most_frequent_functions_count_the_answers_that_call_each(tmp_path):
    # Counted per call: an answer calling get_weather for two cities counted 2 in a column named "answers".
    paris, oslo = ({"name": "get_weather", "arguments": {"city": c}} for c in ("Paris", "Oslo"))
    rows = [xlam_row("two", query="Weather in Paris and Oslo?", answers=[paris, oslo]), xlam_row("one")]
    run_rows(rows, tmp_path, stages_toml='[[stages]]\nname = "format"\n')
    from funreason_refine.report.build import build_report
    from funreason_refine.report.data import load_run

    facts = build_report(load_run(tmp_path / "run"))["facts"]
    assert facts["answers"] == 2 and facts["top_functions"] == [{"function": "get_weather", "records": 2}]
    assert invoke("report", tmp_path / "run").exit_code == 0
    assert "| get_weather | 2 |" in (tmp_path / "run" / "report.md").read_text()


def test_audit_shows_control_characters_in_parameter_and_argument_names(tmp_path):
    # Names are dict keys, which were sent as they were: this parameter's name cleared the screen, the argument's
    # name reversed what followed it.
    tools = [{"name": "get_weather", "description": "W.", "parameters": {"ci\x1b[2Jty": {"type": "str"}}}]
    answer = [{"name": "get_weather", "arguments": {"ci\u202ety": "Paris"}}]
    run_rows([xlam_row("ok"), xlam_row("bad", tools=tools, answers=answer)], tmp_path)
    result = invoke("audit", tmp_path / "run")
    assert "bad" in result.output and "\x1b" not in result.output and "\u202e" not in result.output
    assert "get_weather(ci\\x1b[2Jty)" in result.output and "ci\\\\u202ety" in result.output


def test_direction_marks_of_ordinary_hebrew_and_arabic_text_are_shown_as_they_are():
    # U+200F (RLM) is common in Hebrew and Arabic text and reorders nothing but neutral characters: escaping it
    # cluttered every such record with \\u200f; the overrides and isolates that reorder text are still escaped.
    from funreason_refine.report.data import shown

    text = "\u05de\u05d6\u05d2 \u05d0\u05d5\u05d5\u05d9\u200f (Tel Aviv)\u061c \u200e"
    assert shown(text) == text
    assert shown("a\u202eb\u2067c") == "a\\u202eb\\u2067c"
