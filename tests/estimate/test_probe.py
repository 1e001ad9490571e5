"""refine estimate --probe against servers that take one call at a time or many, answers outside the protocol, and
prompts too long for their model: what the estimate says of them."""

import json

import pytest
from click.testing import CliRunner

from funreason_refine.cli import main
from funreason_refine.config import load_pipeline
from funreason_refine.engine import run_pipeline
from funreason_refine.estimate import estimate
from funreason_refine.testing.fake_llm import FakeLLM, Reply
from tests.estimate.test_estimate import YES, forecast, pipeline

STAGES = ("classification", "query_tool", "cot", "function_params", "format")
ROWS = [forecast(str(i), city=f"City {i}") for i in range(4)]  # 20 calls; --probe 3: 15 of them


@pytest.fixture(autouse=True)
def key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")


def paced(request):
    return Reply(YES, delay=0.2, completion_tokens=20)


def test_the_probe_measures_a_single_slot_server_and_the_time_and_queue_follow(tmp_path):
    rows = [forecast(str(i), city=f"City {i}") for i in range(12)]  # 60 calls: the probe makes 15 of them
    with FakeLLM(paced, max_concurrency=1) as server:
        probed = estimate(load_pipeline(pipeline(tmp_path, rows, server, judge="max_concurrency = 16")), probes=3)
    assert len(server.requests) == 15
    (time,) = probed.servers.values()
    assert 0.8 <= time.at_once <= 1.4, time
    assert "measured by refine estimate --probe" in time.source
    assert 0.2 <= time.call_seconds < 0.35, "timed alone: a call's own seconds, not its wait behind others"
    waves = probed.findings.servers["openai/fake"].waves
    assert [w.calls for w in waves] == [2, 4, 4], "after one call of each stage alone, 2 at once, then 4"
    assert time.queue_seconds == pytest.approx(time.call_seconds * (16 / time.at_once - 1), rel=0.01)
    # The 45 calls the probe left (its 15 are cached: free), one at a time.
    assert probed.total.seconds.low == pytest.approx(45 * time.call_seconds / time.at_once, rel=0.01)


def test_a_server_that_keeps_up_with_the_probe_is_not_held_to_what_the_probe_sent(tmp_path):
    rows = [forecast(str(i), city=f"City {i}") for i in range(12)]
    # Slower calls than paced's. The time this process takes for each call (the client, the server's thread) adds
    # to a wave of 4 four times and to a call alone once: it must stay under a call's seconds / 11 for the wave to
    # read as at least KEPT_UP x 4 = 3.2 calls at once. At 0.2 s a call, a loaded machine's 21 ms read as 3.1.
    with FakeLLM(lambda r: Reply(YES, delay=0.5, completion_tokens=20)) as server:
        probed = estimate(load_pipeline(pipeline(tmp_path, rows, server, judge="max_concurrency = 16")), probes=3)
    (time,) = probed.servers.values()
    assert time.at_once is None and time.queue_seconds == 0.0
    assert "it kept up with 4 calls at once" in time.source
    assert probed.findings.servers["openai/fake"].kept_up
    assert probed.total.seconds.low < 45 * time.call_seconds / 4


def test_what_the_probe_found_is_kept_and_a_later_estimate_uses_it(tmp_path):
    with FakeLLM(paced, max_concurrency=1) as server:
        path = pipeline(tmp_path, ROWS, server, judge="max_concurrency = 16\ntimeout = 1")
        CliRunner().invoke(main, ["estimate", str(path), "--probe", "3"], catch_exceptions=False)
        later = CliRunner().invoke(main, ["estimate", str(path), "--json"], catch_exceptions=False)
        table = CliRunner().invoke(main, ["estimate", str(path)], catch_exceptions=False)
    assert json.loads((tmp_path / "run" / "probe.json").read_text())["servers"]["openai/fake"]["concurrency"] <= 1.4
    figures = json.loads(later.output)
    server = figures["servers"]["openai/fake"]
    assert server["in_flight"] == 16 and server["queue_seconds"] > 1.0
    assert figures["probe"]["servers"]["openai/fake"]["waves"]
    (warning,) = figures["warnings"]
    assert "would time calls out" in warning and "set max_concurrency = 1 and first_token_timeout" in warning
    assert "with 16 in flight, each waits about" in table.output and "s in the server's queue" in table.output
    assert "would time calls out" in table.output


