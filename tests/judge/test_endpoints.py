"""Judge fleets at the client: server choice, failover, probe-back, outages, rate limits, over real HTTP."""

import asyncio
import threading
import time

import pytest

from funreason_refine.judge.cache import AnswerCache, Cached
from funreason_refine.judge.client import JudgeCallError, JudgeOutage, LLMClient
from funreason_refine.judge.settings import JudgeSettings, ModelSettings
from funreason_refine.testing.fake_llm import FakeLLM, Reply

YES = "<judge>True</judge>"


@pytest.fixture(autouse=True)
def key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")


def settings(**kw) -> ModelSettings:
    return ModelSettings.model_validate({"model": "openai/fake-judge", "timeout": 2, "max_retries": 3, **kw})


def ask(client: LLMClient, s: ModelSettings, n: int, stage: str = "cot"):
    """n different prompts at once; the answers (or exceptions) in order."""

    async def main():
        calls = [client.complete(s, [{"role": "user", "content": f"{stage} prompt {i}"}], stage) for i in range(n)]
        return await asyncio.gather(*calls, return_exceptions=True)

    return asyncio.run(main())


def later(seconds: float, action) -> threading.Thread:
    thread = threading.Thread(target=lambda: (time.sleep(seconds), action()), daemon=True)
    thread.start()
    return thread


def test_calls_fill_the_server_with_the_most_free_slots_times_its_weight():
    slow = Reply(text=YES, delay=0.3)
    with FakeLLM(lambda r: slow) as a, FakeLLM(lambda r: slow) as b, FakeLLM(lambda r: slow) as c:
        s = settings(
            endpoints=[
                {"api_base": a.api_base, "max_concurrency": 4},
                {"api_base": b.api_base, "max_concurrency": 2},
                {"api_base": c.api_base, "max_concurrency": 2, "weight": 0.1},
            ]
        )
        client = LLMClient(max_concurrency=8)
        # Scores are free slots x weight: a 4, b 2, c 0.2; c gets a call only once a and b are full.
        ask(client, s, 6)
        assert (len(a.requests), len(b.requests), len(c.requests)) == (4, 2, 0)
        ask(client, s, 7, stage="again")
        assert (len(a.requests), len(b.requests), len(c.requests)) == (8, 4, 1)
    stats = client.endpoint_stats()["openai/fake-judge"]
    assert [row["api_base"] for row in stats] == [a.api_base, b.api_base, c.api_base]
    assert [row["calls"] for row in stats] == [8, 4, 1] and all(row["errors"] == 0 for row in stats)
    assert all(0.25 < row["latency_p50_s"] <= row["latency_p95_s"] < 2 for row in stats)


def test_no_server_holds_more_calls_than_its_max_concurrency():
    peak = {"now": 0, "max": 0}
    lock = threading.Lock()

    def script(r):
        with lock:
            peak["now"] += 1
            peak["max"] = max(peak["max"], peak["now"])
        time.sleep(0.05)
        with lock:
            peak["now"] -= 1
        return YES

    with FakeLLM(script) as a:
        client = LLMClient(max_concurrency=16)
        answers = ask(client, settings(endpoints=[{"api_base": a.api_base, "max_concurrency": 3}]), 12)
    assert all(x.text == YES for x in answers) and peak["max"] == 3


def test_a_killed_server_leaves_the_rotation_its_calls_finish_elsewhere_and_it_is_probed_back():
    with FakeLLM(lambda r: Reply(text=YES, delay=0.2)) as a, FakeLLM(lambda r: Reply(text=YES, delay=0.2)) as b:
        s = settings(api_base=[a.api_base, b.api_base], outage_timeout=2)  # rests of at most 0.4 s
        client = LLMClient(max_concurrency=8)
        killer = later(0.1, a.kill)  # a dies with 4 calls in flight
        answers = ask(client, s, 16)
        killer.join()
        assert all(x.text == YES for x in answers)
        usage = client.usage["cot"]
        assert usage.calls == 16 and usage.retries >= 4  # a call that moved is still one call
        row_a = client.endpoint_stats()["openai/fake-judge"][0]
        assert row_a["errors"] >= 3 and row_a["times_out_of_rotation"] == 1 and not row_a["in_rotation"]
        with FakeLLM(lambda r: YES, port=a.port) as a_again:
            time.sleep(0.5)  # past the rest: the next calls probe a again
            ask(client, s, 8, stage="back")
            assert a_again.served >= 1
    row_a = client.endpoint_stats()["openai/fake-judge"][0]
    assert row_a["in_rotation"] and row_a["out_of_rotation_s"] >= 0.3


