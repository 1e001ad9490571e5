"""--judge-model swaps the judge: that model at its own provider's endpoint, or at MODEL@URL."""

from __future__ import annotations

from click.testing import CliRunner

from funreason_refine.cli import main
from funreason_refine.config import load_pipeline
from funreason_refine.judge_swap import split_model, swap_judge

PIPELINE = """
[input]
path = "in.jsonl"
[output]
dir = "run"
[judge]
model = "openai/qwq-32b"
api_base = "http://localhost:8000/v1"
prices = {input_per_million = 0.1, output_per_million = 0.2}
max_requests_per_minute = 100
temperature = 0.3
[generate]
model = "openai/qwen2.5-72b-instruct"
api_base = "http://localhost:8001/v1"
[[stages]]
name = "classification"
[[stages]]
name = "cot"
required = true
on_fail = "regenerate"
"""


def servers(settings):
    return [e.api_base if e is not None else None for e in settings.endpoint_list()]


def test_a_swapped_model_goes_to_its_own_provider_not_the_pipelines_server(tmp_path):
    (tmp_path / "in.jsonl").write_text("")
    (tmp_path / "p.toml").write_text(PIPELINE)
    loaded = load_pipeline(tmp_path / "p.toml", judge_model="openai/gpt-4o-mini")
    judge = loaded.judging.defaults
    assert judge.model == "openai/gpt-4o-mini" and servers(judge) == [None], "LiteLLM's default URL for OpenAI"
    assert judge.prices is None and judge.max_requests_per_minute is None, "the old model's prices and limits"
    assert judge.temperature == 0.3, "how to ask stays"
    generator = swap_judge({"generate": {"model": "a", "api_base": "http://x"}}, "anthropic/claude-sonnet-4-5")
    assert generator["generate"] == {"model": "anthropic/claude-sonnet-4-5"}


def test_model_at_url_serves_it_there_and_vertex_versions_are_not_urls():
    assert split_model("openai/qwen2.5@http://gpu-1:8000/v1") == ("openai/qwen2.5", "http://gpu-1:8000/v1")
    assert split_model("vertex_ai/claude-3-5-sonnet@20240620") == ("vertex_ai/claude-3-5-sonnet@20240620", None)
    swapped = swap_judge({}, "hosted_vllm/qwen@https://vllm.internal/v1")
    assert swapped["judge"] == {"model": "hosted_vllm/qwen", "api_base": "https://vllm.internal/v1"}
    assert "generate" not in swapped, "no [generate] is added"


def test_validate_and_estimate_say_where_each_model_goes_and_what_it_costs(tmp_path):
    (tmp_path / "in.jsonl").write_text(
        '{"id": "a", "query": "Weather in Paris?", "tools": "[]", "answers": "[]"}\n', encoding="utf-8"
    )
    (tmp_path / "p.toml").write_text(PIPELINE)
    result = CliRunner().invoke(
        main, ["estimate", str(tmp_path / "p.toml"), "--judge-model", "openai/gpt-4o-mini", "--output-tokens", "10"]
    )
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())
    assert "openai/gpt-4o-mini at its provider's own endpoint" in said and "LiteLLM's cost map" in said
    assert "localhost:8000" not in said


def test_a_swapped_judge_keeps_the_verdict_format_but_not_the_old_servers_json_form():
    table = {"model": "openai/smollm2", "api_base": "http://x", "verdict_format": "json", "json_form": "json_object"}
    swapped = swap_judge({"judge": table}, "ollama_chat/qwen3@http://ollama:11434")
    assert swapped["judge"] == {
        "model": "ollama_chat/qwen3",
        "api_base": "http://ollama:11434",
        "verdict_format": "json",
    }
