"""Scorers as a stage's judge, over real HTTP to the scripted server: yes_no through LiteLLM's logprobs,
classify and reward through vLLM's /classify and /pooling; the cut, the trail, the summary, resume."""

import json

import pytest

from funreason_refine.config import load_pipeline
from funreason_refine.engine import run_pipeline
from funreason_refine.errors import ConfigError
from funreason_refine.testing.fake_llm import FakeLLM, Reply
from tests.conftest import read_jsonl, refine, write_jsonl, xlam_row

WEATHER = {"name": "get_weather", "description": "Weather.", "parameters": {"city": {"type": "str"}}}


def rows(n, group=None):
    """Records whose query names their number: the script scores record i as SCORES[i]."""
    out = []
    for i in range(n):
        row = xlam_row(f"r{i}", query=f"Weather in city number {i}", tools=[WEATHER])
        if group is not None:
            row["meta"] = {"query_id": f"q{i // group}"}
        out.append(row)
    return out


def number(request) -> int:
    return int(json.dumps(request.body).split("city number ")[1].split('"')[0].split("\\")[0])


def pipeline(tmp_path, server, scorer, n=4, group=None, extra=""):
    write_jsonl(tmp_path / "in.jsonl", rows(n, group))
    path = tmp_path / "pipeline.toml"
    path.write_text(
        f'{extra}\n[input]\npath = "in.jsonl"\n[output]\ndir = "run"\n[[stages]]\nname = "classification"\n'
        f'[[stages]]\nname = "function_params"\nscorer = {{model = "hosted_vllm/scorer", '
        f'api_base = "{server.api_base}", timeout = 5, max_retries = 2, {scorer}}}\n'
    )
    return path


def outcomes(tmp_path):
    run = tmp_path / "run"
    return {kind: {r["id"]: r for r in read_jsonl(run / f"{kind}.jsonl")} for kind in ("kept", "discarded", "errors")}


def scored_step(line):
    [step] = [s for s in line["trail"] if s["score"] is not None]
    return step


def test_a_guard_model_scores_with_the_probability_of_no_and_discards_below_the_threshold(tmp_path):
    risk = [0.1, 0.8, 0.45, 0.6]  # Granite Guardian's "Yes": a function-calling hallucination was found
    with FakeLLM(lambda r: Reply.yes_no(risk[number(r)])) as server:
        run_pipeline(load_pipeline(pipeline(tmp_path, server, 'kind = "yes_no", threshold = 0.5')))
        request = server.requests[0]
    got = outcomes(tmp_path)
    assert sorted(got["kept"]) == ["r0", "r2"] and sorted(got["discarded"]) == ["r1", "r3"]
    assert scored_step(got["kept"]["r0"])["score"] == pytest.approx(0.9)
    discarded = got["discarded"]["r1"]
    assert (discarded["stage"], discarded["reason"]) == ("function_params", "low_score")
    assert discarded["message"] == "score 0.2 is below the threshold 0.5"
    assert scored_step(discarded)["judge"] == "hosted_vllm/scorer (yes_no)"
    # Granite Guardian's layout: the tools, the user's request, the calls; its chat template asks the question.
    assert [m["role"] for m in request.messages] == ["tools", "user", "assistant"]
    assert json.loads(request.messages[0]["content"])[0]["name"] == "get_weather"
    assert json.loads(request.messages[2]["content"]) == [{"name": "get_weather", "arguments": {"city": "Paris"}}]
    assert request.body["logprobs"] is True and request.body["top_logprobs"] == 5
    assert request.body["chat_template_kwargs"] == {"guardian_config": {"risk_name": "function_call"}}


def test_the_yes_or_no_token_is_found_where_the_model_writes_it_and_its_variants_add_up(tmp_path):
    # Granite Guardian 3.3 answers "<score> yes </score>": the score is read at the token that says it.
    tokens = [("<score>", {"<score>": 1.0}), (" yes", {" yes": 0.5, "Yes": 0.2, " no": 0.3}), ("</score>", {})]
    with FakeLLM(lambda r: Reply(text="<score> yes </score>", logprobs=tokens)) as server:
        path = pipeline(tmp_path, server, 'kind = "yes_no", template = "prompt", threshold = 0.5', n=1)
        run_pipeline(load_pipeline(path))
        prompt = server.requests[0].messages[0]["content"]
    assert scored_step(outcomes(tmp_path)["kept"]["r0"])["score"] == pytest.approx(0.7)
    assert "Weather in city number 0" in prompt and "Answer with one word: Yes or No" in prompt


