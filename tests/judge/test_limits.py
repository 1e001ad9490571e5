"""Prompts too long for a judge, slow and failing servers, streamed answers: what a user sees, over real HTTP."""

import asyncio
import json

import pytest
from click.testing import CliRunner

from funreason_refine.cli import main
from funreason_refine.config import load_pipeline
from funreason_refine.engine import Progress, run_pipeline
from funreason_refine.judge.client import JudgeCallError, JudgeOutage, LLMClient
from funreason_refine.judge.failures import classify
from funreason_refine.judge.library import load_litellm
from funreason_refine.testing.fake_llm import FakeLLM, Reply
from tests.conftest import read_jsonl
from tests.judge.test_judged_runs import YES, forecast_row, stage_of
from tests.judge.test_misbehaving_judges import ask, settings, write

OVER = "This model's maximum context length is 2048 tokens. However, you requested 3100 tokens."
LONG_COT = "The user wants a forecast: get_forecast for Oslo. " + "Then I think again. " * 300


@pytest.fixture(autouse=True)
def key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")


def over_context(request):
    """A server with a context of 2048 tokens: it refuses the long CoT's prompts as vLLM and llama.cpp do."""
    return Reply(status=400, text=OVER) if "Then I think again." in request.prompt else YES


# --- a prompt over the context window --------------------------------------------------------


def test_a_prompt_over_the_context_window_is_an_error_of_that_record_named_with_its_tokens_never_retried(tmp_path):
    rows = [forecast_row("short"), forecast_row("long", cot=LONG_COT)]
    with FakeLLM(over_context) as server:
        path = write(tmp_path, server, judge="context_window = 2048\nmax_tokens = 256\n", rows=rows)
        result = CliRunner().invoke(main, ["run", str(path)])
    assert result.exit_code == 3, result.output
    (error,) = read_jsonl(tmp_path / "run" / "errors.jsonl")
    assert (error["id"], error["stage"], error["reason"]) == ("long", "cot", "context_window_exceeded")
    assert (
        "tokens counted here + max_tokens 256) is over its context window (2,048 tokens (prompt + max_tokens)"
        in (error["error"])
    )
    assert "maximum context length is 2048 tokens" in error["error"], "what the server said"
    assert "no retry can help" in error["error"] and "max_prompt_tokens" in error["error"]
    refused = [r for r in server.requests if "Then I think again." in r.prompt]
    assert len(refused) == 1, "a refusal no retry can change is not sent again"
    assert [r["id"] for r in read_jsonl(tmp_path / "run" / "kept.jsonl")] == ["short"]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["stages"]["cot"]["records_errored"] == {"context_window_exceeded": 1}
    assert "records_errored" not in summary["stages"]["format"]
    assert "1 of them (context_window_exceeded) have a prompt over the model's context window" in result.output
    assert "a retry alone cannot help" in result.output


@pytest.mark.parametrize(
    "status, text",
    [
        (400, "Requested tokens (3100) exceed context window of 2048"),  # llama-cpp-python's own words
        (500, "the prompt is too long for the context size of this server"),
    ],
)
def test_a_refusal_that_speaks_of_the_context_length_in_other_words_is_an_overflow_too(status, text):
    with FakeLLM(lambda r: Reply(status=status, text=text)) as server:
        result = ask(settings(server.api_base, max_retries=3))
    assert isinstance(result, JudgeCallError) and result.reason == "context_window_exceeded", result
    assert text in str(result) and "no retry can help" in str(result)
    assert len(server.requests) == 1


def test_a_500_that_is_not_about_the_context_is_still_retried():
    with FakeLLM(lambda r: Reply(status=500, text="out of memory")) as server:
        result = ask(settings(server.api_base, max_retries=1))
    assert isinstance(result, JudgeCallError) and result.reason is None
    assert len(server.requests) == 2


def test_litellms_own_context_window_class_is_an_overflow_whatever_its_text():
    litellm = load_litellm()
    exc = litellm.ContextWindowExceededError("input is 9000 tokens", model="x", llm_provider="openai")
    failure = classify(exc, litellm, "http://h:1/v1", 5.0)
    assert (failure.action, failure.reason) == ("record", "context_window_exceeded")


