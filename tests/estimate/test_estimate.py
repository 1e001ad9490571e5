"""refine estimate: calls, tokens, cost and time of a judged run before it spends anything, checked against runs."""

import json

import pytest
from click.testing import CliRunner

from funreason_refine.cli import main
from funreason_refine.config import load_pipeline
from funreason_refine.engine import run_pipeline
from funreason_refine.errors import ConfigError
from funreason_refine.estimate import estimate
from funreason_refine.judge.library import load_litellm
from funreason_refine.testing.fake_llm import FakeLLM, Reply
from tests.chats import FORECAST as CHAT_FORECAST
from tests.chats import calls, chat, result, user
from tests.conftest import write_jsonl, xlam_row

STAGES = ("classification", "query_tool", "cot", "function_params", "format")
YES = "<judge>True</judge><reason>fine</reason>"
FORECAST = {
    "name": "get_forecast",
    "description": "Forecast for a city.",
    "parameters": {"city": {"type": "str", "description": "City"}, "days": {"type": "int", "description": "Days"}},
}
PRICES = "prices = {input_per_million = 1.0, output_per_million = 2.0}"


@pytest.fixture(autouse=True)
def key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")


def openai_usage(messages) -> int:
    """Prompt tokens as OpenAI documents counting them for its cl100k models: 3 a message, its role and
    content, and 3 for the reply; worked out here apart from the estimate's counter."""
    tokens = load_litellm().encode
    return 3 + sum(
        3 + len(tokens(model="gpt-4", text=m["role"])) + len(tokens(model="gpt-4", text=m["content"])) for m in messages
    )


def server_script(completion_tokens=7, writer=""):
    def script(request):
        text = writer if request.model == "writer" else YES
        return Reply(text, prompt_tokens=openai_usage(request.messages), completion_tokens=completion_tokens)

    return script


def forecast(rid, city="Oslo", days=3, cot=True, name="get_forecast"):
    return xlam_row(
        rid,
        query=f"Forecast for {city}, {days} days",
        tools=[FORECAST],
        answers=[{"name": name, "arguments": {"city": city, "days": days}}],
        cot=f"The user wants a forecast: {name} for {city}." if cot else None,
    )


MIXED = [
    forecast("kept"),
    forecast("repaired", city="Rome", days="3"),  # "3" -> 3: the answer changes, the CoT is judged again
    forecast("unknown function", city="Bern", name="get_weather"),  # discarded by the rules at query_tool
    forecast("no cot", city="Oslo", days=5, cot=False),  # the CoT judge has nothing to judge
    chat(
        "two turns",
        user("Forecast for Oslo, 2 days"),
        calls(("c1", "get_forecast", {"city": "Oslo", "days": 2})),
        result("c1", "sunny"),
        user("And for Rome, 4 days?"),
        calls(("c2", "get_forecast", {"city": "Rome", "days": 4})),
        tools=[CHAT_FORECAST],
    ),
]


def pipeline(tmp_path, rows, server, judge="", stages="", generate=""):
    tmp_path.mkdir(parents=True, exist_ok=True)
    write_jsonl(tmp_path / "in.jsonl", rows)
    path = tmp_path / "p.toml"
    path.write_text(
        '[input]\npath = "in.jsonl"\n[output]\ndir = "run"\n'
        f'[judge]\nmodel = "openai/fake"\napi_base = "{server.api_base}"\n{PRICES}\n{judge}\n{generate}\n{stages}'
    )
    return path