def test_an_answer_without_yes_or_no_is_a_record_error_and_a_server_without_logprobs_stops_the_run(tmp_path):
    (tmp_path / "a").mkdir()
    with FakeLLM(lambda r: Reply(text="Maybe", logprobs=[("Maybe", {"Maybe": 1.0})])) as server:
        refine("run", pipeline(tmp_path / "a", server, 'kind = "yes_no", threshold = 0.5', n=1), code=3)
    [error] = outcomes(tmp_path / "a")["errors"].values()
    assert "answered 'Maybe'" in error["error"] and "yes_token" in error["error"]
    with FakeLLM(lambda r: "No") as server:  # a chat server that ignores logprobs
        (tmp_path / "b").mkdir()
        output = refine("run", pipeline(tmp_path / "b", server, 'kind = "yes_no", threshold = 0.5', n=1), code=1)
    assert "has no logprobs" in output


def test_a_classifier_is_asked_at_the_root_classify_endpoint_with_the_chat_and_its_tools(tmp_path):
    good = [0.9, 0.3, 0.6, 0.2]
    with FakeLLM(lambda r: Reply(probs=[1 - good[number(r)], good[number(r)]], prompt_tokens=42)) as server:
        run_pipeline(load_pipeline(pipeline(tmp_path, server, 'kind = "classify", threshold = 0.5')))
        # The records are scored concurrently: the first record's request, whichever came first.
        request = next(r for r in server.requests if "number 0" in json.dumps(r.body["messages"]))
    got = outcomes(tmp_path)
    assert sorted(got["kept"]) == ["r0", "r2"] and scored_step(got["kept"]["r2"])["score"] == pytest.approx(0.6)
    assert request.endpoint == "classify" and request.body["model"] == "scorer"  # without LiteLLM's prefix
    user, assistant = request.body["messages"]
    assert user == {"role": "user", "content": "Weather in city number 0"}
    assert assistant["tool_calls"][0]["function"] == {"name": "get_weather", "arguments": '{"city": "Paris"}'}
    assert request.body["chat_template_kwargs"]["tools"][0]["function"]["name"] == "get_weather"
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["judge"]["per_stage"]["function_params"]["prompt_tokens"] == 42 * 4
    scores = summary["stages"]["function_params"]["scores"]
    assert (scores["count"], scores["threshold"], scores["lowest"], scores["highest"]) == (4, 0.5, 0.2, 0.9)
    assert scores["bins"] == {"0.20": 1, "0.30": 1, "0.60": 1, "0.90": 1}


@pytest.mark.parametrize(
    ("reply", "label", "score"),
    [
        (Reply(probs=[0.2, 0.3, 0.5]), "positive_label = 2,", 0.5),
        (Reply(probs=[0.7]), "", 0.7),  # a one-label (sigmoid) classifier: its only output
    ],
)
def test_the_positive_label_is_read_by_index(tmp_path, reply, label, score):
    with FakeLLM(lambda r: reply) as server:
        run_pipeline(load_pipeline(pipeline(tmp_path, server, f'kind = "classify", {label} threshold = 0.1', n=1)))
    assert scored_step(outcomes(tmp_path)["kept"]["r0"])["score"] == pytest.approx(score)


def test_a_reward_model_scores_with_its_raw_value_from_pooling(tmp_path):
    rewards = [[[0.1], [2.5]], [-1.5]]  # per token (the last row is the sequence's), and one value
    with FakeLLM(lambda r: Reply(pooled=rewards[number(r)])) as server:
        run_pipeline(load_pipeline(pipeline(tmp_path, server, 'kind = "reward", threshold = 0.0', n=2)))
        assert {r.endpoint for r in server.requests} == {"pooling"}
        # vLLM serves a sequence reward model as a one-label classifier: the raw value, without its sigmoid.
        assert (server.requests[0].body["task"], server.requests[0].body["use_activation"]) == ("classify", False)
    got = outcomes(tmp_path)
    assert scored_step(got["kept"]["r0"])["score"] == 2.5 and scored_step(got["discarded"]["r1"])["score"] == -1.5


def test_scores_are_cached_retried_and_a_server_without_classify_stops_the_run(tmp_path):
    answers = iter([Reply(status=503), Reply(probs=[0.1, 0.9])])
    with FakeLLM(lambda r: next(answers, Reply(probs=[0.1, 0.9]))) as server:
        path = pipeline(tmp_path, server, 'kind = "classify", threshold = 0.5', n=1)
        first = run_pipeline(load_pipeline(path))
        again = run_pipeline(load_pipeline(path), fresh=True)
        assert len(server.requests) == 2  # the 503 and its retry; the fresh run took the answer from the cache
    assert first.summary.judge.retries == 1 and again.summary.judge.cached == 1
    with FakeLLM(lambda r: Reply(status=404, text="Not Found")) as server:
        (tmp_path / "b").mkdir()
        output = refine("run", pipeline(tmp_path / "b", server, 'kind = "classify", threshold = 0.5', n=1), code=1)
    assert "HTTP 404" in output and "/classify" in output and "no classify endpoint" in output