def test_a_request_that_fails_everywhere_is_a_call_error_not_an_outage():
    def script(r):
        return Reply(status=500, text="this prompt breaks me") if "poison" in r.prompt else YES

    with FakeLLM(script) as a, FakeLLM(script) as b:
        client = LLMClient(max_concurrency=4)
        s = settings(api_base=[a.api_base, b.api_base], max_retries=2)

        async def main():
            good = [client.complete(s, [{"role": "user", "content": f"fine {i}"}], "cot") for i in range(20)]
            bad = client.complete(s, [{"role": "user", "content": "poison"}], "cot")
            return await asyncio.gather(bad, *good, return_exceptions=True)

        bad, *good = asyncio.run(main())
    assert isinstance(bad, JudgeCallError) and "after 3 attempt(s)" in str(bad) and "this prompt breaks me" in str(bad)
    assert all(x.text == YES for x in good)


def test_a_server_that_answers_some_prompts_and_500s_the_rest_stays_in_rotation():
    # All records at one stage, and the server fails every prompt of it: the server is up (it just
    # answered), so these are the records' errors (retriable), not an outage that stops the run.
    def script(r):
        return Reply(status=500, text="cot is broken") if "cot" in r.prompt else YES

    with FakeLLM(script) as server:
        client = LLMClient(max_concurrency=8)
        s = settings(api_base=server.api_base, max_retries=1, outage_timeout=60)
        assert ask(client, s, 1, stage="before")[0].text == YES
        results = ask(client, s, 6)
    assert all(isinstance(x, JudgeCallError) and "cot is broken" in str(x) for x in results)
    (row,) = client.endpoint_stats()["openai/fake-judge"]
    assert row["in_rotation"] and row["times_out_of_rotation"] == 0 and row["errors"] == 12


def test_every_server_down_past_outage_timeout_raises_judge_outage_naming_the_judge_and_the_error():
    with FakeLLM(lambda r: YES) as a, FakeLLM(lambda r: YES) as b:
        s = settings(api_base=[a.api_base, b.api_base], outage_timeout=1)
        a.kill()
        b.kill()
        client = LLMClient(max_concurrency=4)
        start = time.perf_counter()
        results = ask(client, s, 3)
        took = time.perf_counter() - start
    assert all(isinstance(x, JudgeOutage) for x in results)
    assert 1 <= took < 5
    message = str(results[0])
    assert "judge openai/fake-judge" in message and a.api_base in message and b.api_base in message
    assert "connection refused at http://127.0.0.1:" in message and "check api_base" in message
    assert "run the same command again" in message
    assert not isinstance(results[0], JudgeCallError)  # never a record's error: the run stops instead


def test_calls_wait_through_an_outage_shorter_than_outage_timeout_and_resume():
    with FakeLLM(lambda r: YES) as a:
        port = a.port
        s = settings(api_base=a.api_base, outage_timeout=5, max_retries=1)
        a.kill()
        client = LLMClient(max_concurrency=4)
        servers = []
        restart = later(1.0, lambda: servers.append(FakeLLM(lambda r: YES, port=port).__enter__()))
        start = time.perf_counter()
        answers = ask(client, s, 6)
        took = time.perf_counter() - start
        restart.join()
        servers[0].__exit__(None, None, None)
    # max_retries = 1, yet nothing failed: waiting out an outage costs no retry
    assert all(x.text == YES for x in answers) and client.usage["cot"].calls == 6
    assert 1.0 <= took < 4


def test_a_rate_limited_server_sees_few_429s_when_the_limit_is_configured():
    # LiteLLM's first call in a process loads its provider's code (a second, several on a loaded machine); the calls
    # the limit admits meanwhile then leave together, a burst over the server's. One call first, to another server,
    # so that what the server counts is the pacing of the calls, not that one-time wait.
    with FakeLLM(lambda r: YES) as elsewhere:
        ask(LLMClient(max_concurrency=1), settings(api_base=elsewhere.api_base), 1)

    def flood(limit, calls, retries):
        with FakeLLM(lambda r: YES, max_requests_per_minute=1200, burst=20) as server:
            s = settings(api_base=server.api_base, max_requests_per_minute=limit, max_retries=retries)
            results = ask(LLMClient(max_concurrency=16), s, calls)
            return server.limited, results

    # 18 a second against the server's 20 a second: none, or a rare one when this machine's load
    # makes requests sent apart arrive together (retried after its Retry-After)
    limited, results = flood(1080, 40, retries=3)
    assert limited <= 2 and all(x.text == YES for x in results)
    limited, results = flood(None, 80, retries=0)  # unlimited, the same server refuses many
    assert limited >= 15 and any(isinstance(x, JudgeCallError) for x in results)