# --- max_prompt_tokens -------------------------------------------------------------------------


def test_a_prompt_over_max_prompt_tokens_discards_its_record_before_any_call_naming_stage_tokens_and_limit(tmp_path):
    rows = [forecast_row("short"), forecast_row("long", cot=LONG_COT)]
    with FakeLLM(lambda r: YES) as server:
        path = write(tmp_path, server, judge="max_prompt_tokens = 1500\n", rows=rows)
        CliRunner().invoke(main, ["run", str(path)], catch_exceptions=False)
    (discarded,) = read_jsonl(tmp_path / "run" / "discarded.jsonl")
    assert (discarded["id"], discarded["stage"], discarded["reason"]) == ("long", "cot", "prompt_too_long")
    assert discarded["message"].startswith("stage cot: the prompt for openai/fake-judge has ")
    assert "over its max_prompt_tokens = 1,500: discarded before any call" in discarded["message"]
    assert discarded["trail"][-1]["judge"] == "rules"
    assert not any("Then I think again." in r.prompt for r in server.requests), "no call is paid for in vain"
    assert [r["id"] for r in read_jsonl(tmp_path / "run" / "kept.jsonl")] == ["short"]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["stages"]["cot"]["records_discarded"] == {"prompt_too_long": 1}


def test_max_prompt_tokens_is_part_of_the_configuration_only_when_set(tmp_path):
    with FakeLLM(lambda r: YES) as server:
        plain = load_pipeline(write(tmp_path / "a", server))
        same = load_pipeline(write(tmp_path / "b", server, judge="context_window = 9000\n"))
        limited = load_pipeline(write(tmp_path / "c", server, judge="max_prompt_tokens = 4000\n"))
    strip = lambda p: json.dumps(p.config["stages"])  # noqa: E731  (the input paths differ by folder)
    assert strip(plain) == strip(same) != strip(limited)


# --- servers that are up but fail or are slow ---------------------------------------------------


@pytest.mark.parametrize(
    "reply, judge, words",
    [
        (Reply(status=500, text="model crashed"), "", "the server is up but answered every call with an error"),
        (Reply(YES, delay=1.0), "timeout = 0.3\n", "the server is up but gave no answer within its timeout"),
    ],
)
def test_an_outage_of_a_server_that_is_up_says_so_and_what_to_change(reply, judge, words):
    with FakeLLM(lambda r: reply) as server:
        s = settings(server.api_base, outage_timeout=1, max_retries=20, **dict(_keys(judge)))
        result = ask(s)
    assert isinstance(result, JudgeOutage), result
    assert words in str(result) and "no server answered" not in str(result)
    assert "run the same command again" in str(result)


def _keys(toml: str):
    for line in toml.splitlines():
        name, value = line.split(" = ")
        yield name, float(value)


# --- streamed answers: first_token_timeout ----------------------------------------------------


def test_with_first_token_timeout_the_wait_in_the_servers_queue_is_not_call_time_nor_held_against_timeout():
    # One slot, two calls at once: the second waits in the server's queue for the first (0.6 s), longer than
    # timeout; the wait counts against first_token_timeout, and as queue time.
    with FakeLLM(lambda r: Reply(YES, delay=0.6, chunk_delay=0.01), max_concurrency=1) as server:
        s = settings(server.api_base, timeout=0.5, first_token_timeout=5, max_retries=0)
        client = LLMClient(max_concurrency=2)

        async def both():
            prompts = [[{"role": "user", "content": f"Is call {i} right?"}] for i in range(2)]
            return await asyncio.gather(*(client.complete(s, m, "cot") for m in prompts))

        answers = asyncio.run(both())
    # The streamed answer taken apart as any other: its think block is reasoning, the rest the answer.
    assert [(a.reasoning, a.text) for a in answers] == [
        ("Checked.", "<judge>True</judge><reason>looks right</reason>")
    ] * 2
    assert all(r.body["stream"] is True for r in server.requests)
    usage = client.used.per_stage["cot"]
    assert usage.queue_seconds >= 0.6 + 0.6, "each waited for its first token: 0.6 s, and 1.2 s behind the other"
    assert usage.seconds < 0.5, "from the first token to the end: the words, not the queue"
    assert (usage.prompt_tokens, usage.completion_tokens) == (20, 10), "the server's own usage, from the stream"


