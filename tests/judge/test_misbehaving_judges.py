"""Judges that misbehave, over real HTTP: any status, any body shape, no usage, no server at all ends as a
retried call, an errors.jsonl entry or an outage stop that says what happened, never a traceback."""

import asyncio
import json
import os
import signal
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from funreason_refine.cli import main
from funreason_refine.config import load_pipeline
from funreason_refine.engine import run_pipeline
from funreason_refine.judge.client import JudgeCallError, JudgeOutage, JudgeSetupError, LLMClient
from funreason_refine.judge.failures import classify
from funreason_refine.judge.library import load_litellm
from funreason_refine.judge.settings import ModelSettings
from funreason_refine.testing.fake_llm import FakeLLM, Reply
from tests.conftest import read_jsonl, write_jsonl
from tests.executors.test_shards import REFINE
from tests.judge.test_judged_runs import YES, forecast_row

ANSWERED = ("Checked.", "<judge>True</judge><reason>looks right</reason>")  # YES, its reasoning taken apart

PROMPT = [{"role": "user", "content": "Is this call right?"}]


@pytest.fixture(autouse=True)
def key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")


def settings(api_base: str, **kw) -> ModelSettings:
    return ModelSettings.model_validate(
        {"model": "openai/fake-judge", "api_base": api_base, "timeout": 2, "max_retries": 1, **kw}
    )


def ask(s: ModelSettings, messages=PROMPT, client: LLMClient | None = None):
    """One call's answer, or the exception it ended in."""
    client = client or LLMClient(max_concurrency=2)

    async def one():
        return (await asyncio.gather(client.complete(s, messages, "cot"), return_exceptions=True))[0]

    return asyncio.run(one())


def completion(**changes) -> Reply:
    """An HTTP 200 whose body is a chat completion with ``changes`` made to it (a key set to None is removed)."""
    body = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "fake-judge",
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": YES}}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
    }
    body.update(changes)
    return Reply(raw=json.dumps({k: v for k, v in body.items() if v is not None}).encode())


def test_a_413_from_a_proxys_body_limit_fails_the_record_at_once_saying_the_body_is_too_large():
    with FakeLLM(lambda r: YES, max_body_bytes=2000) as proxy:
        s = settings(proxy.api_base)
        big = ask(s, [{"role": "user", "content": "Is this call right? " + "x" * 3000}])
        small = ask(s)
    assert isinstance(big, JudgeCallError), big
    message = str(big)
    assert f"HTTP 413 from {proxy.api_base}" in message and "request body is too large" in message
    assert "client_max_body_size" in message
    assert proxy.too_large == 1, "no retry can make the body smaller"
    assert (small.reasoning, small.text) == ANSWERED, "the server is up: other calls go on"


@pytest.mark.parametrize("status, tries", [(418, 1), (451, 1), (409, 2), (599, 2)])
def test_a_status_litellm_has_no_class_for_is_an_error_naming_it_retried_when_it_may_pass(status, tries):
    with FakeLLM(lambda r: Reply(status=status, text=f"odd status {status}")) as server:
        result = ask(settings(server.api_base))
    assert isinstance(result, JudgeCallError), result
    assert f"HTTP {status} from {server.api_base}: odd status {status}" in str(result)
    assert len(server.requests) == tries


@pytest.mark.parametrize("status", [401, 403])
def test_a_refused_key_stops_the_run_whatever_class_litellm_raised_it_as(status):
    # LiteLLM's openai provider raises a 403 as a bare APIError, not PermissionDeniedError: it was taken for the
    # record's failure, and every record of the run went to errors.jsonl with the same refusal.
    litellm = load_litellm()
    exc = litellm.APIError(status, "Project proj_x does not have access to model gpt-4o", "openai", "gpt-4o")
    exc.litellm_response_headers = {}
    failure = classify(exc, litellm, "http://h:1/v1", 5.0)
    assert failure.action == "setup", failure.message
    assert failure.message.startswith(f"HTTP {status} from http://h:1/v1: Project proj_x does not have access")
    assert failure.message.endswith("Check the model name, api_base and the API key in the environment")


