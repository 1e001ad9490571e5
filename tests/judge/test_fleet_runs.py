"""Judged runs over several servers: a server killed and restarted mid-run, servers in the pipeline file."""

import re
import threading
import time

import pytest

from funreason_refine.config import load_pipeline
from funreason_refine.engine import run_pipeline
from funreason_refine.errors import ConfigError
from funreason_refine.testing.fake_llm import FakeLLM, Reply
from tests.conftest import REPO, read_jsonl, write_jsonl
from tests.judge.test_judged_runs import YES, forecast_row


@pytest.fixture(autouse=True)
def key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")


def write(tmp_path, judge: str, stages: str = "", rows=None):
    tmp_path.mkdir(parents=True, exist_ok=True)
    write_jsonl(tmp_path / "in.jsonl", rows or [forecast_row("r")])
    path = tmp_path / "pipeline.toml"
    path.write_text(
        f'[input]\npath = "in.jsonl"\n[output]\ndir = "run"\n[judge]\nmodel = "openai/fake-judge"\n{judge}\n{stages}'
    )
    return path


def test_a_server_killed_and_restarted_mid_run_loses_and_repeats_nothing(tmp_path):
    rows = [forecast_row(f"r{i}", days=1 + i) for i in range(40)]  # 40 different prompts per stage
    answer = Reply(text=YES, delay=0.05)
    restarted: list[FakeLLM] = []

    def kill_then_restart(server):
        port = server.port
        server.kill()
        time.sleep(0.3)
        restarted.append(FakeLLM(lambda r: answer, port=port).__enter__())

    def script_a(request):
        if len(a.requests) == 30:  # a dies with calls in flight, a third of the way through
            threading.Thread(target=kill_then_restart, args=(a,), daemon=True).start()
        return answer

    with FakeLLM(script_a) as a, FakeLLM(lambda r: answer) as b:
        judge = (
            f'outage_timeout = 2\ntimeout = 5\n[[judge.endpoints]]\napi_base = "{a.api_base}"\nmax_concurrency = 8\n'
            f'[[judge.endpoints]]\napi_base = "{b.api_base}"\nmax_concurrency = 8\n'
        )
        result = run_pipeline(load_pipeline(write(tmp_path, judge, rows=rows)))
        for server in restarted:
            server.__exit__(None, None, None)
    run = tmp_path / "run"
    assert result.summary.as_dict()["outcomes"] == {"kept": 40, "discarded": 0, "quarantined": 0, "errors": 0}
    assert [r["id"] for r in read_jsonl(run / "kept.jsonl")] == [f"r{i}" for i in range(40)]
    assert read_jsonl(run / "errors.jsonl") == [] and read_jsonl(run / "discarded.jsonl") == []
    judge_usage = result.summary.as_dict()["judge"]
    assert judge_usage["calls"] == 200 and judge_usage["retries"] >= 1  # each call once, however many tries
    assert restarted and restarted[0].served >= 1  # the restarted server was probed back into rotation
    assert a.served + b.served + restarted[0].served >= 200


def test_servers_in_the_pipeline_file_fill_the_judge_and_a_stage_can_name_its_own(tmp_path):
    judge = (
        "max_requests_per_minute = 600\n"
        '[[judge.endpoints]]\napi_base = "http://gpu-1:8000/v1"\nmax_concurrency = 32\n'
        '[[judge.endpoints]]\napi_base = "http://gpu-2:8000/v1"\nmax_concurrency = 16\nweight = 2\n'
    )
    stages = (
        '[[stages]]\nname = "query_tool"\n'
        '[[stages]]\nname = "cot"\njudge = {api_base = "http://gpu-3:8000/v1", temperature = 0.3}\n'
    )
    pipeline = load_pipeline(write(tmp_path, judge, stages))
    judging = pipeline.judging
    assert judging.max_concurrency == 48  # the servers' slots, summed
    stage = {s.name: s for s in pipeline.stages}
    (query_tool,) = stage["query_tool"].judge.judges
    assert [(e.api_base, e.max_concurrency, e.weight) for e in query_tool.endpoint_list()] == [
        ("http://gpu-1:8000/v1", 32, 1.0),
        ("http://gpu-2:8000/v1", 16, 2.0),
    ]
    assert query_tool.max_requests_per_minute == 600
    (cot,) = stage["cot"].judge.judges
    assert [e.api_base for e in cot.endpoint_list()] == ["http://gpu-3:8000/v1"] and cot.endpoints is None