def test_without_a_threshold_the_scores_are_recorded_and_nothing_is_discarded(tmp_path):
    with FakeLLM(lambda r: Reply(probs=[0.9, 0.1])) as server:
        result = run_pipeline(load_pipeline(pipeline(tmp_path, server, 'kind = "classify"', n=2)))
    assert result.summary.outcomes["kept"] == 2
    assert result.summary.stages["function_params"].scores.count == 2
    assert result.summary.stages["function_params"].scores.threshold is None


def test_a_relative_cut_keeps_the_best_of_each_query_also_after_a_resume(tmp_path):
    good = [0.9, 0.5, 0.75, 0.3, 0.4, 0.2]  # queries q0 (records 0-2) and q1 (3-5)
    scorer = 'kind = "classify", threshold = 0.25, relative = {margin = 0.1}'
    with FakeLLM(lambda r: Reply(probs=[1 - good[number(r)], good[number(r)]])) as server:
        whole = tmp_path / "whole"
        whole.mkdir()
        run_pipeline(load_pipeline(pipeline(whole, server, scorer, n=6, group=3)))
        split = tmp_path / "split"
        split.mkdir()
        path = pipeline(split, server, scorer, n=6, group=3)
        # Stopped after the best of q0: resumed, the others of q0 compare with its score, read from its trail.
        run_pipeline(load_pipeline(path), limit=1)
        run_pipeline(load_pipeline(path))
    for folder in (whole, split):
        got = outcomes(folder)
        assert sorted(got["kept"]) == ["r0", "r3", "r4"], folder  # 0.3 is within 0.1 of 0.4
        reasons = {rid: line["reason"] for rid, line in got["discarded"].items()}
        assert reasons == {"r1": "below_best", "r2": "below_best", "r5": "low_score"}
        assert got["discarded"]["r2"]["message"] == (
            "score 0.75 is below the best of its 3 alternatives (0.9 minus margin 0.1)"
        )


def test_a_scorer_only_stage_and_scorer_table_mistakes_named_by_key(tmp_path):
    write_jsonl(tmp_path / "in.jsonl", rows(1))
    path = tmp_path / "pipeline.toml"
    table = 'model = "hosted_vllm/s", api_base = "http://127.0.0.1:9/v1"'
    path.write_text(
        '[input]\npath = "in.jsonl"\n[[stages]]\nname = "guard"\n'
        f'scorer = {{{table}, kind = "yes_no", batch = true}}\n'
        '[[stages]]\nname = "rm"\n'
        f'scorer = {{{table}, kind = "classify", thresold = 1}}\n'
        f'[[stages]]\nname = "guarded"\nscorer = {{{table}, kind = "classify", template = "guardian"}}\n'
        '[[stages]]\nname = "nowhere"\nscorer = {model = "hosted_vllm/s", kind = "reward"}\n'
    )
    with pytest.raises(ConfigError) as err:
        load_pipeline(path)
    problems = "\n".join(err.value.problems)
    assert "(name = 'guard') key 'scorer': batch = true: a scorer's calls cannot go as batch jobs" in problems
    assert "(name = 'rm') key 'scorer.thresold': Extra inputs are not permitted" in problems
    assert "template = 'guardian' does not go with kind = 'classify'; use conversation or prompt" in problems
    assert "(name = 'nowhere') key 'scorer': a reward scorer calls vLLM's /pooling on a server of yours" in problems
    assert "needs a judge" not in problems  # a scorer-only stage whose scorer is wrong is not told to get a judge
    path.write_text(f'[input]\npath = "in.jsonl"\n[[stages]]\nname = "guard"\nscorer = {{{table}, kind = "reward"}}\n')
    [stage] = load_pipeline(path).stages
    assert (stage.name, stage.plugin, stage.scorer.template) == ("guard", "scorer", "conversation")
    assert "guard" in refine("validate", path)