@pytest.mark.parametrize("model", ["openai/gpt-4o", "anthropic/claude-sonnet-4-5"])
def test_a_403_from_the_judge_stops_the_run_at_once_with_no_record_in_errors(tmp_path, model, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test")
    refused = Reply(status=403, text="Project proj_x does not have access to model gpt-4o")
    rows = [forecast_row(str(i), days=i % 7 + 1) for i in range(6)]
    with FakeLLM(lambda r: refused) as server:
        path = write(tmp_path, server, rows=rows, judge="max_concurrency = 1\n")
        base = server.api_base if model.startswith("openai/") else f"http://127.0.0.1:{server.port}"
        path.write_text(path.read_text().replace("openai/fake-judge", model).replace(server.api_base, base))
        result = CliRunner().invoke(main, ["run", str(path)])
        sent = len(server.requests)
    said = " ".join(result.output.split())
    assert result.exit_code == 1, said
    assert "does not have access to model gpt-4o" in said and "Check the model name, api_base and the API key" in said
    assert sent == 1 and read_jsonl(tmp_path / "run" / "errors.jsonl") == []


def test_anthropics_529_overloaded_is_said_as_529_in_the_servers_words_not_litellms_advice(monkeypatch):
    # LiteLLM raises it as an InternalServerError of status 500, its message ending in "Handle with
    # `litellm.InternalServerError`.": errors.jsonl said "HTTP 500 from ...", and that advice.
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test")
    with FakeLLM(lambda r: Reply(status=529, text="overloaded")) as server:
        root = f"http://127.0.0.1:{server.port}"
        result = ask(settings(root, model="anthropic/claude-sonnet-4-5"))
    assert isinstance(result, JudgeCallError), result
    message = str(result)
    assert f"HTTP 529 from {root}: " in message and '"overloaded"' in message, message
    assert "Handle with" not in message and message.endswith("after 2 attempt(s)"), message
    assert len(server.requests) == 2, "a 5xx is retried"


def test_a_5xx_litellm_raised_as_500_is_said_with_the_status_of_the_error_it_was_raised_from():
    # A LiteLLM without provider_status_code: the provider's error under it kept the status.
    litellm = load_litellm()

    class AnthropicError(Exception):
        status_code = 529

    try:
        try:
            raise AnthropicError("overloaded")
        except AnthropicError as cause:
            raise litellm.InternalServerError("AnthropicException - overloaded", "anthropic", "claude") from cause
    except litellm.InternalServerError as exc:
        exc.provider_status_code = None
        exc.litellm_response_headers = {}
        failure = classify(exc, litellm, "http://h:1", 5.0)
    assert failure.message == "HTTP 529 from http://h:1: overloaded" and failure.action == "retry"


@pytest.mark.parametrize(
    "reply, words",
    [
        (completion(choices=[]), "no choices in the body"),
        (completion(choices=[{"index": 0, "finish_reason": "stop"}]), "no 'message'"),
        (completion(choices=[{"index": 0, "finish_reason": "stop", "message": {"role": "assistant"}}]), "no content"),
        (completion(choices=None), "not a chat completion"),
        (Reply(raw=b'{"choices": [{"mess'), "a body cut short"),
        (Reply(raw=b"<html>Bad gateway</html>"), "not a chat completion"),
        (
            completion(
                choices=[
                    {
                        "index": 0,
                        "finish_reason": "tool_calls",
                        "message": {
                            "role": "assistant",
                            "content": None,
                            "tool_calls": [
                                {"id": "c", "type": "function", "function": {"name": "verdict", "arguments": "{}"}}
                            ],
                        },
                    }
                ]
            ),
            "no content, only a tool call (verdict): the model must answer in text",
        ),
        # OpenRouter's and proxies' error object with HTTP 200: what it says is said.
        (
            Reply(raw=b'{"error": {"message": "Provider returned error", "code": 502}}'),
            "answered with an error in place of a chat completion: Provider returned error (code 502)",
        ),
    ],
    ids=[
        "no choices",
        "no message",
        "null content",
        "no choices key",
        "cut short",
        "not JSON",
        "tool call",
        "error object",
    ],
)
def test_an_http_200_without_an_answer_is_retried_then_an_error_saying_what_the_body_lacked(reply, words):
    with FakeLLM(lambda r: reply) as server:
        s = settings(server.api_base)
        client = LLMClient(max_concurrency=2)
        result = ask(s, client=client)
    assert isinstance(result, JudgeCallError), result
    assert words in str(result) and server.api_base in str(result) and "after 2 attempt(s)" in str(result)
    assert len(server.requests) == 2
    (row,) = client.endpoint_stats()["openai/fake-judge"]
    assert row["in_rotation"], "a server that sends bodies is up: no outage"


def test_an_answer_cut_off_by_max_tokens_before_any_text_is_not_asked_again():
    cut = completion(choices=[{"index": 0, "finish_reason": "length", "message": {"role": "assistant"}}])
    with FakeLLM(lambda r: cut) as server:
        result = ask(settings(server.api_base, max_tokens=1))
    assert isinstance(result, JudgeCallError) and "raise max_tokens" in str(result)
    assert len(server.requests) == 1


def test_an_answer_without_usage_has_its_tokens_counted_here_and_priced():
    with FakeLLM(lambda r: Reply(YES, usage=False)) as server:
        client = LLMClient(max_concurrency=2)
        s = settings(server.api_base, prices={"input_per_million": 1000.0, "output_per_million": 2000.0})
        answer = ask(s, client=client)
    litellm = load_litellm()
    prompt = litellm.token_counter(model=s.model, messages=PROMPT)
    completion_tokens = litellm.token_counter(model=s.model, text=YES)
    usage = client.usage["cot"]
    assert (answer.reasoning, answer.text) == ANSWERED and (usage.prompt_tokens, usage.completion_tokens) == (
        prompt,
        completion_tokens,
    )
    assert usage.cost_usd == pytest.approx((prompt * 1000 + completion_tokens * 2000) / 1e6)
    assert client.used.as_dict()["tokens_counted_locally"] == {"openai/fake-judge": 1}
    assert any("without token usage" in note for note in client.notes)


def test_a_server_that_never_answers_stops_on_a_message_naming_the_refused_url():
    with FakeLLM(lambda r: YES) as gone:
        gone.kill()  # its port is closed now: what a typo in the port of api_base looks like
        result = ask(settings(gone.api_base, outage_timeout=1, max_retries=5))
    assert isinstance(result, JudgeOutage), result
    message = str(result)
    assert f"connection refused at {gone.api_base}: check api_base" in message
    assert "outage_timeout" in message and "run the same command again" in message


def test_a_stall_past_timeout_says_so_and_which_key_to_raise():
    with FakeLLM(lambda r: Reply(YES, delay=2)) as server:
        result = ask(settings(server.api_base, timeout=0.5, max_retries=0))
    assert isinstance(result, JudgeCallError), result
    assert f"no answer from {server.api_base} within timeout = 0.5 s: raise the model's timeout" in str(result)


@pytest.mark.parametrize(
    "cause, words, outcome",
    [
        (OSError(111, "Connect call failed"), "connection refused at http://h:1/v1: check api_base", "down"),
        (ConnectionResetError("reset by peer"), "closed the connection before it answered", "down"),
        (json.JSONDecodeError("Unterminated string", '{"ch', 4), "not a chat completion LiteLLM can read", "failing"),
        (KeyError("message"), "(no 'message' in it)", "failing"),
    ],
)
def test_a_cause_deep_in_the_chain_is_named_whichever_transport_raised_it(cause, words, outcome):
    litellm = load_litellm()
    try:
        try:
            raise cause
        except Exception as inner:
            raise RuntimeError("transport error") from inner
    except RuntimeError as wrapped:
        try:
            raise litellm.InternalServerError("Connection error.", llm_provider="openai", model="x") from wrapped
        except Exception as exc:
            failure = classify(exc, litellm, "http://h:1/v1", 5.0)
    assert words in failure.message and failure.outcome == outcome and failure.action == "retry"


@pytest.mark.parametrize(
    "error",
    [
        ValueError("Missing Gemini API key - set GEMINI_API_KEY"),  # gemini/ with no key, as LiteLLM raises it
        Exception("FIREWORKS_API_KEY is not set"),  # fireworks_ai/
        ModuleNotFoundError("No module named 'google.auth'", name="google.auth"),  # vertex_ai/ without its package
    ],
    ids=["gemini", "fireworks", "a package missing"],
)
def test_a_provider_that_cannot_send_without_a_key_or_a_package_stops_the_run_not_an_outage_wait(error):
    litellm = load_litellm()
    try:
        raise litellm.APIConnectionError(str(error), llm_provider="x", model="x") from error
    except Exception as exc:
        failure = classify(exc, litellm, "http://h:1/v1", 5.0)
    assert failure.action == "setup" and "Nothing was sent to http://h:1/v1" in failure.message, failure.message


def test_what_a_5xx_says_of_the_json_form_is_read_in_the_servers_words_never_in_its_url():
    from funreason_refine.judge.structured import speaks_of_the_form

    litellm = load_litellm()

    def failure(text: str, url: str):
        exc = litellm.InternalServerError(text, llm_provider="openai", model="x")
        exc.litellm_response_headers = {}
        return classify(exc, litellm, url, 5.0)

    busy = failure("the server is overloaded, try again", "http://json-schema-gateway:8000/format/v1")
    assert "json-schema-gateway" in busy.message and not speaks_of_the_form(busy.server_said)
    llama = failure("Input should be 'text' or 'json_object' (loc: body, response_format, type)", "http://h:1/v1")
    assert speaks_of_the_form(llama.server_said)
    assert not speaks_of_the_form("ValueError: unsupported format string passed to NoneType.__format__")


# --- whole runs --------------------------------------------------------------------------------


def write(tmp_path, server, judge="", top="", rows=None):
    tmp_path.mkdir(parents=True, exist_ok=True)
    write_jsonl(tmp_path / "in.jsonl", rows or [forecast_row("a"), forecast_row("b", days=4)])
    path = tmp_path / "pipeline.toml"
    path.write_text(
        f'{top}\n[input]\npath = "in.jsonl"\n[output]\ndir = "run"\n'
        f'[judge]\nmodel = "openai/fake-judge"\napi_base = "{server.api_base}"\ntimeout = 2\nmax_retries = 1\n{judge}'
    )
    return path


def test_a_judge_behind_a_small_body_limit_puts_the_long_record_in_errors_and_the_run_goes_on(tmp_path):
    short, long = forecast_row("short"), forecast_row("long", cot="Forecast: get_forecast for Oslo. " + "x" * 4000)
    with FakeLLM(lambda r: YES, max_body_bytes=3500) as proxy:
        result = CliRunner().invoke(main, ["run", str(write(tmp_path, proxy, rows=[short, long]))])
    assert result.exit_code == 3, result.output  # records in errors.jsonl, documented
    assert "Traceback" not in result.output
    (error,) = read_jsonl(tmp_path / "run" / "errors.jsonl")
    assert error["id"] == "long" and "HTTP 413" in error["error"] and "too large" in error["error"]
    assert [r["id"] for r in read_jsonl(tmp_path / "run" / "kept.jsonl")] == ["short"]


def test_max_cost_holds_when_the_server_leaves_usage_out(tmp_path):
    rows = [forecast_row(str(i), days=i + 1) for i in range(12)]
    judge = "prices = {input_per_million = 1000.0, output_per_million = 0.0}\nmax_concurrency = 1\n"
    summaries = {}
    for usage in (True, False):
        with FakeLLM(lambda r, usage=usage: Reply(YES, usage=usage, prompt_tokens=400)) as server:
            path = write(tmp_path / str(usage), server, judge=judge, top="max_cost = 2.0", rows=rows)
            result = run_pipeline(load_pipeline(path))
        assert result.stopped and "max_cost" in result.stopped, usage
        summaries[usage] = result.summary.as_dict()["judge"]
    reported, counted = summaries[True], summaries[False]
    assert reported["calls"] == 5 and "tokens_counted_locally" not in reported  # $0.40 a call
    # Counted here, a prompt is some 350-450 tokens: the run stops after a handful of calls, as it should.
    assert 3 <= counted["calls"] <= 7 and counted["cost_usd"] >= 2.0
    assert counted["tokens_counted_locally"] == {"openai/fake-judge": counted["calls"]}
    assert counted["cost_usd"] == pytest.approx(counted["prompt_tokens"] * 1000 / 1e6)
    assert any("without token usage" in note for note in counted["notes"])


@pytest.mark.parametrize(
    "judge, words",
    [
        ('api_base = "htp://gpu-1:8000/v1"', "[judge] key 'api_base': 'htp://gpu-1:8000/v1' is not a"),
        ('api_base = "gpu-1:8000/v1"', "write it as http://HOST:PORT/v1"),
        ('api_base = ["http://gpu-1:8000/v1", "http://gpu-1:8000/v1/"]', "http://gpu-1:8000/v1/ is listed twice"),
        (
            '[[judge.endpoints]]\napi_base = "http://a:8000/v1"\n[[judge.endpoints]]\napi_base = "http://a:8000/v1"',
            "[judge] key 'endpoints': http://a:8000/v1 is listed twice; list each server once",
        ),
        ('[[judge.endpoints]]\napi_base = "htp://a/v1"', "[judge] key 'endpoints.0.api_base'"),
    ],
)
def test_validate_rejects_a_server_url_that_is_not_one_and_a_server_listed_twice(tmp_path, judge, words):
    write_jsonl(tmp_path / "in.jsonl", [forecast_row("a")])
    path = tmp_path / "p.toml"
    path.write_text(f'[input]\npath = "in.jsonl"\n[output]\ndir = "run"\n[judge]\nmodel = "openai/j"\n{judge}\n')
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert result.exit_code == 1 and words in " ".join(result.output.split()), result.output


def test_no_api_key_in_the_environment_stops_the_run_at_once_naming_the_variable(tmp_path, monkeypatch):
    # The OpenAI client refuses to send without a key, and LiteLLM raises that as a 500 of its own: before this
    # was told apart, the run retried it, then waited for an outage to end, with nothing ever sent.
    monkeypatch.delenv("OPENAI_API_KEY")
    with FakeLLM(lambda r: YES) as server:
        result = CliRunner().invoke(main, ["run", str(write(tmp_path, server, judge="outage_timeout = 600"))])
        sent = len(server.requests)
    said = " ".join(result.output.split())
    assert result.exit_code == 1 and sent == 0, said
    assert "no API key" in said and "Nothing was sent to http://127.0.0.1" in said and "OPENAI_API_KEY" in said
    assert "Traceback" not in result.output and read_jsonl(tmp_path / "run" / "errors.jsonl") == []


def test_ctrl_c_while_judge_calls_are_in_flight_prints_no_warning_about_litellm_s_unawaited_coroutine(tmp_path):
    # A call cancelled in LiteLLM's thread left its provider handler's coroutine unawaited: Python warned
    # "coroutine 'OpenAIChatCompletion.acompletion' was never awaited" under the run's own message.
    rows = [forecast_row(str(i), days=i % 7 + 1) for i in range(60)]
    with FakeLLM(lambda r: Reply(YES, delay=0.2)) as server:
        proc = subprocess.Popen(
            [sys.executable, "-c", REFINE, "run", str(write(tmp_path, server, rows=rows))],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        deadline = time.monotonic() + 120
        while len(server.requests) < 40 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.requests, proc.communicate()[1] if proc.poll() is not None else "the run never asked the judge"
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "interrupted after" in err, err
    assert "never awaited" not in err and "RuntimeWarning" not in err, err


def test_a_lone_surrogate_in_a_record_is_sent_as_its_escape_not_blamed_on_the_server(tmp_path):
    # The request failed to encode before it left: every such record went to errors.jsonl, the message
    # saying the server did not speak the chat API, and `refine retry` could never mend it.
    rows = [forecast_row("plain"), forecast_row("odd", cot="The user wants a forecast \ud800: get_forecast for Oslo.")]
    with FakeLLM(lambda r: YES) as server:
        result = run_pipeline(load_pipeline(write(tmp_path, server, rows=rows)))
        sent = [json.dumps(r.body) for r in server.requests]
    assert result.summary.as_dict()["outcomes"]["errors"] == 0, read_jsonl(tmp_path / "run" / "errors.jsonl")
    assert sorted(r["id"] for r in read_jsonl(tmp_path / "run" / "kept.jsonl")) == ["odd", "plain"]
    assert any("forecast \\\\ud800:" in body for body in sent)  # the escape, as text, in the prompt


def test_a_model_litellm_knows_no_provider_for_is_a_setup_error_not_the_records():
    # LiteLLM raises "LLM Provider NOT provided" as an HTTP 400 of its own, before anything is sent: it was taken
    # for the provider refusing the record, and every record of a run went to errors.jsonl with it.
    with FakeLLM(lambda r: YES) as server:
        result = ask(settings(server.api_base, model="notaprovider/x"))
    assert isinstance(result, JudgeSetupError), result
    said = str(result)
    assert said.startswith("notaprovider/x: LiteLLM cannot tell the model's provider") and "provider/name" in said
    assert f"Nothing was sent to {server.api_base}" in said and server.requests == []


@pytest.mark.parametrize("how", ["pipeline", "--judge-model"])
def test_a_run_with_a_model_of_no_known_provider_stops_at_once_and_validate_says_so_first(tmp_path, how):
    with FakeLLM(lambda r: YES) as server:
        path = write(tmp_path, server)
        args = ["--judge-model", f"notaprovider/x@{server.api_base}"] if how == "--judge-model" else []
        if how == "pipeline":
            path.write_text(path.read_text().replace('"openai/fake-judge"', '"notaprovider/x"'))
        checked = CliRunner().invoke(main, ["validate", str(path), *args])
        result = CliRunner().invoke(main, ["run", str(path), *args])
        sent = len(server.requests)
    for said in (" ".join(checked.output.split()), " ".join(result.output.split())):
        assert "cannot tell the provider of the model 'notaprovider/x'" in said and "provider/name" in said, said
    assert checked.exit_code == 1 and result.exit_code == 1 and sent == 0
    assert "Traceback" not in result.output and read_jsonl(tmp_path / "run" / "errors.jsonl") == []


def test_validate_asks_litellm_only_about_names_outside_the_well_known_providers():
    from funreason_refine.judge.providers import check_without_calls

    def model(name: str) -> ModelSettings:
        return ModelSettings.model_validate({"model": name})

    assert check_without_calls([model("openai/x"), model("gpt-4o-mini"), model("xai/grok-3")]) == []
    (problem,) = check_without_calls([model("notaprovider/x"), model("notaprovider/x"), model("fake")])[:1]
    assert problem.startswith("LiteLLM cannot tell the provider of the model 'notaprovider/x': write the model as")
    assert len(check_without_calls([model("notaprovider/x"), model("fake")])) == 2


@pytest.mark.parametrize("target", [None, 2])
def test_a_retry_of_a_limited_run_that_never_ended_reads_no_further_than_the_run_was_to(tmp_path, target):
    # An outage stops the run before it writes summary.json, which was the only place that kept its --limit:
    # `refine retry` then refined the whole input.
    rows = [forecast_row(str(i), days=i + 1) for i in range(6)]
    answers = {"now": Reply(raw=b"<html>Bad gateway</html>")}
    with FakeLLM(lambda r: answers["now"]) as server:
        path = write(tmp_path, server, judge="outage_timeout = 1", rows=rows)
        chosen = ["--limit", "3"] if target is None else ["--limit", "3", "--target-kept", str(target)]
        stopped = CliRunner().invoke(main, ["run", str(path), *chosen])
        assert stopped.exit_code == 4 and not (tmp_path / "run" / "summary.json").exists(), stopped.output
        answers["now"] = YES
        retried = CliRunner().invoke(main, ["retry", str(tmp_path / "run")])
    said = " ".join(retried.output.split())
    if target is not None:  # how far a target run reads is known once it has ended: resumed first
        assert retried.exit_code == 1 and "--target-kept 2" in said and "resume it first with `refine run" in said
        return
    assert retried.exit_code == 0, said
    assert sorted(r["id"] for r in read_jsonl(tmp_path / "run" / "kept.jsonl")) == ["0", "1", "2"]
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["input"]["limit"] == 3


def test_a_model_whose_provider_the_settings_name_is_called_as_before(tmp_path):
    # extra = {custom_llm_provider = "openai"} names the provider of a bare model name (an Azure deployment, a
    # proxy's alias): the provider check refused it, though LiteLLM calls it.
    with FakeLLM(lambda r: YES) as server:
        path = write(tmp_path, server, judge='extra = {custom_llm_provider = "openai"}')
        path.write_text(path.read_text().replace('"openai/fake-judge"', '"fake-judge"'))
        checked = CliRunner().invoke(main, ["validate", str(path)])
        result = run_pipeline(load_pipeline(path))
        sent = len(server.requests)
    assert checked.exit_code == 0, checked.output
    assert result.summary.as_dict()["outcomes"]["kept"] == 2 and sent >= 2
