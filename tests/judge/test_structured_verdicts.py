"""verdict_format = "json": the verdict as a JSON object in the form each server takes, over real HTTP through
LiteLLM; a server that refuses the form is named with the setting to change."""

import json

import pytest

from funreason_refine.judge.structured import verdict_schema
from funreason_refine.testing.fake_llm import FakeLLM, Reply, refusing
from tests.conftest import read_jsonl, refine, xlam_row
from tests.judge.one_record import FORMAT, judged, outcome

YES_JSON = '{"reason": "looks right", "judge": true}'
FORECAST = {
    "name": "get_forecast",
    "description": "Forecast.",
    "parameters": {"city": {"type": "str", "description": "City"}, "days": {"type": "int", "description": "Days"}},
}


@pytest.fixture(autouse=True)
def keys(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")


def structured(request) -> dict | None:
    """What the request asked for: its response_format, or Ollama's format as {"ollama": schema}."""
    if "format" in request.body:
        return {"ollama": request.body["format"]}
    return request.body.get("response_format")


@pytest.mark.parametrize(
    "model, json_form, root, asked",
    [
        ("openai/judge", "", False, {"type": "json_schema", "json_schema": {"name": "verdict", "strict": True}}),
        ("hosted_vllm/judge", "", False, {"type": "json_schema", "json_schema": {"name": "verdict", "strict": True}}),
        ("openai/smollm2", 'json_form = "json_object"', False, {"type": "json_object"}),
        ("ollama_chat/qwen3", "", True, {"ollama": None}),
    ],
)
def test_each_server_is_asked_in_its_own_form(tmp_pipeline, model, json_form, root, asked):
    with FakeLLM(lambda r: YES_JSON) as server:
        path, run_dir = judged(tmp_pipeline, server, model, judge=f'verdict_format = "json"\n{json_form}', root=root)
        refine("run", path)
    assert outcome(run_dir)[0] == "kept"
    (request,) = server.requests
    sent = structured(request)
    schema = verdict_schema(allow_newfc=True)  # the format stage may correct the calls (judge_newfc)
    if "ollama" in asked:
        assert sent == {"ollama": schema}
    elif asked["type"] == "json_object":
        assert sent == {"type": "json_object", "schema": schema}
    else:
        assert sent["json_schema"] == {**asked["json_schema"], "schema": schema}
    # The prompt still names the fields, after the stage's own question.
    assert request.prompt.startswith("===== ANSWER =====") and '"judge": true for <judge>True</judge>' in request.prompt
    assert request.prompt.endswith(
        '"new_fc": the corrected calls as "[func_name(param=value, ...)]" where the question '
        "asks for <NewFC>, else null}."
    )


def test_a_json_verdict_corrects_the_calls_where_the_stage_allows_it(tmp_pipeline):
    row = xlam_row(
        "r",
        query="Forecast for Oslo, 3 days",
        tools=[FORECAST],
        answers=[{"name": "get_forecast", "arguments": {"city": "Oslo", "days": 2}}],
    )
    fixed = '{"reason": "3 days were asked", "judge": false, "new_fc": "[get_forecast(city=\\"Oslo\\", days=3)]"}'

    def script(r):
        if "checking the function calls" in r.prompt and "days=2" in r.prompt:
            return fixed
        return YES_JSON

    stages = '[[stages]]\nname = "query_tool"\n[[stages]]\nname = "function_params"\n' + FORMAT
    with FakeLLM(script) as server:
        path, run_dir = judged(tmp_pipeline, server, judge='verdict_format = "json"', stages=stages, rows=[row])
        refine("run", path)
    kind, line = outcome(run_dir)
    assert kind == "kept" and line["answer"] == [{"name": "get_forecast", "arguments": {"city": "Oslo", "days": 3}}]
    (corrected,) = [step for step in line["trail"] if step["reason"] == "judge_corrected"]
    assert (corrected["stage"], corrected["message"]) == ("function_params", "3 days were asked")
    schemas = {json.dumps(r.body["response_format"]["json_schema"]["schema"]["required"]) for r in server.requests}
    assert schemas == {'["reason", "judge", "new_fc"]', '["reason", "judge"]'}


@pytest.mark.parametrize("status", [500, 400])
def test_a_server_that_refuses_the_form_is_named_with_the_setting_to_change(tmp_pipeline, status):
    # llama-cpp-python's server answers the json_schema form with HTTP 500, and takes its own json_object form.
    server_script = refusing(lambda r: YES_JSON, form="json_schema", status=status)
    with FakeLLM(server_script) as server:
        path, run_dir = judged(tmp_pipeline, server, judge='verdict_format = "json"\nmax_retries = 3')
        out = refine("run", path, code=1)
        assert len(server.requests) == 1, "a refusal is not retried"
        said = " ".join(out.split())
        assert "refused the JSON verdict asked in json_form = 'json_schema'" in said and f"HTTP {status} from" in said
        assert 'Set [judge] json_form = "json_object" or "ollama"' in said and 'verdict_format = "tags"' in said
        assert "Traceback" not in out

        path.write_text(
            path.read_text().replace('verdict_format = "json"', 'verdict_format = "json"\njson_form = "json_object"')
        )
        refine("run", path)
    assert outcome(run_dir)[0] == "kept"


def test_a_passing_5xx_on_the_first_json_verdict_is_retried_not_taken_for_a_refused_form(tmp_pipeline):
    failed = []

    def script(r):
        if not failed:  # the first request of the run: a server busy for a moment, saying nothing of the form
            failed.append(r)
            return Reply(status=503, text="the server is overloaded, try again")
        return YES_JSON

    with FakeLLM(script) as server:
        path, run_dir = judged(tmp_pipeline, server, judge='verdict_format = "json"\nmax_retries = 3')
        out = refine("run", path)
        asked = len(server.requests)
    assert outcome(run_dir)[0] == "kept" and "refused the JSON verdict" not in out
    assert asked == 2, "the failed call asked again, and answered"


@pytest.mark.parametrize("verdict_format", ["tags", "json"])
def test_the_built_in_stages_work_in_both_formats(tmp_pipeline, verdict_format):
    def script(r):
        asked_json = "response_format" in r.body
        assert asked_json == (verdict_format == "json")
        return YES_JSON if asked_json else "<judge>True</judge>\n<reason>looks right</reason>"

    row = xlam_row("r", cot="The user wants the weather in Paris: get_weather with city Paris.")
    with FakeLLM(script) as server:
        path, run_dir = judged(
            tmp_pipeline, server, judge=f'verdict_format = "{verdict_format}"', stages="", rows=[row]
        )
        refine("run", path)
    kind, line = outcome(run_dir)
    judged_stages = [step["stage"] for step in line["trail"] if step["judge"] == "openai/judge"]
    assert kind == "kept" and judged_stages == ["classification", "query_tool", "cot", "function_params", "format"]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["judge"]["protocol_failures"] == 0 and "protocol" not in summary["judge"]


def test_json_answers_that_are_not_verdicts_are_asked_again_and_counted(tmp_pipeline):
    answers = iter(["<judge>True</judge>", '{"reason": "fine", "judge": "yes"}', YES_JSON])
    with FakeLLM(lambda r: next(answers)) as server:
        path, run_dir = judged(tmp_pipeline, server, judge='verdict_format = "json"')
        out = refine("run", path)
    assert outcome(run_dir)[0] == "kept"
    corrections = [r.messages[-1]["content"] for r in server.requests[1:]]
    assert corrections[0].startswith("Your answer was not one JSON object")
    assert corrections[1].startswith("In your JSON object, field 'judge'")
    assert [m["role"] for m in server.requests[2].messages][-4:] == ["assistant", "user", "assistant", "user"]
    assert "0 retries, 2 protocol re-asks" in out
    counts = json.loads((run_dir / "summary.json").read_text())["judge"]["protocol"]["openai/judge"]
    assert counts == {"failures": 2, "reasks": 2, "problems": {"not_json": 1, "bad_json": 1}}
    refine("report", run_dir)
    html = (run_dir / "report.html").read_text()
    assert 'data-key="judge.protocol_reasks">2<' in html and 'data-key="judge.format.protocol_failures">2<' in html
    assert "not_json 1, bad_json 1" in html
    assert read_jsonl(run_dir / "errors.jsonl") == []