def test_a_conversation_is_scored_turn_by_turn_with_what_came_before(tmp_path):
    line = {
        "tools": [{"type": "function", "function": WEATHER}],
        "messages": [
            {"role": "user", "content": "Weather in Oslo?"},
            {"role": "assistant", "tool_calls": [_call("c1", "Oslo")]},
            {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
            {"role": "assistant", "content": "Sunny in Oslo."},
            {"role": "user", "content": "And in Bergen?"},
            {"role": "assistant", "tool_calls": [_call("c2", "Bergen")]},
        ],
    }
    write_jsonl(tmp_path / "in.jsonl", [line])
    with FakeLLM(lambda r: Reply(probs=[0.2, 0.8])) as server:
        path = tmp_path / "pipeline.toml"
        path.write_text(
            '[input]\npath = "in.jsonl"\n[output]\ndir = "run"\n[[stages]]\nname = "function_params"\n'
            f'scorer = {{model = "hosted_vllm/rm", api_base = "{server.api_base}", kind = "classify", '
            "threshold = 0.5}\n"
        )
        run_pipeline(load_pipeline(path))
        last = server.requests[-1].body["messages"]
    assert [m["role"] for m in last] == ["user", "assistant", "tool", "assistant", "user", "assistant"]
    assert last[-1]["tool_calls"][0]["function"]["arguments"] == '{"city": "Bergen"}'
    assert len(read_jsonl(tmp_path / "run" / "kept.jsonl")) == 1


def _call(call_id, city):
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": "get_weather", "arguments": json.dumps({"city": city})},
    }


def test_a_yes_or_no_without_a_usable_probability_is_a_record_error():
    from types import SimpleNamespace as NS

    from funreason_refine.errors import RefineError
    from funreason_refine.judge.reply import Reply as Answer
    from funreason_refine.judge.score_calls import read_yes_no
    from funreason_refine.judge.scorer_settings import ScorerSettings

    settings = ScorerSettings(model="hosted_vllm/g", kind="yes_no", api_base="http://h:1/v1")
    position = NS(token="Yes", logprob=None, top_logprobs=[NS(token="Yes", logprob=None), NS(token="No", logprob=None)])
    response = NS(choices=[NS(logprobs=NS(content=[position]))])
    with pytest.raises(RefineError, match="no 'yes' or 'no' token that has a probability"):
        read_yes_no(settings, Answer("Yes", None, None, 1, 1, "http://h:1/v1", 0.1, False, response))


@pytest.mark.parametrize(
    ("top", "said"),
    [
        ([], "with no top_logprobs at 'Yes'"),  # a server that returns logprobs but ignores top_logprobs
        ([("Yes", float("nan")), ("No", -1.0)], "a logprob that is not a number (NaN) at 'Yes'"),
    ],
)
def test_a_yes_or_no_whose_probability_the_server_did_not_give_is_never_read_as_0_or_1(top, said):
    from types import SimpleNamespace as NS

    from funreason_refine.errors import RefineError
    from funreason_refine.judge.reply import Reply as Answer
    from funreason_refine.judge.score_calls import read_yes_no
    from funreason_refine.judge.scorer_settings import ScorerSettings

    settings = ScorerSettings(model="hosted_vllm/g", kind="yes_no", template="prompt", api_base="http://h:1/v1")
    alternatives = [NS(token=t, logprob=p) for t, p in top]
    position = NS(token="Yes", logprob=-0.6 if top == [] else float("nan"), top_logprobs=alternatives)
    response = NS(choices=[NS(logprobs=NS(content=[position]))])
    # Before, the first read 1.0 (a 0.55 "Yes" alone), the second blamed the answer cache.
    with pytest.raises(RefineError, match=said.replace("(", r"\(").replace(")", r"\)")):
        read_yes_no(settings, Answer("Yes", None, None, 1, 1, "http://h:1/v1", 0.1, False, response))


def test_a_classifier_answering_logits_stops_the_run_rather_than_cut_them_as_probabilities(tmp_path):
    # A /classify whose activation is off (use_activation = false, an override of the pooler) answers logits.
    with FakeLLM(lambda r: Reply(probs=[-2.0, 3.0])) as server:
        output = refine("run", pipeline(tmp_path, server, 'kind = "classify", threshold = 0.5', n=1), code=1)
    assert "data[0].probs = [-2.0, 3.0], not probabilities between 0 and 1" in output and 'kind = "reward"' in output
    assert not (tmp_path / "run" / "kept.jsonl").read_text()