def test_moving_the_judge_to_other_servers_keeps_the_pipeline_the_same(tmp_path):
    one = load_pipeline(write(tmp_path, 'api_base = "http://localhost:8000/v1"\ntimeout = 30'))
    fleet = load_pipeline(
        write(
            tmp_path,
            'api_base = ["http://gpu-1:8000/v1", "http://gpu-2:8000/v1"]\nmax_tokens_per_minute = 90000\n'
            "outage_timeout = 60\nmax_retries = 2",
        )
    )
    assert one.config_hash == fleet.config_hash
    hotter = load_pipeline(write(tmp_path, 'api_base = "http://localhost:8000/v1"\ntemperature = 0.5'))
    assert hotter.config_hash != one.config_hash


@pytest.mark.parametrize(
    "judge, words",
    [
        (
            '[[judge.endpoints]]\napi_base = "http://a/v1"\nmax_concurrency = 0',
            "[judge] key 'endpoints.0.max_concurrency'",
        ),
        ("[[judge.endpoints]]\nmax_concurrency = 8", "[judge] key 'endpoints.0.api_base'"),
        ('[[judge.endpoints]]\napi_base = "http://a/v1"\nweigth = 2', "[judge] key 'endpoints.0.weigth'"),
        (
            'api_base = "http://a/v1"\n[[judge.endpoints]]\napi_base = "http://b/v1"',
            "api_base and endpoints are both set",
        ),
        ("api_base = []", "empty list of servers"),
        ("outage_timeout = 0", "[judge] key 'outage_timeout'"),
        ("max_tokens_per_minute = -5", "[judge] key 'max_tokens_per_minute'"),
    ],
)
def test_server_settings_problems_name_the_key(tmp_path, judge, words):
    with pytest.raises(ConfigError) as caught:
        load_pipeline(write(tmp_path, judge))
    assert words in str(caught.value)


def test_the_docs_fleet_example_loads_as_written(tmp_path):
    scaling = (REPO / "docs" / "scaling.md").read_text(encoding="utf-8")
    example = re.search(r"```toml\n(.*?)```", scaling.split("## Fleets and rate limits", 1)[1], re.S).group(1)
    write_jsonl(tmp_path / "in.jsonl", [forecast_row("r")])
    (tmp_path / "p.toml").write_text(f'[input]\npath = "in.jsonl"\n[output]\ndir = "run"\n{example}')
    pipeline = load_pipeline(tmp_path / "p.toml")
    (cot,) = pipeline.stages
    (judge,) = cot.judge.judges
    assert [(e.api_base, e.weight) for e in judge.endpoint_list()] == [
        ("http://gpu-1:8000/v1", 1.0),
        ("http://gpu-2:8000/v1", 2.0),
    ]
    assert pipeline.judging.max_concurrency == 64 and cot.generator.max_tokens_per_minute == 200000


def test_an_outage_longer_than_outage_timeout_stops_the_run_cleanly_and_it_resumes_to_the_same_bytes(tmp_path):
    from click.testing import CliRunner

    from funreason_refine.cli import main

    rows = [forecast_row(f"r{i}", days=1 + i) for i in range(30)]
    answer = Reply(text=YES, delay=0.02)

    def dies_after_40(request):
        if len(server.requests) == 40:
            threading.Thread(target=server.kill, daemon=True).start()  # and never comes back
        return answer

    with FakeLLM(dies_after_40) as server:
        judge = f'api_base = "{server.api_base}"\noutage_timeout = 1\ntimeout = 2\nmax_concurrency = 4\n'
        path = write(tmp_path / "stopped", judge, rows=rows)
        result = CliRunner().invoke(main, ["run", str(path)])
    assert result.exit_code == 4, result.output  # a judge outage, told apart from other failures
    assert "no server answered" in result.output and "run the same command again" in result.output
    stopped = tmp_path / "stopped" / "run"
    assert not (stopped / "errors.jsonl").read_bytes()  # records in flight are redone, not errors
    done = len(read_jsonl(stopped / "kept.jsonl"))
    assert 0 < done < 30
    with FakeLLM(lambda r: answer) as server:  # the judge is back, on another port
        judge = f'api_base = "{server.api_base}"\noutage_timeout = 1\ntimeout = 2\nmax_concurrency = 4\n'
        resumed = run_pipeline(load_pipeline(write(tmp_path / "stopped", judge, rows=rows)))
        run_pipeline(load_pipeline(write(tmp_path / "reference", judge, rows=rows)))
    assert resumed.resumed == done and resumed.summary.as_dict()["complete"]
    reference_run = tmp_path / "reference" / "run"
    for kind in ("kept", "discarded", "errors"):  # the same lines, but for where each input file lies
        ours = (stopped / f"{kind}.jsonl").read_text().replace(str(tmp_path / "stopped"), "")
        assert ours == (reference_run / f"{kind}.jsonl").read_text().replace(str(tmp_path / "reference"), "")
