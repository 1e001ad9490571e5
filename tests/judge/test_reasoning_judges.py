"""Reasoning models as judges and generators, over real HTTP through LiteLLM: whatever shape their reasoning
takes (a lone </think>, a think block, a reasoning field, Claude's thinking blocks, Ollama's thinking), only
the answer is a verdict, and no scratchpad reaches the training data."""

import sqlite3

import pytest

from funreason_refine.testing.fake_llm import FakeLLM, Reply
from tests.conftest import refine, xlam_row
from tests.judge.one_record import FORMAT, judged, outcome


@pytest.fixture(autouse=True)
def keys(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")


PRICES = "prices = {input_per_million = 1000.0, output_per_million = 2000.0}\n"


def thinking(verdict: str) -> str:
    """Reasoning that restates the format and leans the other way: never to be read as the verdict."""
    other = "False" if verdict == "True" else "True"
    return f"The answer format is <judge>True</judge> or <judge>False</judge>.\nMaybe <judge>{other}</judge>?"


def shapes(verdict: str) -> list[tuple[str, Reply, bool]]:
    """(model, the fake server's reply, whether the model is served at the server's root) per reasoning shape."""
    answer = f"<judge>{verdict}</judge>\n<reason>checked</reason>"
    return [
        # QwQ and DeepSeek-R1 served without --reasoning-parser: the chat template opened <think>.
        ("openai/qwq-32b", Reply(text=f"{thinking(verdict)}\n</think>\n\n{answer}"), False),
        # Qwen3 with thinking on, and with thinking off (an empty think block).
        ("openai/qwen3", Reply(text=f"<think>\n{thinking(verdict)}\n</think>\n\n{answer}"), False),
        ("openai/qwen3", Reply(text=f"<think>\n\n</think>\n\n{answer}"), False),
        # vLLM with --reasoning-parser (DeepSeek-R1): reasoning_content; gpt-oss: reasoning.
        ("hosted_vllm/deepseek-r1", Reply(text=answer, reasoning=thinking(verdict)), False),
        ("openai/gpt-oss-20b", Reply(text=answer, reasoning=thinking(verdict), reasoning_field="reasoning"), False),
        # Claude with extended thinking: thinking blocks before the text block (Anthropic's messages API).
        ("anthropic/claude-sonnet-4-5", Reply(text=answer, reasoning=thinking(verdict)), True),
        # Ollama's chat API with a thinking model: the message's "thinking".
        ("ollama_chat/qwen3", Reply(text=answer, reasoning=thinking(verdict)), True),
    ]


@pytest.mark.parametrize("verdict", ["True", "False"])
def test_only_the_answer_is_the_verdict_whatever_shape_the_reasoning_takes(tmp_path, tmp_pipeline, verdict):
    for number, (model, reply, root) in enumerate(shapes(verdict)):
        with FakeLLM(lambda r, reply=reply: reply) as server:
            path, run_dir = judged(tmp_pipeline, server, model, root=root)
            refine("run", path, "--out", tmp_path / f"run{number}")
        kind, line = outcome(tmp_path / f"run{number}")
        expected = ("kept", None) if verdict == "True" else ("discarded", "judge_rejected")
        assert (kind, line.get("reason")) == expected, model
        assert line["trail"][-1]["message"] == "checked", model
        assert len(server.requests) == 1, f"{model}: asked again"


@pytest.mark.parametrize("model, root", [("openai/judge", False), ("anthropic/claude-sonnet-4-5", True)])
def test_an_answer_cut_off_by_the_token_limit_is_asked_again_never_read(tmp_path, tmp_pipeline, model, root):
    cut = Reply(text="<think>The city matches, so <judge>True</judge> or", finish_reason="length")
    good = "<judge>False</judge><reason>the city is wrong</reason>"
    with FakeLLM(lambda r: cut if len(server.requests) == 1 else good) as server:
        path, run_dir = judged(tmp_pipeline, server, model, judge="max_tokens = 64", root=root)
        refine("run", path)
    kind, line = outcome(run_dir)
    assert (kind, line["reason"], line["message"]) == ("discarded", "judge_rejected", "the city is wrong")
    again = server.requests[1].prompt
    assert "cut off by the token limit" in again and "shorter" in again

    (run_dir / "judge_cache.sqlite").unlink()  # the chain above found a verdict: it is kept, and would be read
    with FakeLLM(lambda r: cut) as server:
        path, run_dir = judged(tmp_pipeline, server, model, judge="max_tokens = 64", root=root)
        out = refine("run", path, "--fresh", code=3)
    kind, line = outcome(run_dir)
    assert kind == "errors" and "cut off by the token limit (finish_reason length)" in line["error"]
    assert "3 answer(s) did not follow the answer protocol (cut_off 3); 2 asked again" in " ".join(out.split())


def generated(tmp_pipeline, reply: Reply, code: int, then: Reply | None = None):
    """A record without a CoT whose CoT a reasoning model writes; the judge passes everything. ``then``: the
    writer's answer to `refine retry` of the run (the writer's requests then are in the outcome's "retried")."""
    row = xlam_row("r")
    stages = '[[stages]]\nname = "cot"\nrequired = true\non_fail = "regenerate"\n' + FORMAT
    answers = {"writer": reply}

    def script(r):
        return answers["writer"] if r.model == "writer" else "<judge>True</judge>"

    with FakeLLM(script) as server:
        extra = f'\n[generate]\nmodel = "openai/writer"\napi_base = "{server.api_base}"\nmax_retries = 0\n'
        path, run_dir = judged(tmp_pipeline, server, stages=stages, judge=extra, rows=[row])
        refine("run", path, code=code)
        if then is None:
            return outcome(run_dir)
        answers["writer"], before = then, len(server.requests)
        said = refine("retry", run_dir)
        kind, line = outcome(run_dir)
    writer = [r for r in server.requests[before:] if r.model == "writer"]
    return kind, {**line, "retried": writer, "said": said}


SCRATCH = "Scratchpad: maybe get_forecast? No, get_weather. Do not write this."
COT = "The user asks for the weather in Paris, so get_weather with city Paris."


@pytest.mark.parametrize(
    "reply",
    [
        Reply(text=f"{SCRATCH}\n</think>\n\n{COT}"),  # QwQ / R1 without a reasoning parser
        Reply(text=f"<think>{SCRATCH}</think>\n{COT}"),
        Reply(text=COT, reasoning=SCRATCH),  # vLLM's reasoning_content
        Reply(text=COT, reasoning=SCRATCH, reasoning_field="reasoning"),  # gpt-oss
    ],
)
def test_a_generators_scratchpad_never_reaches_the_training_data(tmp_pipeline, reply):
    kind, line = generated(tmp_pipeline, reply, code=0)
    assert kind == "kept" and line["cot"] == COT
    assert "Scratchpad" not in line["target"] and line["target"].startswith(f"<think>{COT}</think>")


@pytest.mark.parametrize(
    "reply, said",
    [
        (Reply(text=f"{SCRATCH}\n</think>\n"), "wrote only reasoning, and no cot"),
        (Reply(text="", reasoning=SCRATCH), "wrote only reasoning, and no cot"),
        (Reply(text="<think>The user asks for", finish_reason="length"), "cut off by the token limit"),
        (Reply(text=COT[:30], finish_reason="length"), "cut off by the token limit"),
    ],
)
def test_a_generator_that_wrote_no_whole_cot_sends_the_record_to_errors(tmp_pipeline, reply, said):
    kind, line = generated(tmp_pipeline, reply, code=3)
    assert kind == "errors" and said in line["error"]


@pytest.mark.parametrize(
    "reply, said",
    [
        # The answer, then a think block opened again and never closed: the tags were taken out, the reasoning kept.
        (Reply(text=f"{COT}\n<think>\n{SCRATCH}"), "holds a <think> tag outside a think block"),
        (Reply(text=f"[THINK]{SCRATCH}[/THINK]{COT}"), "holds a [THINK] tag"),  # Magistral, raw
        # gpt-oss's raw harmony output (a server without its parser): the analysis channel is its reasoning.
        (
            Reply(
                text=f"<|channel|>analysis<|message|>{SCRATCH}<|end|><|start|>assistant<|channel|>final<|message|>{COT}"
            ),
            "special token <|channel|>",
        ),
        (Reply(text=f"{COT}<|im_end|>"), "special token <|im_end|>"),
        # The prompt echoed back before the CoT.
        (Reply(text=f"===== QUERY =====\nWhat's the weather?\n===== END =====\n\n{COT}"), "'===== QUERY ====='"),
    ],
    ids=["think reopened", "magistral", "harmony", "chatml end", "echoed prompt"],
)
def test_a_generator_answer_holding_more_than_its_answer_is_never_the_training_data(tmp_pipeline, reply, said):
    kind, line = generated(tmp_pipeline, reply, code=3)
    assert kind == "errors" and said in line["error"] and "not kept as the cot" in line["error"]


def test_a_cot_quoting_a_special_token_the_record_holds_is_kept():
    """A call's argument may hold a chat template's token (a tokenizer tool's input): the CoT that says where the
    argument comes from quotes it. Only a token the prompt does not hold came from the server's raw output."""
    from funreason_refine.judge.answer import Answer
    from funreason_refine.judge.failures import JudgeCallError
    from funreason_refine.judge.runner import written

    prompt = '===== CALLS =====\n[count_tokens(text="<|endoftext|>")]\n===== END ====='
    cot = "The user wants the tokens of <|endoftext|>, so I call count_tokens with text <|endoftext|>."
    assert written("m", "cot", Answer(cot), prompt) == cot
    with pytest.raises(JudgeCallError, match="special token <\\|im_end\\|>"):
        written("m", "cot", Answer(f"{cot}<|im_end|>"), prompt)


@pytest.mark.parametrize(
    "reply",
    [
        Reply(text="<think>The user asks for", finish_reason="length"),
        Reply(text="", reasoning=SCRATCH),
        Reply(text=f"{SCRATCH}\n</think>\n"),
        Reply(text=f"{COT}\n<think>\n{SCRATCH}"),
    ],
    ids=["cut off", "reasoning field only", "reasoning only", "think reopened"],
)
def test_a_retry_asks_the_generator_again_instead_of_reading_back_what_it_could_not_use(tmp_pipeline, reply):
    kind, line = generated(tmp_pipeline, reply, code=3, then=Reply(text=COT))
    assert (kind, line["cot"]) == ("kept", COT)
    assert len(line["retried"]) == 1, "the unusable answer was not kept in the answer cache"


@pytest.mark.parametrize("retries", [0, 1])
def test_a_retry_asks_the_judge_again_instead_of_reading_back_an_answer_that_was_no_verdict(tmp_pipeline, retries):
    cut = Reply(text="<judge>True</judge>\n<reason>the city is", finish_reason="length")
    answers = {"now": cut}
    with FakeLLM(lambda r: answers["now"]) as server:
        path, run_dir = judged(tmp_pipeline, server, judge=f"protocol_retries = {retries}")
        refine("run", path, code=3)
        assert len(server.requests) == retries + 1
        answers["now"] = Reply(text="<judge>False</judge>\n<reason>the city is wrong</reason>")
        said = refine("retry", run_dir)
    kind, line = outcome(run_dir)
    assert (kind, line["reason"]) == ("discarded", "judge_rejected")
    # The question is asked afresh: neither served from the cache nor spent on a re-ask of the cut-off answer.
    assert len(server.requests) == retries + 2
    assert server.requests[-1].messages == server.requests[0].messages
    assert "judge: 1 calls, 0 answered from the cache" in said


def test_a_dropped_answer_is_still_counted_as_spent(tmp_pipeline):
    from funreason_refine.judge.cache import spent

    cut = Reply(text="<judge>True</judge>\n<reason>the city is", finish_reason="length")
    with FakeLLM(lambda r: cut) as server:
        path, run_dir = judged(tmp_pipeline, server, judge="protocol_retries = 0\n" + PRICES)
        refine("run", path, code=3)
    with sqlite3.connect(run_dir / "judge_cache.sqlite") as db:  # dropped: a retry asks again
        assert db.execute("SELECT count(*) FROM answers").fetchone() == (0,)
        assert db.execute("SELECT count(*) FROM dropped").fetchone() == (1,)
    assert spent(run_dir) == pytest.approx((10 * 1000 + 5 * 2000) / 1e6), "paid, though no longer served"


def test_a_re_ask_that_found_a_verdict_is_read_back_and_not_paid_again(tmp_pipeline):
    # The first answer was dropped from the cache as soon as it was no verdict, and re-asks were never read
    # from it: every --fresh run, resume or run after a probe paid the whole chain again.
    def answer(request):
        if any(m.get("role") == "assistant" for m in request.messages):  # the re-ask
            return Reply(text="<judge>True</judge>\n<reason>the city is right</reason>")
        return Reply(text="I think it is fine.")

    with FakeLLM(answer) as server:
        path, run_dir = judged(tmp_pipeline, server, judge="protocol_retries = 1")
        refine("run", path)
        assert len(server.requests) == 2
        said = refine("run", path, "--fresh")
        assert len(server.requests) == 2, "the chain was asked again"
    assert outcome(run_dir)[0] == "kept"
    assert "0 calls, 2 answered from the cache" in said