def test_the_estimate_is_what_a_run_on_the_fake_judge_server_then_makes_and_pays(tmp_path):
    with FakeLLM(server_script(completion_tokens=7)) as server:
        path = pipeline(tmp_path, MIXED, server)
        before = estimate(load_pipeline(path), output_tokens=7)
        assert server.requests == [], "an estimate sends nothing"
        judge = run_pipeline(load_pipeline(path)).summary.as_dict()["judge"]
        again = estimate(load_pipeline(path), output_tokens=7)
    run = judge["per_stage"]
    for name in STAGES:
        low = before.stages[name]
        assert (low.calls.low, low.output_tokens.low) == (run[name]["calls"], run[name]["completion_tokens"]), name
        # The server counts with its own tokenizer (tiktoken here, LiteLLM's Rust one in the estimate):
        # a token apart now and then.
        assert low.input_tokens.low == pytest.approx(run[name]["prompt_tokens"], rel=0.005), name
        assert low.cost_usd.low == pytest.approx(run[name]["cost_usd"], rel=0.005)
    assert before.total.cost_usd.low == pytest.approx(judge["cost_usd"], rel=0.005)
    # Two turns of the conversation; the repaired record judged again by every stage before function_params (its
    # answer changed: classification, query_tool, the CoT); no CoT judged for the record without one.
    assert {n: before.stages[n].calls.low for n in STAGES} == {
        "classification": 7, "query_tool": 6, "cot": 3, "function_params": 5, "format": 5,
    }  # fmt: skip
    # Every record at every stage: the one the rules discarded at query_tool asks there and after it too.
    assert {n: before.stages[n].calls.high for n in STAGES} == {
        "classification": 7, "query_tool": 7, "cot": 4, "function_params": 6, "format": 6,
    }  # fmt: skip
    assert before.records == before.sampled == 5
    # After the run every call is in the answer cache: a second run would pay for nothing.
    assert (again.total.calls.low, again.total.cached.low, again.total.cost_usd.low) == (0, 26, 0.0)


def test_a_seeded_sample_is_scaled_up_to_the_whole_input(tmp_path):
    rows = [forecast(str(i), city=f"City {i:02d}", days=i % 5 + 1) for i in range(24)]
    with FakeLLM(server_script()) as server:
        path = pipeline(tmp_path, rows, server)
        whole = estimate(load_pipeline(path), output_tokens=10)
        sampled = estimate(load_pipeline(path), sample=6, output_tokens=10)
        again = estimate(load_pipeline(path), sample=6, output_tokens=10)
    assert (sampled.records, sampled.sampled) == (24, 6)
    assert sampled.total.calls.low == whole.total.calls.low == 24 * 5
    assert sampled.total.input_tokens.low == pytest.approx(whole.total.input_tokens.low, rel=0.02)
    assert again.as_dict() == sampled.as_dict(), "the same sample every time"


def test_quarantined_lines_make_no_calls_and_are_not_scaled_up_as_records(tmp_path):
    rows = [forecast(str(i), city=f"City {i}") for i in range(4)] + [{"id": "no query"}]
    with FakeLLM(server_script()) as server:
        path = pipeline(tmp_path, rows, server)
        whole = estimate(load_pipeline(path), output_tokens=10)
        summary = run_pipeline(load_pipeline(path)).summary.as_dict()
    assert summary["outcomes"]["quarantined"] == 1
    assert (whole.records, whole.sampled) == (5, 5), "every line read: no sample to scale up"
    assert whole.total.calls.low == summary["judge"]["calls"] == 4 * 5


def test_probes_measure_the_answers_and_the_run_does_not_pay_for_them_again(tmp_path):
    rows = [forecast(str(i), city=f"City {i}") for i in range(4)]
    with FakeLLM(server_script(completion_tokens=42)) as server:
        path = pipeline(tmp_path, rows, server)
        probed = estimate(load_pipeline(path), probes=1)
        assert len(server.requests) == 5, "one call per stage"
        assert probed.total.output_tokens.low == 15 * 42 and probed.total.cached.low == 5
        judge = run_pipeline(load_pipeline(path)).summary.as_dict()["judge"]
    assert (judge["calls"], judge["cached"]) == (15, 5)
    assert len(server.requests) == 20, "no call was paid for twice"


def test_ensembles_count_each_judge_and_generators_count_their_rewrites(tmp_path):
    rows = [forecast("a"), forecast("b", city="Rome", cot=False), forecast("c", city="Bern", cot=False)]
    stages = (
        '[[stages]]\nname = "cot"\nrequired = true\non_fail = "regenerate"\n'
        'judges = [{model = "openai/judge-1"}, {model = "openai/judge-2"}]\n'
    )
    writer = "I call get_forecast for the city asked, with the days asked." + " step" * 30
    with FakeLLM(server_script(writer=writer)) as server:
        generate = f'[generate]\nmodel = "openai/writer"\napi_base = "{server.api_base}"\n{PRICES}'
        path = pipeline(tmp_path, rows, server, stages=stages, generate=generate)
        before = estimate(load_pipeline(path), output_tokens=40)
        judge = run_pipeline(load_pipeline(path)).summary.as_dict()["judge"]
    assert before.stages["cot"].calls.low == judge["per_stage"]["cot"]["calls"] == 3 * 2 + 2
    assert before.stages["cot"].input_tokens.low == pytest.approx(judge["per_stage"]["cot"]["prompt_tokens"], rel=0.05)
    assert set(before.models) == {"openai/judge-1", "openai/judge-2", "openai/writer"}


