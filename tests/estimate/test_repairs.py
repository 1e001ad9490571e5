"""refine estimate: what repairing a judge's failing verdicts adds, apart from the range, checked against runs."""

import json

import pytest
from click.testing import CliRunner

from funreason_refine.cli import main
from funreason_refine.config import load_pipeline
from funreason_refine.engine import run_pipeline
from funreason_refine.estimate import estimate
from funreason_refine.estimate.findings import Findings
from funreason_refine.estimate.table import repair_line
from funreason_refine.testing.fake_llm import FakeLLM, Reply
from tests.estimate.test_estimate import MIXED, PRICES, YES, forecast, openai_usage, pipeline
from tests.estimate.test_estimate import key as key  # noqa: F401 (the autouse fixture: an API key in the environment)

ROWS = [forecast(str(i), city=f"City {i}", days=4) for i in range(10)]
WRONG = ("City 3", "City 7")  # the function_params judge corrects these records' days: 4 -> 9
NEWFC = "<judge>False</judge><reason>the query asks for 9 days</reason><NewFC>[get_forecast(city='{}', days=9)]</NewFC>"
NO = "<judge>False</judge><reason>the CoT does not say why</reason>"
WRITTEN = "I call get_forecast for the city and the days the user asked for." + " step" * 20


def corrector(request):
    """The function_params judge corrects the WRONG records (once: the corrected call has days=9); the writer
    writes a CoT; every other answer passes."""
    prompt = request.prompt
    if request.model == "writer":
        text = WRITTEN
    elif "Question (function calls)" in prompt and "days=9" not in prompt:
        text = next((NEWFC.format(city) for city in WRONG if f"'{city}'" in prompt or f'"{city}"' in prompt), YES)
    else:
        text = YES
    return Reply(text, prompt_tokens=openai_usage(request.messages), completion_tokens=7)


def test_a_probed_share_of_corrected_calls_predicts_what_the_run_then_pays(tmp_path):
    with FakeLLM(corrector) as server:
        path = pipeline(tmp_path, ROWS, server)
        estimate(load_pipeline(path), probes=10, output_tokens=7)
        # The probe's answers out of the cache, so that the run pays for every call (probe.json stays).
        (tmp_path / "run" / "judge_cache.sqlite").unlink()
        probed = estimate(load_pipeline(path), output_tokens=7)
        judge = run_pipeline(load_pipeline(path)).summary.as_dict()["judge"]
    (repair,) = probed.repairs
    assert (repair.stage, repair.kind, repair.measured) == ("function_params", "corrected", "2 of 10")
    # A corrected answer is checked again by every stage before (each re-checks a changed answer), then by its own.
    assert repair.asks_again == ["classification", "query_tool", "cot", "function_params"]
    assert (repair.calls, repair.repairs) == (4, 2)
    # 2 of 10 is a rough share: its 95% interval (Agresti-Coull) is wide, and the line says so.
    assert repair.interval == pytest.approx((0.0459, 0.5206), abs=1e-4)
    assert "at 2 of 10 probe verdicts, about 2 repairs (95%: 0 to 5; more probes narrow it): +8 calls" in (
        repair_line(repair)
    )
    # The range alone misses them (its low end has every judge passing); with them, the run's calls and cost.
    assert probed.total.calls.low == 50 and judge["cached"] == 0
    assert probed.total.calls.low + repair.repairs * repair.calls == judge["calls"] == 58
    assert probed.total.cost_usd.low + repair.repairs * repair.cost_usd == pytest.approx(judge["cost_usd"], rel=0.01)


def test_unprobed_repairs_are_shown_at_one_verdict_in_ten_and_priced_from_the_rules_way(tmp_path):
    with FakeLLM(corrector) as server:
        path = pipeline(tmp_path, ROWS, server)
        before = estimate(load_pipeline(path), output_tokens=7)
        result = CliRunner().invoke(main, ["estimate", str(path), "--output-tokens", "7"], catch_exceptions=False)
        as_json = json.loads(CliRunner().invoke(main, ["estimate", str(path), "--json"]).output)
    assert server.requests == []
    (repair,) = before.repairs
    assert (repair.share, repair.measured, repair.repairs, repair.verdicts) == (0.1, None, 1, 10)
    per_call = {name: before.stages[name].cost_usd.low / before.stages[name].calls.low for name in repair.asks_again}
    assert repair.cost_usd == pytest.approx(sum(per_call.values()))
    text = " ".join(result.output.split())
    assert "repairs of failing verdicts apart (below)" in text
    assert (
        "repairs: function_params: the judge's corrected calls (NewFC) are checked again by the judges of "
        "classification, query_tool, cot and function_params: 4 calls," in text
    )
    assert "if 1 verdict in 10 leads to one (--probe P measures how many), about 1 repairs: +4 calls" in text
    assert as_json["repairs"][0]["asks_again"] == repair.asks_again
    assert as_json["range"]["repairs"].startswith("apart")


