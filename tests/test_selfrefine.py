"""Self-refinement rounds against the local server playing the model, with the hard-data pool."""

import json

import pytest
from click.testing import CliRunner

from funreason_refine.cli import main
from funreason_refine.config import load_pipeline
from funreason_refine.errors import ConfigError
from funreason_refine.selfrefine import selfrefine
from funreason_refine.testing.fake_llm import FakeLLM
from tests.conftest import read_jsonl, write_jsonl, xlam_row

WEATHER = {
    "name": "get_weather",
    "description": "Weather.",
    "parameters": {"city": {"type": "str", "description": "City"}},
}
QUERIES = [
    xlam_row("A", query="Weather in Paris?", tools=[WEATHER]),
    xlam_row("B", query="Weather in Oslo?", tools=[WEATHER]),
    xlam_row("C", query="Tell me a joke", tools=[WEATHER]),
]


@pytest.fixture(autouse=True)
def key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")


def pipeline(tmp_path, server):
    write_jsonl(tmp_path / "queries.jsonl", QUERIES)
    (tmp_path / "p.toml").write_text(f'''
[input]
path = "queries.jsonl"
[output]
dir = "sr"
[source]
sample_from = "openai/policy"
api_base = "{server.api_base}"
samples = 2
[[stages]]
name = "classification"
text_answers = "discard"
[[stages]]
name = "query_tool"
on_fail = "hard_pool"
[[stages]]
name = "cot"
[[stages]]
name = "function_params"
[[stages]]
name = "format"
''')
    return tmp_path / "p.toml"


def test_two_rounds_with_the_hard_pool(tmp_path):
    state = {"round": 1}

    def model(r):
        prompt = r.prompt
        if "Paris" in prompt:  # a QwQ-style sampler: its template opened <think>, the text has a lone </think>
            return 'Paris weather: get_weather.\n</think>\n\n[get_weather(city="Paris")]'
        if "Oslo" in prompt:
            name = "get_temperature" if state["round"] == 1 else "get_weather"  # learns in round 2
            return f'<think>Oslo: {name}.</think>\n\n[{name}(city="Oslo")]'
        return "Why did the cloud stay home? It was under the weather."

    with FakeLLM(model) as server:
        path = pipeline(tmp_path, server)
        loaded = load_pipeline(path)
        first = selfrefine(loaded, rounds=1)
        state["round"] = 2
        asked_before = len(server.requests)
        summaries = selfrefine(loaded, rounds=2)  # round 1 is resumed from its folder, round 2 is new
        round2_prompts = [r.prompt for r in server.requests[asked_before:]]
    assert first.rounds[0].queries_with_a_survivor == 1 and first.rounds[0].pool_after == 1
    r1, r2 = summaries.rounds
    assert (r1.queries_sampled, r1.candidates, r1.kept, r1.pool_after) == (3, 6, 2, 1)
    assert (r2.queries_sampled, r2.candidates, r2.kept, r2.pool_after) == (1, 2, 2, 0)
    assert round2_prompts and all("Oslo" in p for p in round2_prompts), "round 2 samples only the hard pool"
    kept1 = read_jsonl(tmp_path / "sr" / "round-1" / "kept.jsonl")
    assert [k["id"] for k in kept1] == ["A#r1s0", "A#r1s1"]
    assert kept1[0]["meta"] == {"round": 1, "sample": 0, "model": "openai/policy", "query_id": "A"}
    assert kept1[0]["target"] == '<think>Paris weather: get_weather.</think>\n\n[get_weather(city="Paris")]'
    hard1 = read_jsonl(tmp_path / "sr" / "round-1" / "hard.jsonl")
    assert {h["meta"]["query_id"] for h in hard1} == {"B"} and hard1[0]["reason"] == "unknown_function"
    joke = read_jsonl(tmp_path / "sr" / "round-1" / "discarded.jsonl")
    assert {d["reason"] for d in joke} == {"text_answer"}, "not a hard-pool failure: C leaves for good"
    kept2 = read_jsonl(tmp_path / "sr" / "round-2" / "kept.jsonl")
    assert [k["meta"]["query_id"] for k in kept2] == ["B", "B"]
    summary = json.loads((tmp_path / "sr" / "round-1" / "summary.json").read_text())
    assert summary["outcomes"] == {"kept": 2, "discarded": 2, "quarantined": 0, "errors": 0, "hard": 2}
    saved = json.loads((tmp_path / "sr" / "selfrefine.json").read_text())
    assert [r["queries_with_a_survivor"] for r in saved["rounds"]] == [1, 1]