def test_shards_merged_add_their_score_histograms_up_to_the_one_process_run(tmp_path):
    good = [0.9, 0.3, 0.6, 0.2, 0.75, 0.55]
    scorer = 'kind = "classify", threshold = 0.5'
    with FakeLLM(lambda r: Reply(probs=[1 - good[number(r)], good[number(r)]])) as server:
        (tmp_path / "one").mkdir()
        run_pipeline(load_pipeline(pipeline(tmp_path / "one", server, scorer, n=6)))
        (tmp_path / "sharded").mkdir()
        path = pipeline(tmp_path / "sharded", server, scorer, n=6)
        for i in (0, 1):
            refine("run", path, "--shard", f"{i}/2")
        refine("merge", tmp_path / "sharded" / "run")
    one, merged = (json.loads((tmp_path / f / "run/summary.json").read_text()) for f in ("one", "sharded"))
    assert merged["stages"]["function_params"]["scores"] == one["stages"]["function_params"]["scores"]
    assert one["stages"]["function_params"]["scores"]["count"] == 6
    kept = [[(r["id"], r["trail"]) for r in read_jsonl(tmp_path / f / "run/kept.jsonl")] for f in ("one", "sharded")]
    assert kept[0] == kept[1] and len(kept[0]) == 4


def test_a_record_too_long_for_the_scorers_max_prompt_tokens_is_discarded_before_any_call(tmp_path):
    long = xlam_row("long", query="Weather in city number 0? " + "Please be quick. " * 300, tools=[WEATHER])
    with FakeLLM(lambda r: Reply.yes_no(0.1)) as server:
        path = pipeline(tmp_path, server, 'kind = "yes_no", threshold = 0.5, max_prompt_tokens = 400', n=2)
        write_jsonl(tmp_path / "in.jsonl", [*rows(2), long])
        run_pipeline(load_pipeline(path))
        asked = [json.dumps(r.body) for r in server.requests]
    got = outcomes(tmp_path)
    assert sorted(got["kept"]) == ["r0", "r1"] and len(asked) == 2 and not any("quick" in a for a in asked)
    assert got["discarded"]["long"]["reason"] == "prompt_too_long"
    assert "over its max_prompt_tokens = 400: discarded before any call" in got["discarded"]["long"]["message"]


def test_a_relative_cut_compares_a_record_without_the_groups_key_with_itself(tmp_path):
    scorer = 'kind = "classify", threshold = 0.25, relative = {margin = 0.1}'
    with FakeLLM(lambda r: Reply(probs=[0.5, 0.5])) as server:
        run_pipeline(load_pipeline(pipeline(tmp_path, server, scorer, n=3)))  # no meta.query_id
    got = outcomes(tmp_path)
    assert sorted(got["kept"]) == ["r0", "r1", "r2"] and not got["errors"]
    assert "the best of 1 is 0.5" in scored_step(got["kept"]["r0"])["message"]


def scored_alone(tmp_path, server):
    """in.jsonl through a pipeline of function_params judged by a classify scorer alone."""
    (tmp_path / "p.toml").write_text(
        '[input]\npath = "in.jsonl"\n[output]\ndir = "run"\n[[stages]]\nname = "function_params"\n'
        f'scorer = {{kind = "classify", model = "hosted_vllm/c", api_base = "{server.api_base}", threshold = 0.5}}\n'
    )
    run_pipeline(load_pipeline(tmp_path / "p.toml"))


def test_a_scorer_stage_without_classification_asks_nothing_about_an_unreadable_answer(tmp_path):
    write_jsonl(tmp_path / "in.jsonl", [xlam_row("ok", tools=[WEATHER]), {**xlam_row("bad"), "answers": "[{"}])
    with FakeLLM(lambda r: Reply(probs=[0.2, 0.8])) as server:
        scored_alone(tmp_path, server)
        asked = len(server.requests)
    got = outcomes(tmp_path)
    assert sorted(got["kept"]) == ["ok"] and asked == 1 and not got["errors"]
    assert (got["discarded"]["bad"]["stage"], got["discarded"]["bad"]["reason"]) == ("input", "malformed_answer")


def test_a_record_holding_a_lone_surrogate_is_scored_with_its_escape(tmp_path):
    """A legal JSON escape the record keeps (docs/reading.md), which UTF-8 cannot hold."""
    row = json.dumps(xlam_row("sur", query="Weather in \ud800 city", tools=[WEATHER]))
    (tmp_path / "in.jsonl").write_text(row + "\n")
    with FakeLLM(lambda r: Reply(probs=[0.2, 0.8])) as server:
        scored_alone(tmp_path, server)
        (request,) = server.requests
    texts = [m["content"] for m in request.body["messages"] if isinstance(m.get("content"), str)]
    # The escape as text, as the judges' prompts show it: a tokenizer refuses the lone surrogate itself.
    assert any("Weather in \\ud800 city" in t for t in texts) and not any("\ud800" in t for t in texts)
    assert sorted(outcomes(tmp_path)["kept"]) == ["sur"]