def test_the_time_is_bound_by_the_concurrency_and_the_rate_limits(tmp_path):
    rows = [forecast(str(i), city=f"City {i}") for i in range(20)]  # 100 calls
    with FakeLLM(server_script()) as server:
        free = estimate(load_pipeline(pipeline(tmp_path / "a", rows, server, judge="max_concurrency = 4")), None, 50)
        limited = estimate(
            load_pipeline(pipeline(tmp_path / "b", rows, server, judge="max_requests_per_minute = 60")), None, 50
        )
    # 100 calls of 0.5 s + 50 tokens at 50 a second, four at a time; then at most 60 calls a minute.
    assert free.total.seconds.low == pytest.approx(100 * 1.5 / 4)
    assert limited.total.seconds.low == pytest.approx(100.0)
    assert sum(s.seconds.low for s in limited.stages.values()) == pytest.approx(100.0)


def test_batch_calls_are_priced_at_the_batch_price_and_counted_in_rounds(tmp_path):
    rows = [forecast(str(i), city=f"City {i}") for i in range(3)]
    with FakeLLM(server_script()) as server:
        path = pipeline(tmp_path, rows, server, judge="batch = true")
        path.write_text(path.read_text().replace(PRICES, "").replace("openai/fake", "openai/gpt-4o-mini"))
        result = estimate(load_pipeline(path), output_tokens=10)
    price = result.models["openai/gpt-4o-mini"]["price"]
    assert (price["input_per_million"], price["source"]) == (pytest.approx(0.075), "LiteLLM's cost map, batch prices")
    assert result.batch_waves == 5 and any("batch jobs" in note for note in result.notes)


def test_the_command_prints_a_table_or_json_and_refuses_what_cannot_be_estimated(tmp_path):
    with FakeLLM(server_script()) as server:
        path = pipeline(tmp_path, MIXED, server)
        table = CliRunner().invoke(main, ["estimate", str(path), "--output-tokens", "5"])
        as_json = CliRunner().invoke(main, ["estimate", str(path), "--output-tokens", "5", "--json"])
        both = CliRunner().invoke(main, ["estimate", str(path), "--output-tokens", "5", "--probe", "1"])
    assert table.exit_code == 0, table.output
    assert "total" in table.output and "26 - 30" in table.output and "$1 / $2 per million" in table.output
    figures = json.loads(as_json.output)
    assert figures["total"]["calls"] == {"low": 26, "high": 30} and figures["records"] == 5
    assert both.exit_code == 2 and "not both" in both.output
    rules_only = tmp_path / "rules.toml"
    rules_only.write_text('[input]\npath = "in.jsonl"\n')
    with pytest.raises(ConfigError, match="no stage asks a model"):
        estimate(load_pipeline(rules_only))


def test_json_verdicts_are_estimated_as_a_run_asks_them(tmp_path):
    def script(request):
        answer = '{"reason": "fine", "judge": true}'
        return Reply(answer, prompt_tokens=openai_usage(request.messages), completion_tokens=7)

    with FakeLLM(script) as server:
        path = pipeline(tmp_path, MIXED, server, judge='verdict_format = "json"')
        before = estimate(load_pipeline(path), output_tokens=7)
        judge = run_pipeline(load_pipeline(path)).summary.as_dict()["judge"]
        again = estimate(load_pipeline(path), output_tokens=7)
    assert judge["protocol_failures"] == 0 and before.total.calls.low == judge["calls"] == 26
    assert before.total.input_tokens.low == pytest.approx(judge["prompt_tokens"], rel=0.005)
    # The estimate's prompts are the run's, the JSON note included: every call is found in the answer cache.
    assert (again.total.calls.low, again.total.cached.low) == (0, 26)


def test_after_a_run_a_record_holding_a_lone_surrogate_is_found_in_the_answer_cache(tmp_path):
    rows = [forecast("plain"), forecast("odd", city="Odd \ud800 town")]  # a legal JSON escape UTF-8 cannot encode
    with FakeLLM(server_script()) as server:
        path = pipeline(tmp_path, rows, server)
        judge = run_pipeline(load_pipeline(path)).summary.as_dict()["judge"]
        again = estimate(load_pipeline(path))
    assert judge["calls"] > 5, "the odd record was judged too"
    assert (again.total.calls.low, again.total.cached.low) == (0, judge["calls"]), "a second run pays for nothing"