def test_samples_of_one_prompt_are_separate_calls_and_the_cli_prints_rounds(tmp_path):
    with FakeLLM(lambda r: '[get_weather(city="Paris")]') as server:
        result = CliRunner().invoke(main, ["selfrefine", str(pipeline(tmp_path, server)), "--rounds", "1"])
        assert result.exit_code == 0, result.output
        assert len(server.requests) == 6, "two samples for each of three queries, none answered from the cache"
    assert "Self-refinement of queries.jsonl with openai/policy" in result.output


def test_selfrefine_without_a_source_says_what_to_add(tmp_path):
    write_jsonl(tmp_path / "q.jsonl", QUERIES)
    (tmp_path / "p.toml").write_text('[input]\npath = "q.jsonl"\n[output]\ndir = "sr"\n')
    with pytest.raises(ConfigError, match="sample_from"):
        selfrefine(load_pipeline(tmp_path / "p.toml"), rounds=1)


def test_a_query_whose_prompt_is_over_the_sources_max_prompt_tokens_is_not_sampled_and_says_why(tmp_path):
    long = xlam_row("D", query="Weather in Paris? " + "Please be quick. " * 200, tools=[WEATHER])
    with FakeLLM(lambda r: '[get_weather(city="Paris")]') as server:
        path = pipeline(tmp_path, server)
        write_jsonl(tmp_path / "queries.jsonl", [*QUERIES, long])
        path.write_text(path.read_text().replace("samples = 2", "samples = 2\nmax_prompt_tokens = 600"))
        (summary,) = selfrefine(load_pipeline(path), rounds=1).rounds
    assert summary.sampling_errors == 2 and len(server.requests) == 6, "its two samples were never asked"
    errors = list((tmp_path / "sr").rglob("sampling_errors.jsonl"))
    rows = read_jsonl(errors[0])
    assert {r["query_id"] for r in rows} == {"D"}
    assert "the prompt for openai/policy has" in rows[0]["error"] and "max_prompt_tokens = 600" in rows[0]["error"]


def test_unreadable_lines_are_counted_and_named_and_repeated_ids_refused(tmp_path):
    with FakeLLM(lambda r: '[get_weather(city="Paris")]') as server:
        path = pipeline(tmp_path, server)
        queries = tmp_path / "queries.jsonl"
        queries.write_text(queries.read_text() + "{not json\n")
        result = CliRunner().invoke(main, ["selfrefine", str(path), "--rounds", "1"])
        assert result.exit_code == 0, result.output
        said = " ".join(result.output.split())
        assert "1 input line(s) could not be read as records and were not sampled (the first:" in said
        assert "queries.jsonl:4: not JSON" in said
        assert json.loads((tmp_path / "sr" / "selfrefine.json").read_text())["unreadable"] == 1
        write_jsonl(queries, [*QUERIES, xlam_row("A", query="Weather in Rome?", tools=[WEATHER])])
        refused = CliRunner().invoke(main, ["selfrefine", str(path), "--rounds", "1"])
    assert refused.exit_code == 1
    assert "1 id(s) of the input name more than one query: 'A' (lines 1, 4). Give each query its own id" in " ".join(
        refused.output.split()
    )


def judged_pipeline(tmp_path, server, on_fail):
    write_jsonl(tmp_path / "queries.jsonl", QUERIES[:2])
    (tmp_path / "p.toml").write_text(f'''
[input]
path = "queries.jsonl"
[output]
dir = "sr"
[source]
sample_from = "openai/policy"
api_base = "{server.api_base}"
samples = 2
[judge]
model = "openai/judge"
api_base = "{server.api_base}"
[[stages]]
name = "classification"
judge = false
[[stages]]
name = "function_params"
on_fail = "{on_fail}"
''')
    return tmp_path / "p.toml"


@pytest.mark.parametrize("on_fail", ["hard_pool", "discard"])
def test_candidates_without_a_verdict_are_counted_their_query_held_for_refine_retry_and_status_is_3(tmp_path, on_fail):
    judge = {"fails": True}

    def model(r):
        city = "Paris" if "Paris" in json.dumps(r.messages) else "Oslo"  # the judge's example may precede its question
        if r.model == "policy":
            return f'<think>get_weather for {city}.</think>\n\n[get_weather(city="{city}")]'
        no_verdict = judge["fails"] and city == "Paris"
        return "Looks fine." if no_verdict else "<judge>True</judge><reason>ok</reason>"

    with FakeLLM(model) as server:
        path = judged_pipeline(tmp_path, server, on_fail)
        first = CliRunner().invoke(main, ["selfrefine", str(path), "--rounds", "2"])
        paris_samples = [r for r in server.requests if r.model == "policy" and "Paris" in r.prompt]  # the user query
        judge["fails"] = False
        retried = CliRunner().invoke(main, ["retry", str(tmp_path / "sr" / "round-1")])
        again = CliRunner().invoke(main, ["selfrefine", str(path), "--rounds", "2"])
    said = " ".join(first.output.split())
    assert first.exit_code == 3, first.output
    assert len(paris_samples) == 2, "held for a retry: not sampled and paid for again in round 2"
    saved = json.loads((tmp_path / "sr" / "selfrefine.json").read_text())
    assert "2 candidate(s) got no verdict" in said and "refine retry" in said and "round-1" in said
    assert "1 query waits for `refine retry`" in said, "not said to have left for good"
    assert "function_params 100% (2 without a verdict)" in said
    assert retried.exit_code == 0, retried.output
    assert again.exit_code == 0, again.output
    saved = json.loads((tmp_path / "sr" / "selfrefine.json").read_text())
    assert (saved["errors"], saved["kept"], saved["rounds"][0]["queries_held"]) == (0, 4, 0)


