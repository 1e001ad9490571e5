"""[judge] batch = true: waves of calls as batch jobs on FakeLLM's Files and Batches endpoints, journaled, collected,
resumed after a kill without paying twice."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter

import pytest
from click.testing import CliRunner

from funreason_refine.cli import main
from funreason_refine.config import load_pipeline
from funreason_refine.engine import Progress, run_pipeline
from funreason_refine.errors import RefineError
from funreason_refine.judge import batch, cache
from funreason_refine.judge.cache import FILE
from funreason_refine.testing.fake_llm import FakeLLM, Reply
from tests import children
from tests.conftest import write_jsonl, xlam_row

YES = "<judge>True</judge><reason>fine</reason>"
NO = "<judge>False</judge><reason>the query names no city</reason>"
FORECAST = {
    "name": "get_forecast",
    "description": "Forecast for a city.",
    "parameters": {"city": {"type": "str", "description": "City"}, "days": {"type": "int", "description": "Days"}},
}
CITIES = ["Oslo", "Rome", "Bern", "Lima"]
ROWS = [
    xlam_row(
        str(i),
        query=f"Forecast for {city}, {i + 1} days",
        tools=[FORECAST],
        answers=[{"name": "get_forecast", "arguments": {"city": city, "days": i + 1}}],
        cot=f"The user wants a forecast: get_forecast for {city}.",
    )
    for i, city in enumerate(CITIES)
]
PRICES = "prices = {input_per_million = 1000.0, output_per_million = 2000.0}"
REFINE = "import sys; from funreason_refine.cli import main; sys.argv = ['refine', *sys.argv[1:]]; main()"


@pytest.fixture(autouse=True)
def quick(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setattr(batch, "SETTLE_SECONDS", 0.05)


def script(request):
    """Judges the Lima record's query False; everything else True. Batch lines come without HTTP headers."""
    return NO if "Question (query and tools)" in request.prompt and "Lima" in request.prompt else YES


def pipeline(tmp_path, server, batch_on=True, judge=""):
    tmp_path.mkdir(parents=True, exist_ok=True)
    write_jsonl(tmp_path / "in.jsonl", ROWS)
    path = tmp_path / "p.toml"
    path.write_text(
        '[input]\npath = "in.jsonl"\n[output]\ndir = "run"\n'
        f'[judge]\nmodel = "openai/fake"\napi_base = "{server.api_base}"\n{PRICES}\n'
        f"batch = {'true' if batch_on else 'false'}\nbatch_poll_interval = 0.05\n{judge}"
    )
    return path


def outcomes(folder):
    """The outcome files, with the input's folder written out of the records' source."""
    where = str(folder.parent).encode()
    return {n: (folder / f"{n}.jsonl").read_bytes().replace(where, b"") for n in ("kept", "discarded", "errors")}


def journal(folder):
    return [json.loads(line) for line in (folder / "batches" / "journal.jsonl").read_text().splitlines()]


def submitted_keys(server):
    """Every custom_id of every batch input the server was given, as often as it was given."""
    inputs = [server.batches.files[b["input_file_id"]][1] for b in server.batches.batches.values()]
    return Counter(json.loads(line)["custom_id"] for data in inputs for line in data.splitlines() if line.strip())


def ordinary(server):
    return [r for r in server.requests if r.headers]  # HTTP chat requests; batch lines carry none


