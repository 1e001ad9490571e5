"""refine estimate: what repairing a judge's failing verdicts adds, apart from the range, checked against runs."""

import json

import pytest
from click.testing import CliRunner

from funreason_refine.cli import main
from funreason_refine.config import load_pipeline
from funreason_refine.engine import run_pipeline
from funreason_refine.estimate import estimate
from funreason_refine.estimate.findings import Findings, StageVerdicts
from funreason_refine.estimate.repairs import CORRECTED, REWRITTEN, share_of
from funreason_refine.estimate.table import repair_line
from funreason_refine.stages.classification import Classification
from funreason_refine.testing.fake_llm import FakeLLM, Reply
from tests.estimate.test_estimate import MIXED, PRICES, YES, forecast, openai_usage, pipeline
from tests.estimate.test_estimate import key as key  # noqa: F401 (the autouse fixture: an API key in the environment)

ROWS = [forecast(str(i), city=f"City {i}", days=4) for i in range(10)]
WRONG = ("City 3", "City 7")  # the function_params judge corrects these records' days: 4 -> 9
NEWFC = "<judge>False</judge><reason>the query asks for 9 days</reason><NewFC>[get_forecast(city='{}', days=9)]</NewFC>"
NO = "<judge>False</judge><reason>the CoT does not say why</reason>"
WRITTEN = "I call get_forecast for the city and the days the user asked for." + " why" * 20


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
    assert "at 2 of 10 probe verdicts, about 2 repair(s) (95%: 0 to 5; more probes narrow it): +8 calls" in (
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
    assert "if 1 verdict in 10 leads to one (--probe P measures how many), about 1 repair(s): +4 calls" in text
    assert "(first repairs: a record failing again is repaired again, up to 3 times)" in text
    assert as_json["repairs"][0]["asks_again"] == repair.asks_again
    assert (as_json["repairs"][0]["calls"], as_json["repairs"][0]["repairs"]) == (4, 1)


@pytest.mark.parametrize(("on_fail", "repairs"), [("discard", 0), ("hard_pool", 0), ("truncate", 1)])
def test_a_stage_that_corrects_the_format_only_or_drops_its_failures_adds_no_repair(tmp_path, on_fail, repairs):
    stages = (
        '[[stages]]\nname = "classification"\n[[stages]]\nname = "function_params"\n'
        f'on_fail = "{on_fail}"\n[[stages]]\nname = "format"\n'
    )
    with FakeLLM(corrector) as server:
        before = estimate(load_pipeline(pipeline(tmp_path, ROWS, server, stages=stages)), output_tokens=7)
    # format's judge may correct the format only (the calls stay); function_params repairs only where on_fail
    # takes a repair ("truncate" does, for the turn in focus).
    assert [r.stage for r in before.repairs] == ["function_params"] * repairs


def test_a_stage_that_does_not_recheck_a_changed_answer_is_not_asked_again(tmp_path, monkeypatch):
    monkeypatch.setattr(Classification, "recheck_on_answer_change", False)
    with FakeLLM(corrector) as server:
        path = pipeline(tmp_path, ROWS, server)
        before = estimate(load_pipeline(path), output_tokens=7)
        run = run_pipeline(load_pipeline(path)).summary.as_dict()
    (repair,) = before.repairs
    assert repair.asks_again == ["query_tool", "cot", "function_params"]
    assert before.total.calls.low + 2 * repair.calls == run["judge"]["calls"] == 50 + 2 * 3


def test_a_generator_rewrite_is_one_generator_call_and_the_stage_again(tmp_path):
    stages = '[[stages]]\nname = "cot"\non_fail = "regenerate"\n'
    rows = [*ROWS[:3], forecast("no cot", city="Bern", cot=False) | {"cot": None}]

    def script(request):
        # The CoT of City 1 fails, and so does the dry run's stand-in for a CoT ("step step ..."), which only a
        # probe could show the judge: its verdict on it says nothing of the generator's CoTs, and is not counted.
        cot = "Question (chain of thought)" in request.prompt
        if cot and ("get_forecast for City 1." in request.prompt or "step step" in request.prompt):
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
    assert (repair.kind, repair.asks_again, repair.measured) == ("rewritten", ["generator", "cot"], "1 of 3")
    assert "the generator rewrite the cot, which cot checks again: 2 calls" in repair_line(repair)
    assert repair.generator_priced, "the record without a CoT has one written on the rules' way"
    # The share applies to every CoT verdict on the rules' way, the rewritten record's too (4): 4/3 repairs; the run
    # made one.
    assert repair.calls == 2 and repair.repairs == pytest.approx(4 / 3)
    assert probed.total.calls.low + 1 * repair.calls == run["judge"]["calls"] == 7
    # A repair's calls are priced as long as their kinds' calls on the rules' way; the CoT judged again is the
    # generator's, longer than the one it replaced: a little dearer.
    paid = probed.total.cost_usd.low + 1 * repair.cost_usd
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


def ensemble(vote, wrong):
    """function_params judged by three models, each correcting the records of its own cities."""

    def script(request):
        prompt, text = request.prompt, YES
        if "Question (function calls)" in prompt and "days=9" not in prompt:
            text = next((NEWFC.format(c) for c in wrong.get(request.model, ()) if f'"{c}"' in prompt), YES)
        return Reply(text, prompt_tokens=openai_usage(request.messages), completion_tokens=7)

    judges = ", ".join(f'{{model = "openai/judge-{n}"}}' for n in (1, 2, 3))
    stages = '[[stages]]\nname = "classification"\n[[stages]]\nname = "function_params"\n'
    stages += f'vote = "{vote}"\njudges = [{judges}]\n'
    return script, stages


@pytest.mark.parametrize(
    ("vote", "repaired"),
    [("unanimous", 4), ("majority", 1)],  # unanimous: any judge fails the record; majority: two of three must
)
def test_an_ensemble_repairs_by_its_vote_and_the_probe_counts_one_verdict_a_record(tmp_path, vote, repaired):
    wrong = {"judge-1": ("City 1", "City 2", "City 5"), "judge-2": ("City 5", "City 6")}
    script, stages = ensemble(vote, wrong)
    with FakeLLM(script) as server:
        path = pipeline(tmp_path, ROWS, server, stages=stages)
        estimate(load_pipeline(path), probes=10, output_tokens=7)
        (tmp_path / "run" / "judge_cache.sqlite").unlink()
        probed = estimate(load_pipeline(path), output_tokens=7)
        run = run_pipeline(load_pipeline(path)).summary.as_dict()
    (repair,) = probed.repairs
    assert repair.measured == f"{repaired} of 10", "one verdict per record: the panel's vote, not each judge's"
    assert repair.calls == 1 + 3, "classification's judge, then function_params' three"
    assert run["stages"]["function_params"]["regenerated"] == repaired
    assert probed.total.calls.low + repair.repairs * repair.calls == run["judge"]["calls"]


def test_a_scorers_failures_are_rewritten_too_at_an_assumed_share(tmp_path):
    def script(request):
        if request.model == "writer":
            return Reply(WRITTEN, prompt_tokens=50, completion_tokens=20)
        return Reply(probs=[0.1, 0.9])

    with FakeLLM(script) as server:
        stages = (
            '[[stages]]\nname = "cot"\non_fail = "regenerate"\njudge = false\nscorer = {model = "hosted_vllm/rm", '
            f'api_base = "{server.api_base}", kind = "classify", threshold = 0.5}}\n'
        )
        generate = f'[generate]\nmodel = "openai/writer"\napi_base = "{server.api_base}"\n{PRICES}'
        before = estimate(load_pipeline(pipeline(tmp_path, ROWS, server, stages=stages, generate=generate)), None, 7)
    (repair,) = before.repairs
    assert (repair.kind, repair.asks_again, repair.measurable, repair.repairs) == (
        "rewritten", ["generator", "cot"], False, 1,
    )  # fmt: skip
    assert not repair.generator_priced and repair.calls == 2, "no CoT was rewritten on the rules' way"
    assert "(a scorer's verdicts are not probed)" in repair_line(repair)
    assert "and the generator's call (none on the rules' way to price it by)" in repair_line(repair)


def test_after_a_run_the_verdicts_it_gave_lead_to_no_repair_still_to_pay(tmp_path):
    with FakeLLM(corrector) as server:
        path = pipeline(tmp_path, ROWS, server)
        before = estimate(load_pipeline(path), probes=10, output_tokens=7)
        run_pipeline(load_pipeline(path))
        after = estimate(load_pipeline(path), output_tokens=7)
    assert [r.repairs for r in before.repairs] == [2], "the probe's answers are cached; their repairs are to come"
    assert after.total.calls.low == 0 and after.repairs == []


def test_a_sample_is_scaled_up_to_the_whole_input_as_the_range_is(tmp_path):
    rows = [forecast(str(i), city=f"City {i}", days=4) for i in range(40)]
    with FakeLLM(corrector) as server:
        path = pipeline(tmp_path, rows, server)
        whole = estimate(load_pipeline(path), output_tokens=7)
        sampled = estimate(load_pipeline(path), sample=10, output_tokens=7)
    assert whole.repairs[0].verdicts == sampled.repairs[0].verdicts == 40
    assert sampled.repairs[0].repairs == whole.repairs[0].repairs == 4


def test_protocol_reasks_count_in_a_repairs_calls_at_the_probes_rate(tmp_path):
    def script(request):
        first = not any(m.get("role") == "assistant" for m in request.messages)
        if first and "Question (function calls)" in request.prompt:
            return Reply("I think it is fine.", prompt_tokens=openai_usage(request.messages), completion_tokens=7)
        return corrector(request)

    with FakeLLM(script) as server:
        path = pipeline(tmp_path, ROWS, server)
        probed = estimate(load_pipeline(path), probes=10, output_tokens=7)
    (repair,) = probed.repairs
    assert repair.calls == 1 + 1 + 1 + 2, "function_params' verdicts take two calls each (an answer, a re-ask)"
    # Every first answer is the probe's, cached; their re-asks are counted (this estimate raised KeyError before).
    assert probed.total.calls.low == 10 and probed.total.cached.low == 50


def test_a_share_is_of_the_verdicts_that_lead_to_that_repair():
    probed = StageVerdicts(verdicts=10, failing=3, corrected=2)
    # Corrected calls are taken as a repair; a failing verdict without them is rewritten (at a stage with a
    # generator), so each failing verdict counts in one share only.
    assert share_of(probed, CORRECTED)[:2] == (0.2, "2 of 10")
    assert share_of(probed, REWRITTEN)[:2] == (0.1, "1 of 10")
    assert share_of(None, CORRECTED) == (0.1, None, None)


def test_a_repairs_prompts_are_counted_as_the_model_counts_them(tmp_path):
    def doubled(request):  # the server counts twice the tokens LiteLLM's tokenizer does
        reply = corrector(request)
        return Reply(reply.text, prompt_tokens=2 * openai_usage(request.messages), completion_tokens=7)

    with FakeLLM(doubled) as server:
        path = pipeline(tmp_path, ROWS, server)
        probed = estimate(load_pipeline(path), probes=2, output_tokens=7)  # the first two records' answers
    (repair,) = probed.repairs
    per_call = {name: probed.stages[name].cost_usd.low / probed.stages[name].calls.low for name in repair.asks_again}
    assert repair.cost_usd == pytest.approx(sum(per_call.values()))


def test_each_judge_of_an_ensemble_may_give_a_records_verdict_up(tmp_path):
    def script(request):  # judge-2 never answers in the protocol about a CoT; judge-1 always does
        if request.model == "judge-2":
            return Reply("I think so.", prompt_tokens=openai_usage(request.messages), completion_tokens=7)
        return corrector(request)

    stages = '[[stages]]\nname = "cot"\njudges = [{model = "openai/judge-1"}, {model = "openai/judge-2"}]\n'
    with FakeLLM(script) as server:
        path = pipeline(tmp_path, ROWS[:4], server, stages=stages)
        probed = estimate(load_pipeline(path), probes=4, output_tokens=7)
        outcomes = run_pipeline(load_pipeline(path)).summary.as_dict()["outcomes"]
    # Half the judges' verdicts were given up, and every record had one of them: all four end in errors.jsonl.
    assert probed.given_up == {"cot": 4} and outcomes["errors"] == 4