def test_a_stage_that_corrects_the_format_only_or_discards_adds_no_repair(tmp_path):
    stages = (
        '[[stages]]\nname = "classification"\n[[stages]]\nname = "function_params"\non_fail = "discard"\n'
        '[[stages]]\nname = "format"\n'
    )
    with FakeLLM(corrector) as server:
        before = estimate(load_pipeline(pipeline(tmp_path, ROWS, server, stages=stages)), output_tokens=7)
    # function_params discards what its judge fails; format's judge may correct the format only (the calls stay).
    assert before.repairs == []


def test_a_generator_rewrite_is_one_generator_call_and_the_stage_again(tmp_path):
    stages = '[[stages]]\nname = "cot"\non_fail = "regenerate"\n'
    rows = [*ROWS[:3], forecast("no cot", city="Bern", cot=False) | {"cot": None}]

    def script(request):
        if "Question (chain of thought)" in request.prompt and "get_forecast for City 1." in request.prompt:
            return Reply(NO, prompt_tokens=openai_usage(request.messages), completion_tokens=7)
        return corrector(request)

    with FakeLLM(script) as server:
        generate = f'[generate]\nmodel = "openai/writer"\napi_base = "{server.api_base}"\n{PRICES}'
        path = pipeline(tmp_path, rows, server, stages=stages + "\nrequired = true", generate=generate)
        estimate(load_pipeline(path), probes=10, output_tokens=7)
        (tmp_path / "run" / "judge_cache.sqlite").unlink()
        probed = estimate(load_pipeline(path), output_tokens=7)
        run = run_pipeline(load_pipeline(path)).summary.as_dict()
    (repair,) = probed.repairs
    assert (repair.kind, repair.asks_again, repair.measured) == ("rewritten", ["generator", "cot"], "1 of 4")
    assert "the generator rewrite the cot, which the judge of cot checks again: 2 calls" in repair_line(repair)
    # Four verdicts: three CoTs, and the one the generator wrote for the record without one (on the rules' way,
    # which prices the generator's call).
    assert repair.generator_priced
    assert repair.calls == 2 and round(repair.repairs) == 1
    assert probed.total.calls.low + repair.repairs * repair.calls == run["judge"]["calls"] == 7
    # A repair's calls are priced as long as their kinds' calls on the rules' way; the CoT judged again is the
    # generator's, longer than the one it replaced: a little dearer.
    paid = probed.total.cost_usd.low + repair.repairs * repair.cost_usd
    assert paid == pytest.approx(run["judge"]["cost_usd"], rel=0.05) and paid < run["judge"]["cost_usd"]
    assert run["stages"]["cot"]["regenerated"] == 2


def test_probe_json_of_before_the_verdicts_were_counted_still_reads(tmp_path):
    (tmp_path / "probe.json").write_text(
        json.dumps(
            {
                "written": "2026-12-01T00:00:00+00:00",
                "servers": {},
                "kinds": [],
                "protocol": {},
                "failed": 0,
                "errors": [],
            }
        )  # fmt: skip
    )
    found = Findings.load(tmp_path)
    assert found is not None and found.verdicts == {}


def test_a_stage_asked_for_fewer_records_counts_in_a_repair_in_that_proportion(tmp_path):
    with FakeLLM(corrector) as server:
        before = estimate(load_pipeline(pipeline(tmp_path, MIXED, server)), output_tokens=7)
    (repair,) = before.repairs
    # On the rules' way function_params is asked 5 times and the CoT judge 3 (two records have no CoT to judge):
    # a repaired record asks classification, query_tool and function_params again, and the CoT judge 3 times in 5.
    assert (before.stages["cot"].calls.low, before.stages["function_params"].calls.low) == (3, 5)
    assert repair.calls == pytest.approx(1 + 1 + 3 / 5 + 1)