def test_answers_outside_the_protocol_are_counted_asked_again_and_the_calls_follow(tmp_path):
    def script(request):
        asked = "\n".join(str(m.get("content")) for m in request.messages)
        if any(m.get("role") == "assistant" for m in request.messages):  # the re-ask: the bad answer quoted
            return "garbage" if "===== COT =====" in asked else YES
        if "The user query can be solved" in asked or "===== COT =====" in asked:
            return "I think it is fine."  # no verdict
        return YES

    with FakeLLM(script) as server:
        path = pipeline(tmp_path, ROWS, server)
        result = CliRunner().invoke(main, ["estimate", str(path), "--probe", "1"], catch_exceptions=False)
        probed = estimate(load_pipeline(path))  # reads probe.json
    protocol = probed.findings.protocol
    assert (protocol["query_tool"].answers, protocol["query_tool"].failures, protocol["query_tool"].reasks) == (2, 1, 1)
    assert (protocol["cot"].failures, protocol["cot"].reasks, protocol["cot"].given_up) == (3, 2, 1)
    # Each verdict takes two calls; the cache answers the probed record's first ask (its chain found a verdict, so
    # it is kept). Its re-ask quotes the probe's answer, which a dry run does not have: the run reads that back
    # too, so the estimate is one call high.
    assert probed.stages["query_tool"].calls.low == 2 * 4 - 1
    assert probed.stages["format"].calls.low == 4 - 1
    assert "8 judge answer(s), 4 outside the answer protocol, 3 asked again, 1 verdict(s) given up" in result.output
    assert "probe: 1 call(s) failed; the first: cot: openai/fake did not follow the answer protocol" in result.output
    # The probe gave up the one CoT verdict it asked for: every record would end in errors.jsonl at cot, as the
    # run's do.
    assert probed.given_up == {"cot": 4}
    assert "about 4 record(s) would end in errors.jsonl (cot 4), no verdict in the answers" in " ".join(
        result.output.split()
    )
    with FakeLLM(script) as server:
        path = pipeline(tmp_path, ROWS, server)
        outcomes = run_pipeline(load_pipeline(path)).summary.as_dict()["outcomes"]
    assert outcomes["errors"] == 4


LONG_COT = "The user wants a forecast: get_forecast for Oslo. " + "Then I think again. " * 300


def test_prompts_too_long_for_their_model_are_counted_by_estimate_and_validate(tmp_path):
    rows = [*ROWS, forecast("long", city="Oslo", days=9) | {"cot": LONG_COT}]
    with FakeLLM(lambda r: YES) as server:
        limited = pipeline(tmp_path / "limited", rows, server, judge="max_prompt_tokens = 1500")
        small = pipeline(tmp_path / "small", rows, server, judge="context_window = 2048\nmax_tokens = 256")
        over_limit = json.loads(CliRunner().invoke(main, ["estimate", str(limited), "--json"]).output)
        over_window = json.loads(CliRunner().invoke(main, ["estimate", str(small), "--json"]).output)
        validated = CliRunner().invoke(main, ["validate", str(small), "--prompts"])
        fine = CliRunner().invoke(main, ["validate", str(limited), "--prompts"])
        unknown = CliRunner().invoke(main, ["validate", str(pipeline(tmp_path / "plain", rows, server)), "--prompts"])
        plain = CliRunner().invoke(main, ["validate", str(limited)])
    assert server.requests == [], "counted here: nothing is sent"
    assert over_limit["long_prompts"]["prompt_too_long"] == {"cot": 1}
    assert over_limit["stages"]["function_params"]["calls"]["low"] == 4, "the discarded record asks no further stage"
    assert over_window["long_prompts"]["context_window_exceeded"] == {"cot": 1}
    assert (
        "is over its context window (2,048 tokens (prompt + max_tokens), its context_window setting)"
        in (over_window["long_prompts"]["examples"][0])
    )
    assert validated.exit_code == 1, validated.output
    assert "1 record(s) with a prompt over the model's context window" in validated.output
    assert "record long (" in validated.output and "a run would put them in errors.jsonl" in validated.output
    assert fine.exit_code == 0 and "1 record(s) with a prompt over max_prompt_tokens" in fine.output
    assert unknown.exit_code == 0 and "the context window of openai/fake is not known" in unknown.output
    assert "every prompt fits" in unknown.output
    assert "`refine validate --prompts` counts" in plain.output