def test_a_token_limit_waits_for_the_tokens_a_call_used_not_for_its_max_tokens():
    # 600 tokens a minute is 10 a second. Each call asks for max_tokens = 200 but uses 5 (usage).
    with FakeLLM(lambda r: Reply(text=YES, prompt_tokens=3, completion_tokens=2)) as server:
        s = settings(api_base=server.api_base, max_tokens=200, max_tokens_per_minute=600)
        client = LLMClient(max_concurrency=1)
        start = time.perf_counter()
        answers = ask(client, s, 4)
        took = time.perf_counter() - start
    assert all(x.text == YES for x in answers)
    # Unsettled, the 200 reserved per call would take 20 s a call; settled, about 0.5 s a call.
    assert 1.0 <= took < 5


def test_moving_a_judge_to_other_servers_keeps_its_cached_answers(tmp_path):
    cache = AnswerCache(tmp_path)
    messages = [{"role": "user", "content": "Is this right?"}]
    with FakeLLM(lambda r: YES) as a, FakeLLM(lambda r: "<judge>False</judge>") as b:
        first = asyncio.run(LLMClient(1, cache).complete(settings(api_base=a.api_base), messages, "cot"))
        moved = settings(endpoints=[{"api_base": b.api_base, "max_concurrency": 8}], timeout=30, max_retries=1)
        again = asyncio.run(LLMClient(1, cache).complete(moved, messages, "cot"))
        assert (first.cached, again.cached, again.text) == (False, True, YES) and b.requests == []
        hotter = asyncio.run(
            LLMClient(1, cache).complete(settings(api_base=b.api_base, temperature=0.7), messages, "cot")
        )
        assert hotter.text == "<judge>False</judge>" and not hotter.cached


def test_answers_cached_under_the_old_key_with_the_server_in_it_are_still_read(tmp_path):
    earlier = AnswerCache(tmp_path)  # a run of an older version, which kept the server in the key
    messages = [{"role": "user", "content": "Is this right?"}]
    s = settings(api_base="http://127.0.0.1:9/v1")  # nothing listens there: only the cache can answer
    earlier.put(s.legacy_cache_key(messages), Cached("<judge>True</judge><reason>old</reason>", 10, 5, 0.0))
    earlier.close()
    cache = AnswerCache(tmp_path)
    answer = asyncio.run(LLMClient(1, cache).complete(s, messages, "cot"))
    assert answer.cached and "old" in answer.text
    assert cache.get(s.cache_key(messages)) is not None  # copied under the new key


def test_settings_take_servers_as_a_list_or_as_tables_and_fill_them():
    j = JudgeSettings(model="m", endpoints=[{"api_base": "http://a/v1", "max_concurrency": 32}, "http://b/v1"])
    assert [e.api_base for e in j.endpoint_list()] == ["http://a/v1", "http://b/v1"]
    assert j.max_concurrency == 16  # b has no max_concurrency of its own: the old default
    j = JudgeSettings(model="m", endpoints=[{"api_base": f"http://{h}/v1", "max_concurrency": 32} for h in "abcd"])
    assert j.max_concurrency == 128
    assert JudgeSettings(model="m", endpoints=j.endpoints, max_concurrency=40).max_concurrency == 40
    assert [e.api_base for e in JudgeSettings(model="m", api_base=["http://a", "http://b"]).endpoint_list()] == [
        "http://a",
        "http://b",
    ]
    with pytest.raises(ValueError, match="api_base and endpoints are both set"):
        ModelSettings(model="m", api_base="http://a", endpoints=[{"api_base": "http://b"}])
    with pytest.raises(ValueError, match="empty list of servers"):
        ModelSettings(model="m", api_base=[])
    same = [ModelSettings(model="m", api_base=x).sampling() for x in ("http://a", ["http://b", "http://c"], None)]
    assert same[0] == same[1] == same[2]


def test_one_client_keeps_its_rate_limits_across_event_loops():
    with FakeLLM(lambda r: YES) as server:
        client = LLMClient(max_concurrency=32)
        s = settings(api_base=server.api_base, max_requests_per_minute=6000)  # 100 a second, 100 at once
        first = ask(client, s, 120)  # the last 20 wait in the bucket: its lock is taken in this loop
        second = ask(client, s, 120, stage="again")  # ... and again in a new one
    assert all(x.text == YES for x in first + second) and server.served == 240
