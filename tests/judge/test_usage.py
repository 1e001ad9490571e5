"""What a judged run costs, also when its answers come from the cache."""

import pytest

from funreason_refine.config import load_pipeline
from funreason_refine.engine import run_pipeline
from funreason_refine.testing.fake_llm import FakeLLM, Reply
from tests.conftest import write_jsonl, xlam_row

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