def test_selfrefine_json_counts_the_rounds_errors(tmp_path):
    def model(r):
        if r.model == "policy":
            return '<think>get_weather.</think>\n\n[get_weather(city="Paris")]'
        return "Looks fine." if "Oslo" in json.dumps(r.messages) else "<judge>True</judge><reason>ok</reason>"

    with FakeLLM(model) as server:
        summary = selfrefine(load_pipeline(judged_pipeline(tmp_path, server, "hard_pool")), rounds=2)
    (r1,) = summary.rounds
    assert (summary.errors, r1.errors, r1.errors_per_stage, r1.kept, r1.queries_held, r1.pool_after) == (
        2,
        2,
        {"function_params": 2},
        2,
        1,
        0,
    )
    assert summary.stopped_by == "pool" and "1 query waits for `refine retry`" in summary.stopped


def test_selfrefine_goes_on_when_its_pipeline_is_named_from_another_folder(tmp_path, monkeypatch):
    # A round's configuration held its candidates' path as spelled from the folder the command ran in: the same
    # command from elsewhere (or with the pipeline's absolute path) was refused as another configuration.
    model = '<think>Paris: get_weather.</think>\n\n[get_weather(city="Paris")]'
    with FakeLLM(lambda r: model) as server:
        pipeline(tmp_path, server)
        monkeypatch.chdir(tmp_path)
        first = CliRunner().invoke(main, ["selfrefine", "p.toml", "--rounds", "1"])
        assert first.exit_code == 0, first.output
        monkeypatch.chdir(tmp_path.parent)
        again = CliRunner().invoke(main, ["selfrefine", str(tmp_path / "p.toml"), "--rounds", "1"])
    assert again.exit_code == 0 and "another pipeline configuration" not in again.output, again.output


def test_a_changed_pipeline_is_refused_with_selfrefines_own_remedies(tmp_path, monkeypatch):
    # The refusal offered refine run's --accept-changes and `refine run --fresh`: selfrefine has neither.
    model = '<think>Paris: get_weather.</think>\n\n[get_weather(city="Paris")]'
    with FakeLLM(lambda r: model) as server:
        toml = pipeline(tmp_path, server)
        monkeypatch.chdir(tmp_path)
        assert CliRunner().invoke(main, ["selfrefine", "p.toml", "--rounds", "1"]).exit_code == 0
        toml.write_text(toml.read_text().replace('on_fail = "hard_pool"', 'on_fail = "discard"'))
        again = CliRunner().invoke(main, ["selfrefine", "p.toml", "--rounds", "1"])
    assert again.exit_code == 1, again.output
    assert 'stages[1].on_fail: "hard_pool" -> "discard"' in again.output
    assert "--accept-changes" not in again.output and "--fresh" not in again.output
    assert "put p.toml back as it was" in again.output and "delete sr" in again.output


def test_a_sample_cut_off_by_the_token_limit_is_never_a_candidate(tmp_path):
    from funreason_refine.testing.fake_llm import Reply

    def script(r):
        if "joke" in r.prompt:  # a text reply the token limit cut off mid-sentence
            return Reply(text="Why did the weather forecaster bring a", finish_reason="length")
        return '[get_weather(city="Paris")]'

    with FakeLLM(script) as server:
        path = pipeline(tmp_path, server)
        path.write_text(path.read_text().replace('text_answers = "discard"', 'text_answers = "keep"'))
        (summary,) = selfrefine(load_pipeline(path), rounds=1).rounds
    candidates = [row for f in (tmp_path / "sr").rglob("candidates.jsonl") for row in read_jsonl(f)]
    assert all(row["meta"]["query_id"] != "C" for row in candidates), "a cut-off answer went in as a candidate"
    assert summary.sampling_errors == 2
    rows = read_jsonl(next((tmp_path / "sr").rglob("sampling_errors.jsonl")))
    assert {r["query_id"] for r in rows} == {"C"} and "cut off by the token limit" in rows[0]["error"]
