"""What a judged run costs, also when its answers come from the cache."""

import pytest

from funreason_refine.config import load_pipeline
from funreason_refine.engine import run_pipeline
from funreason_refine.testing.fake_llm import FakeLLM, Reply
from tests.conftest import write_jsonl, xlam_row
from tests.judge.test_misbehaving_judges import completion

ROME = [{"name": "get_weather", "arguments": {"city": "Rome"}}]  # no prompt of b is one of a's


@pytest.fixture(autouse=True)
def key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")


def test_a_rerun_from_the_cache_still_tells_what_the_answers_cost(tmp_path):
    write_jsonl(tmp_path / "in.jsonl", [xlam_row("a"), xlam_row("b", query="Weather in Rome?", answers=ROME)])
    with FakeLLM(lambda r: Reply("<judge>True</judge>", delay=0.05, prompt_tokens=100, completion_tokens=20)) as server:
        (tmp_path / "p.toml").write_text(
            '[input]\npath = "in.jsonl"\n[output]\ndir = "run"\n'
            f'[judge]\nmodel = "openai/fake"\napi_base = "{server.api_base}"\n'
            "prices = {input_per_million = 1000, output_per_million = 5000}\n"
        )
        first = run_pipeline(load_pipeline(tmp_path / "p.toml")).summary.as_dict()["judge"]
        asked = len(server.requests)
        again = run_pipeline(load_pipeline(tmp_path / "p.toml"), fresh=True).summary.as_dict()["judge"]
    assert len(server.requests) == asked, "the fresh run is answered from the cache"
    # Two records without a CoT, four judged stages (the cot prompt needs a CoT): 8 calls of
    # 100 + 20 tokens at $0.001 and $0.005 per token.
    assert (first["calls"], first["prompt_tokens"], first["completion_tokens"]) == (8, 800, 160)
    assert first["cost_usd"] == pytest.approx(8 * (100 * 0.001 + 20 * 0.005))
    assert first["seconds"] >= 8 * 0.05
    assert (again["calls"], again["cost_usd"], again["cached"]) == (0, 0.0, 8)
    assert (again["cached_prompt_tokens"], again["cached_completion_tokens"]) == (800, 160)
    assert again["cached_cost_usd"] == pytest.approx(first["cost_usd"])
    assert again["cached_seconds"] == pytest.approx(first["seconds"], abs=1e-5)
    assert again["per_stage"]["query_tool"]["cached_cost_usd"] == pytest.approx(2 * 0.2)


def test_a_model_litellm_knows_costs_its_listed_price_and_an_unknown_one_costs_nothing(tmp_path):
    write_jsonl(tmp_path / "in.jsonl", [xlam_row("a"), xlam_row("b", query="Weather in Rome?", answers=ROME)])
    spent = {}
    for model in ("openai/gpt-4o-mini", "openai/fake"):
        with FakeLLM(lambda r: Reply("<judge>True</judge>", prompt_tokens=1000, completion_tokens=100)) as server:
            (tmp_path / "p.toml").write_text(
                f'[input]\npath = "in.jsonl"\n[output]\ndir = "run-{model[7:]}"\n'
                f'[judge]\nmodel = "{model}"\napi_base = "{server.api_base}"\nmax_concurrency = 1\n'
            )
            spent[model] = run_pipeline(load_pipeline(tmp_path / "p.toml")).summary.as_dict()["judge"]
        # The prices LiteLLM is given for a model it cannot price stay between us and LiteLLM.
        assert not [key for r in server.requests for key in r.body if "cost" in key]
    # LiteLLM's price list: gpt-4o-mini at $0.15 and $0.60 per million tokens; 8 calls of 1,000 + 100 tokens.
    assert spent["openai/gpt-4o-mini"]["cost_usd"] == pytest.approx(8 * (1000 * 0.15 + 100 * 0.6) / 1e6)
    assert spent["openai/gpt-4o-mini"]["notes"] == []
    assert (spent["openai/fake"]["calls"], spent["openai/fake"]["cost_usd"]) == (8, 0.0)
    assert any("not in LiteLLM's price list" in n for n in spent["openai/fake"]["notes"])


def priced_pipeline(tmp_path, server, extra=""):
    write_jsonl(tmp_path / "in.jsonl", [xlam_row("a"), xlam_row("b", query="Weather in Rome?", answers=ROME)])
    (tmp_path / "p.toml").write_text(
        f'[input]\npath = "in.jsonl"\n[output]\ndir = "run"\n{extra}'
        f'[judge]\nmodel = "openai/fake"\napi_base = "{server.api_base}"\nmax_retries = 1\n'
        "prices = {input_per_million = 1000, output_per_million = 5000}\n"
    )
    return tmp_path / "p.toml"


def without_content(request):
    """An HTTP 200 whose message has no content (a provider's refusal), billed all the same."""
    message = {"role": "assistant", "content": None}
    usage = {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120}
    return completion(choices=[{"index": 0, "finish_reason": "stop", "message": message}], usage=usage)


def test_answers_without_content_that_the_server_billed_are_counted_and_spent(tmp_path):
    from funreason_refine.judge.cache import spent

    with FakeLLM(without_content) as server:
        summary = run_pipeline(load_pipeline(priced_pipeline(tmp_path, server))).summary
        sent = len(server.requests)
    judge = summary.as_dict()["judge"]
    assert summary.errors == 2 and sent == 4  # each record: its first stage asked twice (max_retries = 1)
    assert (judge["calls"], judge["prompt_tokens"], judge["completion_tokens"]) == (4, 400, 80)
    assert judge["cost_usd"] == pytest.approx(4 * (100 * 0.001 + 20 * 0.005))
    assert spent(tmp_path / "run") == pytest.approx(judge["cost_usd"])  # what a later run's max_cost counts


def test_token_counts_that_cannot_be_true_are_counted_here_instead(tmp_path):
    with FakeLLM(lambda r: Reply("<judge>True</judge>", prompt_tokens=-100, completion_tokens=-5)) as server:
        judge = run_pipeline(load_pipeline(priced_pipeline(tmp_path, server))).summary.as_dict()["judge"]
    assert judge["calls"] == 8 and judge["prompt_tokens"] > 0 and judge["completion_tokens"] > 0
    assert judge["cost_usd"] > 0 and judge["tokens_counted_locally"] == {"openai/fake": 8}


@pytest.mark.parametrize(
    "usage",
    [{"prompt_tokens": 400}, {"prompt_tokens": 400, "completion_tokens": 0, "total_tokens": 400}],
    ids=["prompt tokens only", "zero output tokens"],
)
def test_an_answer_whose_usage_leaves_out_its_output_tokens_has_them_counted_here(tmp_path, usage):
    # They were taken as 0: the answers' output cost nothing, max_cost ran low, and no note said so.
    from funreason_refine.judge.library import load_litellm

    answer = "<think>" + "reasoning " * 300 + "</think><judge>True</judge>"
    choice = {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": answer}}
    with FakeLLM(lambda r: completion(choices=[choice], usage=usage)) as server:
        judge = run_pipeline(load_pipeline(priced_pipeline(tmp_path, server))).summary.as_dict()["judge"]
    written = load_litellm().token_counter(model="openai/fake", text=answer)
    assert written > 300 and (judge["calls"], judge["prompt_tokens"]) == (8, 8 * 400), "the prompt's, as reported"
    assert judge["completion_tokens"] == 8 * written
    assert judge["cost_usd"] == pytest.approx(8 * (400 * 0.001 + written * 0.005))
    assert judge["tokens_counted_locally"] == {"openai/fake": 8}
    assert any("without their output or prompt tokens" in note for note in judge["notes"])