def test_a_batch_run_submits_waves_and_keeps_what_an_ordinary_run_keeps(tmp_path):
    with FakeLLM(script) as server:
        reference = run_pipeline(load_pipeline(pipeline(tmp_path / "plain", server, batch_on=False)))
        plain_calls = len(server.requests)
        seen = []
        result = run_pipeline(
            load_pipeline(pipeline(tmp_path / "batch", server)), progress=Progress(on_judge=seen.append)
        )
    assert outcomes(tmp_path / "batch" / "run") == outcomes(tmp_path / "plain" / "run")
    assert ordinary(server)[plain_calls:] == [], "every call went in a batch"
    keys = submitted_keys(server)
    assert len(keys) == plain_calls and set(keys.values()) == {1}, "each call submitted once"
    # One wave per stage: the Lima record leaves after query_tool, so later waves hold three calls.
    sizes = [b["request_counts"]["total"] for b in server.batches.batches.values()]
    assert sizes == [4, 4, 3, 3, 3]
    judge = result.summary.as_dict()["judge"]
    assert judge["batches"] == {"submitted": 5, "in_progress": 0, "done": 5}
    assert judge["calls"] == reference.summary.as_dict()["judge"]["calls"] == 17
    assert judge["cost_usd"] == pytest.approx(17 * (10 * 1000 + 5 * 2000) / 1e6), "the pipeline's (batch) prices"
    assert any((s.get("batches") or {}).get("in_progress") for s in seen), "progress shows batches in flight"
    events = Counter(e["event"] for e in journal(tmp_path / "batch" / "run"))
    assert events == {"run": 1, "input": 5, "uploaded": 5, "submitted": 5, "collected": 5}


def test_a_collected_batch_is_in_the_cache_file_before_the_journal_says_so(tmp_path, monkeypatch):
    """A kill right after the journal's "collected" line must not lose the answers (they are not asked again)."""
    on_disk_when_noted = []
    note = batch.BatchJournal.note

    def checked(self, event):
        if event["event"] == "collected":
            with sqlite3.connect(self.folder.parent / FILE) as db:  # a second reader, as a resumed run
                on_disk_when_noted.append(db.execute("SELECT count(*) FROM answers").fetchone()[0])
        note(self, event)

    monkeypatch.setattr(batch.BatchJournal, "note", checked)
    monkeypatch.setattr(cache, "WRITE_SECONDS", 3600.0)  # nothing written by time during the test
    with FakeLLM(script) as server:
        run_pipeline(load_pipeline(pipeline(tmp_path, server)))
    assert on_disk_when_noted == [4, 8, 11, 14, 17]  # each wave's answers (4, 4, 3, 3, 3) by its collected line


