import asyncio

import pytest
from pydantic import ValidationError

from funreason_refine.config import load_pipeline
from funreason_refine.errors import ConfigError
from funreason_refine.judge.calls import Caller
from funreason_refine.judge.scorer_settings import ScorerSettings
from funreason_refine.judge.settings import GenerateSettings, JudgeSettings, SourceSettings
from tests.conftest import write_jsonl, write_pipeline, xlam_row


def problems(tmp_path, top="", stages=""):
    write_jsonl(tmp_path / "in.jsonl", [xlam_row()])
    with pytest.raises(ConfigError) as info:
        load_pipeline(write_pipeline(tmp_path, stages=stages, extra=top))
    return info.value.problems


@pytest.mark.parametrize(
    "top, stages, where",
    [
        ('[judge]\nmodel = "openai/x"\nextra = {temperature = 1.0}\n', "", "[judge] key 'extra'"),
        ('[source]\nsample_from = "openai/x"\nextra = {temperature = 1.0}\n', "", "[source] key 'extra'"),
        (
            '[generate]\nmodel = "openai/x"\nextra = {temperature = 1.0}\n',
            '[[stages]]\nname = "cot"\non_fail = "regenerate"\n',
            "[generate] key 'extra'",
        ),
        (
            '[judge]\nmodel = "openai/x"\n',
            '[[stages]]\nname = "cot"\njudge = {extra = {temperature = 1.0}}\n',
            "(name = 'cot') key 'judge.extra'",
        ),
        (
            '[judge]\nmodel = "openai/x"\n',
            '[[stages]]\nname = "cot"\njudges = [{}, {extra = {temperature = 1.0}}]\n',
            "(name = 'cot') key 'judges[1].extra'",
        ),
        (
            "",
            '[[stages]]\nname = "cot"\non_fail = "regenerate"\n'
            'generate = {model = "openai/x", extra = {temperature = 1.0}}\n',
            "(name = 'cot') key 'generate.extra'",
        ),
        (
            "",
            '[[stages]]\nname = "format"\n'
            'scorer = {kind = "yes_no", model = "openai/g", extra = {temperature = 1.0}}\n',
            "(name = 'format') key 'scorer.extra'",
        ),
    ],
)
def test_an_extra_key_the_table_has_itself_is_refused_naming_the_key_to_use(tmp_path, top, stages, where):
    # extra = {temperature = 1.0} went to LiteLLM beside temperature=...: every call failed with a TypeError,
    # which the run took for a server outage after outage_timeout.
    (problem,) = problems(tmp_path, top, stages)
    assert where in problem
    assert "'temperature' is a key of this table: write temperature = ... beside extra, not in it" in problem


@pytest.mark.parametrize(
    "model, key, words",
    [
        (JudgeSettings, "max_tokens", "'max_tokens' is a key of this table"),
        (JudgeSettings, "stream", "answers are streamed when first_token_timeout is set"),
        (JudgeSettings, "response_format", 'verdict_format = "json"'),
        (GenerateSettings, "prompt", "'prompt' is a key of this table"),
        (SourceSettings, "sample_from", "'sample_from' is a key of this table"),
        (ScorerSettings, "top_logprobs", "'top_logprobs' is a key of this table"),
        (ScorerSettings, "logprobs", "set top_logprobs"),
    ],
)
def test_each_model_table_refuses_its_own_keys_and_the_clients_in_extra(model, key, words):
    table = {"sample_from" if model is SourceSettings else "model": "openai/x", "extra": {key: 1}}
    if model is ScorerSettings:
        table["kind"] = "yes_no"
    with pytest.raises(ValidationError, match=words):
        model.model_validate(table)
    ok = {**table, "extra": {"top_p": 0.9, "seed": 3}}
    assert model.model_validate(ok).extra == {"top_p": 0.9, "seed": 3}


def test_every_parameter_the_client_sends_is_refused_in_extra():
    # Read off the call itself, so that a parameter the client starts sending cannot be set twice unnoticed.
    sent: list[set[str]] = []

    class Recorder:
        async def acompletion(self, **kwargs):
            sent.append(set(kwargs))

    caller = Caller(Recorder(), 1, lambda: None, lambda settings: {})
    settings = JudgeSettings(model="openai/x", first_token_timeout=5).asking(allow_newfc=False)
    messages = [{"role": "user", "content": "hi"}]
    asyncio.run(caller._completion(settings, messages, None))
    asyncio.run(caller._completion(settings, messages, None, stream=True, stream_options={}, timeout=9))
    json_verdict = JudgeSettings(model="openai/x", verdict_format="json").asking(allow_newfc=False)
    asyncio.run(caller._completion(json_verdict, messages, None))
    for key in set.union(*sent):
        with pytest.raises(ValidationError, match=f"'{key}' is"):
            JudgeSettings(model="openai/x", extra={key: 1})