@pytest.mark.parametrize("reported", [True, False])
def test_a_streamed_answer_without_usage_is_counted_here_and_said_so(reported):
    # LiteLLM puts a usage of its own on a stream's last chunk when the server sent none: it was taken for the
    # server's, and neither tokens_counted_locally nor the note said that the tokens were only estimated.
    with FakeLLM(lambda r: Reply(YES, usage=reported, prompt_tokens=40, completion_tokens=30)) as server:
        client = LLMClient(max_concurrency=2)
        answer = ask(settings(server.api_base, first_token_timeout=5, max_retries=0), client=client)
    assert answer.text == "<judge>True</judge><reason>looks right</reason>"
    assert server.requests[0].body["stream"] is True
    usage, counted = client.used.per_stage["cot"], client.used.as_dict().get("tokens_counted_locally")
    if reported:
        assert (usage.prompt_tokens, usage.completion_tokens, counted) == (40, 30, None)
        assert not any("without token usage" in note for note in client.notes)
        return
    litellm = load_litellm()
    expected = litellm.token_counter(
        model="openai/fake-judge", messages=[{"role": "user", "content": "Is this call right?"}]
    )
    assert usage.prompt_tokens == expected and counted == {"openai/fake-judge": 1}
    assert any("without token usage" in note for note in client.notes)


def test_a_first_token_later_than_first_token_timeout_says_which_setting_to_raise():
    with FakeLLM(lambda r: Reply(YES, delay=1.0)) as server:
        result = ask(settings(server.api_base, first_token_timeout=0.3, max_retries=0))
    assert isinstance(result, JudgeCallError), result
    assert f"no answer from {server.api_base} within first_token_timeout = 0.3 s" in str(result)


def test_a_stream_that_stalls_after_its_first_token_is_held_to_timeout():
    with FakeLLM(lambda r: Reply(YES, chunk_delay=0.3)) as server:
        result = ask(settings(server.api_base, first_token_timeout=5, timeout=0.5, max_retries=0))
    assert isinstance(result, JudgeCallError), result
    assert "within timeout = 0.5 s" in str(result)


# --- the progress display ------------------------------------------------------------------------


def test_judge_calls_reach_the_progress_display_before_any_record_finishes(tmp_path):
    seen: list[tuple[int, int, int]] = []  # (records finished, calls answered, calls in flight) when told
    finished = []

    def script(request):
        return Reply(YES, delay=0.15)

    with FakeLLM(script) as server:
        path = write(tmp_path, server, rows=[forecast_row("a")])
        progress = Progress(
            on_outcome=finished.append,
            on_judge=lambda stats: seen.append((len(finished), stats["calls"], stats["in_flight"])),
        )
        run_pipeline(load_pipeline(path), progress=progress)
    assert finished == ["kept"]
    before = [s for s in seen if s[0] == 0]
    assert (0, 0, 1) in before, "the first call in flight is shown at once"
    assert any(calls >= 1 for _, calls, _ in before), "answered calls are shown before the record finishes"
    assert len({stage_of(r.prompt) for r in server.requests}) == 5


def test_the_documented_single_slot_profile_loads_as_it_says(tmp_path):
    import re

    from tests.conftest import REPO, write_jsonl

    text = (REPO / "docs" / "judges.md").read_text()
    profile = re.search(r"```toml\n(.*?)```", text.split("## A local single-slot server", 1)[1], re.S).group(1)
    write_jsonl(tmp_path / "in.jsonl", [forecast_row("r")])
    (tmp_path / "p.toml").write_text(f'[input]\npath = "in.jsonl"\n[output]\ndir = "run"\n{profile}')
    pipeline = load_pipeline(tmp_path / "p.toml")
    judge = pipeline.stages[1].judge.judges[0]
    assert pipeline.judging.max_concurrency == 1
    assert (judge.max_tokens, judge.timeout, judge.first_token_timeout, judge.context_window) == (512, 120, 600, 2048)