def run_until_submitted(path, folder):
    """`refine run` in a child process (tests/children.py: forked, no LiteLLM import of its own), SIGKILLed once its
    first batch is journaled as submitted."""
    env = {**os.environ, "OPENAI_API_KEY": "sk-test"}
    proc = children.popen([sys.executable, "-c", REFINE, "run", str(path)], env=env, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if (folder / "batches" / "journal.jsonl").exists() and any(e["event"] == "submitted" for e in journal(folder)):
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert any(e["event"] == "submitted" for e in journal(folder)), proc.stderr.read().decode()


@pytest.mark.parametrize(
    "id_written, batch_after",
    [(True, True), (False, True), (True, False)],
    ids=["id journaled", "id never journaled", "batch turned off for the resume"],
)
def test_a_run_killed_between_submit_and_collect_collects_its_batch_and_never_pays_twice(
    tmp_path, id_written, batch_after
):
    with FakeLLM(script) as server:
        plain = pipeline(tmp_path / "plain", server, batch_on=False)
        run_pipeline(load_pipeline(plain))
        plain_calls = len(server.requests)
        path = pipeline(tmp_path / "batch", server)
        folder = tmp_path / "batch" / "run"
        server.batches.hold = True  # the provider has the batch but no answers yet
        run_until_submitted(path, folder)
        assert server.batches.created == 1
        if not id_written:  # as if the process died between the provider's answer and the journal line
            kept = [e for e in journal(folder) if e["event"] != "submitted"]
            (folder / "batches" / "journal.jsonl").write_text("".join(json.dumps(e) + "\n" for e in kept))
        if not batch_after:
            path.write_text(path.read_text().replace("batch = true", "batch = false"))
        server.batches.hold = False
        resumed = CliRunner().invoke(main, ["run", str(path)])
    assert resumed.exit_code == 0, resumed.output
    assert outcomes(folder) == outcomes(tmp_path / "plain" / "run")
    keys = submitted_keys(server)
    asked = [r.prompt for r in ordinary(server)[plain_calls:]]
    first = journal(folder)[1]["batch"]
    collected = [e for e in journal(folder) if e["event"] == "collected"]
    assert collected[0]["batch"] == first and collected[0]["answered"] == 4, "the resumed run collected batch 1"
    assert set(keys.values()) == {1}, "no call submitted twice"
    assert server.batches.batches["batch_1"]["status"] == "completed", "the provider's batch was followed to its end"
    if batch_after:
        assert len(keys) == plain_calls and server.batches.created == 5 and asked == []
    else:  # the four classification calls came from the batch; the rest were asked directly
        assert len(keys) == 4 and server.batches.created == 1
        assert len(asked) == plain_calls - 4 and not any("Question (classification)" in p for p in asked)


def test_failed_lines_become_ordinary_calls_and_an_expired_batch_is_resubmitted(tmp_path):
    def flaky(request):
        if not request.headers and "Question (chain of thought)" in request.prompt and "Rome" in request.prompt:
            return Reply(status=500, text="the batch worker fell over")
        return script(request)

    with FakeLLM(flaky) as server:
        server.batches.expire_after = 2  # the first batch answers two of its four lines, then expires
        result = run_pipeline(load_pipeline(pipeline(tmp_path, server)))
    assert result.summary.as_dict()["outcomes"]["kept"] == 3 and result.summary.as_dict()["outcomes"]["errors"] == 0
    assert [r.prompt.count("Rome") > 0 for r in ordinary(server)] == [True], "the failed line, asked directly"
    statuses = [b["status"] for b in server.batches.batches.values()]
    assert statuses[0] == "expired" and set(statuses[1:]) == {"completed"}
    keys = submitted_keys(server)
    assert sorted(keys.values()).count(2) == 2, "the two lines the expired batch left were submitted again"
    assert len(ordinary(server)) + sum(b["request_counts"]["completed"] for b in server.batches.batches.values()) == 17
    assert result.summary.as_dict()["judge"]["retries"] == 1
    assert any("made again as ordinary calls" in n for n in result.summary.as_dict()["judge"]["notes"])


def test_batch_calls_are_priced_from_litellms_batch_prices(tmp_path):
    with FakeLLM(lambda r: Reply(script(r), prompt_tokens=10_000, completion_tokens=5_000)) as server:
        path = pipeline(tmp_path, server)
        path.write_text(path.read_text().replace("openai/fake", "openai/gpt-4o-mini").replace(PRICES, ""))
        judge = run_pipeline(load_pipeline(path)).summary.as_dict()["judge"]
    # gpt-4o-mini's batch prices are half its prices: $0.075 and $0.30 per million tokens.
    assert judge["cost_usd"] == pytest.approx(judge["calls"] * (10_000 * 0.075 + 5_000 * 0.3) / 1e6)


@pytest.mark.parametrize(
    "model, why",
    [
        ("ollama/qwen2.5", "LiteLLM has no batch API for it"),
        ("bedrock/anthropic.claude-3-haiku", "LiteLLM returns Bedrock's batch output in Bedrock's own format"),
    ],
)
def test_a_provider_without_a_batch_api_stops_the_run_with_what_to_change(tmp_path, model, why):
    with FakeLLM(script) as server:
        path = pipeline(tmp_path, server)
        path.write_text(path.read_text().replace("openai/fake", model))
        with pytest.raises(RefineError, match=f"cannot take batches here \\({why}.*set batch = false"):
            run_pipeline(load_pipeline(path))
        assert server.requests == [] and server.batches.files == {}, "nothing was sent"


def writer(request):
    """[generate]'s model writes a CoT naming the record's city; the judges answer as in ``script``."""
    if request.model != "writer":
        return script(request)
    city = next(c for c in CITIES if c in request.prompt)
    return f"The user wants a forecast: get_forecast for {city}."


def test_generate_batch_writes_the_missing_cots_in_one_batch(tmp_path):
    cot = '[[stages]]\nname = "cot"\nrequired = true\non_fail = "regenerate"\n'
    with FakeLLM(writer) as server:
        generate = f'[generate]\nmodel = "openai/writer"\napi_base = "{server.api_base}"\nbatch = true\n{PRICES}\n'
        generate += "batch_poll_interval = 0.05\n"
        path = pipeline(tmp_path, server, batch_on=False, judge=generate + cot)
        write_jsonl(tmp_path / "in.jsonl", [{k: v for k, v in row.items() if k != "cot"} for row in ROWS])
        result = run_pipeline(load_pipeline(path))
    kept = [json.loads(line) for line in (tmp_path / "run" / "kept.jsonl").read_text().splitlines()]
    assert [k["cot"] for k in kept] == [f"The user wants a forecast: get_forecast for {c}." for c in CITIES]
    written = [r for r in server.requests if r.model == "writer"]
    assert len(written) == 4 and not any(r.headers for r in written), "every CoT was written in a batch"
    assert len(ordinary(server)) == 4, "the judge (batch = false) was asked directly"
    assert [b["request_counts"]["total"] for b in server.batches.batches.values()] == [4]
    assert result.summary.as_dict()["judge"]["batches"] == {"submitted": 1, "in_progress": 0, "done": 1}


def test_source_batch_samples_every_candidate_of_a_round_in_one_batch(tmp_path):
    from funreason_refine.selfrefine import selfrefine

    def policy(request):
        city = next(c for c in CITIES if c in request.prompt)
        return f'<think>get_forecast for {city}.</think>\n\n[get_forecast(city="{city}", days=2)]'

    def source_pipeline(folder, server, batch_on):
        folder.mkdir()
        write_jsonl(folder / "in.jsonl", ROWS)
        (folder / "p.toml").write_text(
            f'[input]\npath = "in.jsonl"\n[output]\ndir = "sr"\n[source]\nsample_from = "openai/policy"\n'
            f'api_base = "{server.api_base}"\nsamples = 2\nbatch = {str(batch_on).lower()}\n'
            "batch_poll_interval = 0.05\n"
        )
        return load_pipeline(folder / "p.toml")

    with FakeLLM(policy) as server:
        (plain,) = selfrefine(source_pipeline(tmp_path / "plain", server, False), rounds=1).rounds
        plain_calls = len(server.requests)
        (batched,) = selfrefine(source_pipeline(tmp_path / "batch", server, True), rounds=1).rounds
    candidates = [(tmp_path / f / "sr" / "round-1" / "candidates.jsonl").read_text() for f in ("plain", "batch")]
    assert candidates[0] == candidates[1] and batched.kept == plain.kept == 8
    assert plain_calls == 8 and ordinary(server)[plain_calls:] == [], "every sample went in the batch"
    keys = submitted_keys(server)
    assert len(keys) == 8 and set(keys.values()) == {1}, "two samples of each query: eight lines, each once"
    assert [b["request_counts"]["total"] for b in server.batches.batches.values()] == [8]
    events = Counter(e["event"] for e in journal(tmp_path / "batch" / "sr"))
    assert events == {"run": 1, "input": 1, "uploaded": 1, "submitted": 1, "collected": 1}


def test_max_cost_stops_the_run_after_the_batch_that_passed_it(tmp_path):
    with FakeLLM(script) as server:
        path = pipeline(tmp_path, server)
        per_call = (10 * 1000 + 5 * 2000) / 1e6  # FakeLLM's usage at the pipeline's prices
        path.write_text(f"max_cost = {2.5 * per_call}\n" + path.read_text())
        result = run_pipeline(load_pipeline(path))
    assert "max_cost" in result.summary.stopped and server.batches.created == 1, "no batch after the budget"
    assert result.summary.judge.cost_usd == pytest.approx(4 * per_call), "the wave in flight was paid for"
    assert result.summary.records == 0, "every record is redone by the next run, from the cache"


def test_batch_answers_without_usage_have_their_tokens_counted_here_and_priced(tmp_path):
    with FakeLLM(lambda r: Reply(text=script(r))) as server:
        reported = run_pipeline(load_pipeline(pipeline(tmp_path / "usage", server))).summary.as_dict()["judge"]
    with FakeLLM(lambda r: Reply(text=script(r), usage=False)) as server:
        counted = run_pipeline(load_pipeline(pipeline(tmp_path / "none", server))).summary.as_dict()["judge"]
    assert counted["calls"] == reported["calls"] == 17
    assert counted["tokens_counted_locally"] == {"openai/fake": 17} and "tokens_counted_locally" not in reported
    # LiteLLM's counter of the batch lines' messages: hundreds of tokens a prompt, where 0 was counted before
    assert counted["prompt_tokens"] > 17 * 100 and counted["completion_tokens"] >= 17 * 5
    prices = (counted["prompt_tokens"] * 1000.0 + counted["completion_tokens"] * 2000.0) / 1e6
    assert counted["cost_usd"] == pytest.approx(prices) and counted["cost_usd"] > 0
    assert any("without token usage" in note for note in counted["notes"])


def test_a_batch_answer_whose_usage_gives_no_output_tokens_has_them_counted_here(tmp_path):
    with FakeLLM(lambda r: Reply(text=script(r), completion_tokens=0)) as server:
        judge = run_pipeline(load_pipeline(pipeline(tmp_path, server))).summary.as_dict()["judge"]
    assert (judge["calls"], judge["prompt_tokens"]) == (17, 17 * 10), "the prompts' tokens, as reported"
    assert judge["completion_tokens"] >= 17 * 5 and judge["tokens_counted_locally"] == {"openai/fake": 17}
    prices = (judge["prompt_tokens"] * 1000.0 + judge["completion_tokens"] * 2000.0) / 1e6
    assert judge["cost_usd"] == pytest.approx(prices)


def test_max_cost_holds_for_batch_answers_without_usage(tmp_path):
    with FakeLLM(lambda r: Reply(text=script(r), usage=False)) as server:
        path = pipeline(tmp_path, server)
        path.write_text("max_cost = 0.5\n" + path.read_text())  # less than one wave's counted prompts cost
        result = run_pipeline(load_pipeline(path))
    assert "max_cost" in result.summary.stopped and server.batches.created == 1, "no batch after the budget"
    assert result.summary.judge.cost_usd > 0.5 and result.summary.judge.prompt_tokens > 4 * 100
    assert result.summary.records == 0, "every record is redone by the next run, from the cache"


def copies(tmp_path, server, judge=""):
    """The pipeline on each record twice (under another id): every prompt is asked by two records at once."""
    path = pipeline(tmp_path, server, judge=judge)
    write_jsonl(tmp_path / "in.jsonl", ROWS + [{**row, "id": f"copy of {row['id']}"} for row in ROWS])
    return path


def test_two_records_with_the_same_prompt_pay_for_one_batch_line_and_count_one_call(tmp_path):
    with FakeLLM(script) as server:
        judge = run_pipeline(load_pipeline(copies(tmp_path, server))).summary.as_dict()["judge"]
    lines = sum(submitted_keys(server).values())
    assert lines == 17 and set(submitted_keys(server).values()) == {1}, "one line for both records' call"
    per_call = (10 * 1000 + 5 * 2000) / 1e6
    assert (judge["calls"], judge["cached"]) == (17, 17), "the second record's call counts as a cache hit"
    assert judge["cost_usd"] == pytest.approx(17 * per_call) == cache.spent(tmp_path / "run")
    assert judge["cached_cost_usd"] == pytest.approx(17 * per_call)


def test_max_cost_counts_a_batch_line_that_two_records_waited_on_once(tmp_path):
    per_call = (10 * 1000 + 5 * 2000) / 1e6
    with FakeLLM(script) as server:
        path = copies(tmp_path, server)
        path.write_text(f"max_cost = {4.5 * per_call}\n" + path.read_text())
        result = run_pipeline(load_pipeline(path))
    # The first wave: 4 lines for 8 records ($4 of 4.5); counted once a waiting record, it had stopped the run there.
    assert "max_cost" in result.summary.stopped and server.batches.created == 2
    assert result.summary.judge.cost_usd == pytest.approx(8 * per_call) == cache.spent(tmp_path / "run")


@pytest.mark.parametrize("status", ["failed", "cancelled"])
def test_a_failed_or_cancelled_batch_stops_the_run_with_its_reason_and_the_next_run_sends_its_calls_again(
    tmp_path, status
):
    errors = [{"code": "token_limit_exceeded", "message": "Enqueued token limit reached for fake", "line": None}]
    with FakeLLM(script) as server:
        server.batches.end_next = {"status": status, "errors": {"object": "list", "data": errors}}
        path = pipeline(tmp_path, server)
        with pytest.raises(RefineError) as stop:
            run_pipeline(load_pipeline(path))
        assert ordinary(server) == [], "nothing was asked again at the full price"
        (collected,) = [e for e in journal(tmp_path / "run") if e["event"] == "collected"]
        assert (collected["status"], collected["answered"], collected["failed"]) == (status, 0, 4)
        result = run_pipeline(load_pipeline(path))
    message = str(stop.value)
    assert f"batch {collected['batch']} (at the provider batch_1) ended {status}" in message
    assert "token_limit_exceeded: Enqueued token limit reached for fake" in message
    assert "its 4 unanswered calls were not made as ordinary calls" in message and "run the same command" in message
    assert result.summary.as_dict()["outcomes"]["kept"] == 3 and ordinary(server) == []
    assert submitted_keys(server).most_common(1)[0][1] == 2, "the failed batch's lines, sent again in a new batch"


def first_line_also_answered(text):
    """A batch output edit: the first row once more, its answer ``text`` (the same answer: ``None``)."""

    def edit(rows):
        again = json.loads(json.dumps(rows[0]))
        if text is not None:
            again["response"]["body"]["choices"][0]["message"]["content"] = text
        return [*rows, again]

    return edit


def test_a_line_answered_twice_differently_is_asked_again_and_twice_the_same_is_taken(tmp_path):
    per_call = (10 * 1000 + 5 * 2000) / 1e6
    for name, text, asked_again in (("differently", NO, 1), ("same", None, 0)):
        with FakeLLM(script) as server:
            server.batches.edit_next = first_line_also_answered(text)
            result = run_pipeline(load_pipeline(pipeline(tmp_path / name, server)))
        discarded = [json.loads(x) for x in (tmp_path / name / "run" / "discarded.jsonl").read_text().splitlines()]
        assert [d["stage"] for d in discarded] == ["query_tool"], f"{name}: only the Lima record, by its judge"
        assert len(ordinary(server)) == asked_again, name
        collected = next(e for e in journal(tmp_path / name / "run") if e["event"] == "collected")
        assert (collected["answered"], collected["failed"]) == (4 - asked_again, asked_again), name
        notes = result.summary.as_dict()["judge"]["notes"]
        assert any("answers it twice, differently" in n for n in notes) == bool(asked_again), name
        assert cache.spent(tmp_path / name / "run") == pytest.approx(17 * per_call), name


def test_an_output_line_for_a_call_the_batch_does_not_hold_is_ignored_with_a_note(tmp_path):
    def stray(rows):
        return [*rows, {**rows[0], "custom_id": "not one of ours"}]

    per_call = (10 * 1000 + 5 * 2000) / 1e6
    with FakeLLM(script) as server:
        server.batches.edit_next = stray
        judge = run_pipeline(load_pipeline(pipeline(tmp_path, server))).summary.as_dict()["judge"]
    collected = next(e for e in journal(tmp_path / "run") if e["event"] == "collected")
    assert (collected["answered"], collected["failed"]) == (4, 0)
    assert judge["calls"] == 17 and cache.spent(tmp_path / "run") == pytest.approx(17 * per_call)
    (note,) = [n for n in judge["notes"] if "custom_id" in n]
    assert note.startswith(f"batch {collected['batch']} (batch_1): 1 ") and "ignored" in note
