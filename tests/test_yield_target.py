"""selfrefine --target-kept: rounds until N are kept or a cap is hit, over HTTP against the local server."""

import json

import pytest

from funreason_refine.config import load_pipeline
from funreason_refine.engine import RunInterrupted
from funreason_refine.errors import ConfigError
from funreason_refine.selfrefine import selfrefine
from funreason_refine.testing.fake_llm import FakeLLM
from funreason_refine.yield_target import Caps, Tally, draw_size
from tests.conftest import KillAfter, read_jsonl, refine, write_jsonl, xlam_row

WEATHER = {"name": "get_weather", "description": "Weather.", "parameters": {"city": {"type": "str"}}}
CITIES = ["Oslo", "Paris", "Rome", "Lima", "Kyiv", "Quito"]  # q0 (Oslo) is never answered right
PRICES = "prices = {input_per_million = 1000.0, output_per_million = 2000.0}"
PER_CALL = (10 * 1000 + 5 * 2000) / 1e6  # the fake server's usage (10 + 5 tokens) at PRICES


@pytest.fixture(autouse=True)
def key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")


def policy(request):
    """The model being refined: every city right but Oslo, where it calls a function it was not offered."""
    city = next(c for c in CITIES if c in request.prompt)
    name = "get_temperature" if city == "Oslo" else "get_weather"
    return f'<think>{city}: {name}.</think>\n\n[{name}(city="{city}")]'


def write(tmp_path, server, source="", top="", judge=""):
    write_jsonl(
        tmp_path / "q.jsonl",
        [xlam_row(f"q{i}", query=f"Weather in {c}?", tools=[WEATHER]) for i, c in enumerate(CITIES)],
    )
    (tmp_path / "p.toml").write_text(f'''{top}
[input]
path = "q.jsonl"
[output]
dir = "sr"
[source]
sample_from = "openai/policy"
api_base = "{server.api_base}"
samples = 2
max_concurrency = 1
{source}
{judge}
[[stages]]
name = "classification"
[[stages]]
name = "query_tool"
[[stages]]
name = "format"
''')
    return tmp_path / "p.toml"


def ids(path):
    return [line["id"] for line in read_jsonl(path)]


def saved(tmp_path):
    return json.loads((tmp_path / "sr" / "selfrefine.json").read_text())


def test_rounds_draw_what_the_target_needs_and_the_overshoot_is_trimmed_in_input_order(tmp_path):
    with FakeLLM(policy) as server:
        output = refine("selfrefine", write(tmp_path, server, "max_candidates = 20"), "--target-kept", 3)
        asked = len(server.requests)
    # Round 1 draws 3 (as if all were kept): Oslo twice, Paris once; 1 kept. Round 2 draws 2 / (1/3) = 6 at
    # the yield seen, queries not drawn yet first (Oslo waits): Rome, Lima, Kyiv twice each; all 6 kept, 7 in
    # all, the last 4 in input order trimmed.
    summary = saved(tmp_path)
    assert [(r["candidates"], r["kept"]) for r in summary["rounds"]] == [(3, 1), (6, 6)]
    assert asked == 9 == summary["candidates_drawn"]
    assert ids(tmp_path / "sr" / "kept.jsonl") == ["q1#r1s0", "q2#r2s0", "q2#r2s1"]
    assert ids(tmp_path / "sr" / "surplus.jsonl") == ["q3#r2s0", "q3#r2s1", "q4#r2s0", "q4#r2s1"]
    assert (summary["target_kept"], summary["kept"], summary["selected"], summary["trimmed"]) == (3, 7, 3, 4)
    assert (summary["missing"], summary["cap_hit"], summary["stopped_by"]) == (0, False, "target")
    assert "target reached: 3 kept records in" in output and "4 more trimmed into" in output


def test_a_cap_stops_short_with_status_5_and_a_raised_cap_goes_on_from_there(tmp_path):
    with FakeLLM(policy) as server:
        path = write(tmp_path, server, "max_candidates = 4")
        output = refine("selfrefine", path, "--target-kept", 3, code=5)
        assert len(server.requests) == 4
        # Round 2 draws only the 1 candidate the cap leaves (Rome), kept: 2 of 3.
        summary = saved(tmp_path)
        assert [(r["candidates"], r["kept"]) for r in summary["rounds"]] == [(3, 1), (1, 1)]
        assert (summary["missing"], summary["cap_hit"], summary["stopped_by"]) == (1, True, "max_candidates")
        assert ids(tmp_path / "sr" / "kept.jsonl") == ["q1#r1s0", "q2#r2s0"]
        assert "1 of 3 missing" in output and "max_candidates of 4 reached (4 drawn)" in output
        assert "raise max_candidates in [source]" in " ".join(output.split())

        path.write_text(path.read_text().replace("max_candidates = 4", "max_candidates = 20"))
        refine("selfrefine", path, "--target-kept", 3)
        # Rounds 1 and 2 are read back; round 3 draws 1 / (2/4) = 2: Lima twice.
        assert len(server.requests) == 4 + 2
    summary = saved(tmp_path)
    assert [r["candidates"] for r in summary["rounds"]] == [3, 1, 2]
    assert ids(tmp_path / "sr" / "kept.jsonl") == ["q1#r1s0", "q2#r2s0", "q3#r3s0"]
    assert summary["trimmed"] == 1 and not (summary["cap_hit"] or summary["missing"])


def test_max_cost_counts_the_samples_and_judge_answers_of_rejected_candidates(tmp_path):
    def model(request):
        if request.model == "judge":  # the judge rejects Paris's answers; Rome's and the rest pass
            return (
                "<judge>False</judge><reason>wrong city</reason>"
                if "Paris" in request.prompt
                else "<judge>True</judge>"
            )
        return policy(request)

    with FakeLLM(model) as server:
        judge = f'[judge]\nmodel = "openai/judge"\napi_base = "{server.api_base}"\nmax_concurrency = 1\n{PRICES}'
        path = write(tmp_path, server, PRICES, top="max_cost = 0.2", judge=judge)
        output = refine("selfrefine", path, "--target-kept", 4, code=5)
        judged = [r for r in server.requests if r.model == "judge"]
        requests = len(server.requests)
    summary = saved(tmp_path)
    assert judged and any("Paris" in r.prompt for r in judged), "rejected candidates were judged"
    # Every call the server answered is paid for, rejected candidates' samples and verdicts included,
    # and no call starts once max_cost is spent.
    assert summary["cost_usd"] == pytest.approx(requests * PER_CALL)
    assert summary["cost_usd"] == pytest.approx(sum(r["cost_usd"] for r in summary["rounds"]))
    assert (summary["stopped_by"], summary["cap_hit"]) == ("max_cost", True)
    # Round 1 (Oslo and Paris twice each) keeps none and spends $0.16 on 4 samples and 4 verdicts; the
    # $0.04 left buys one candidate more at that rate (round 2), and then nothing.
    assert [(r["candidates"], r["cost_usd"]) for r in summary["rounds"]] == [(4, 0.16), (1, 0.04)]
    assert summary["kept"] == 0 and read_jsonl(tmp_path / "sr" / "kept.jsonl") == []
    assert "max_cost of $0.2 reached" in " ".join(output.split())


def test_a_round_cut_short_by_max_cost_is_not_drawn_and_its_paid_samples_are_counted_and_reused(tmp_path):
    with FakeLLM(policy) as server:
        path = write(tmp_path, server, PRICES, top="max_cost = 0.05")
        output = refine("selfrefine", path, "--target-kept", 4, code=5)
        # Round 1 plans 4 candidates; the third call passes $0.05, so the fourth is not made.
        assert len(server.requests) == 3 and not (tmp_path / "sr" / "round-1" / "candidates.jsonl").exists()
        summary = saved(tmp_path)
        assert (summary["rounds"], summary["candidates_drawn"], summary["stopped_by"]) == ([], 0, "max_cost")
        assert summary["cost_usd"] == pytest.approx(3 * PER_CALL), "what was paid is counted, drawn or not"
        assert "max_cost of $0.05 reached" in " ".join(output.split())

        path.write_text(path.read_text().replace("max_cost = 0.05", "max_cost = 1.0"))
        refine("selfrefine", path, "--target-kept", 4)
        # Round 1 again: 3 answers from its cache and 1 call; round 2 draws 2 / (2/4) = 4: Rome and Lima.
        assert len(server.requests) == 3 + 1 + 4
    summary = saved(tmp_path)
    assert [r["candidates"] for r in summary["rounds"]] == [4, 4]
    assert summary["cost_usd"] == pytest.approx(8 * PER_CALL)


def kill_while_sampling(monkeypatch, after):
    """Stops the run (as Ctrl-C would) as round 2 asks for its sample number ``after`` + 1."""
    from funreason_refine.judge.client import LLMClient

    complete, asked = LLMClient.complete, []

    async def killing(self, settings, messages, stage, **options):
        if options.get("variant", "").startswith("round-2/"):
            asked.append(1)
            if len(asked) > after:
                raise KeyboardInterrupt
        return await complete(self, settings, messages, stage, **options)

    monkeypatch.setattr(LLMClient, "complete", killing)
    return lambda: monkeypatch.setattr(LLMClient, "complete", complete)


@pytest.mark.filterwarnings("ignore:coroutine .* was never awaited")  # the call the kill interrupted
@pytest.mark.parametrize("when", ["refining", "sampling"])
def test_a_run_killed_mid_round_resumes_to_the_same_records(tmp_path, plugin, monkeypatch, when):
    def kill(folder, loaded):
        if when == "refining":
            plugin(KillAfter(after=2, folder="round-2"), "kill")
            with pytest.raises(RunInterrupted):
                selfrefine(loaded, rounds=None, target=3)
            from funreason_refine.plugin_manager import get_plugin_manager

            get_plugin_manager().unregister(name="kill")
        else:
            undo = kill_while_sampling(monkeypatch, after=2)
            with pytest.raises(KeyboardInterrupt):
                selfrefine(loaded, rounds=None, target=3)
            undo()
        assert not (folder / "sr" / "kept.jsonl").exists()

    def run(folder, killed):
        folder.mkdir()
        with FakeLLM(policy) as server:
            loaded = load_pipeline(write(folder, server, "max_candidates = 30"))
            if killed:
                kill(folder, loaded)
            summary = selfrefine(loaded, rounds=None, target=3)
            return summary, len(server.requests)

    whole, asked = run(tmp_path / "whole", killed=False)
    resumed, asked_resumed = run(tmp_path / "killed", killed=True)
    assert asked_resumed == asked, "no candidate was paid for twice"
    assert resumed.model_dump(exclude={"rounds"}) == whole.model_dump(exclude={"rounds"})
    assert [r.model_dump(exclude={"run_dir"}) for r in resumed.rounds] == [
        r.model_dump(exclude={"run_dir"}) for r in whole.rounds
    ]
    for name in ("kept.jsonl", "surplus.jsonl"):  # the same lines, but for the folder each source names
        killed = (tmp_path / "killed" / "sr" / name).read_text()
        assert killed.replace(str(tmp_path / "killed"), "DIR") == (
            tmp_path / "whole" / "sr" / name
        ).read_text().replace(str(tmp_path / "whole"), "DIR")
    assert (whole.selected, whole.trimmed, len(whole.rounds)) == (3, 4, 2)


def test_max_cost_over_models_without_a_price_is_named_as_no_cap(tmp_path):
    with FakeLLM(policy) as server:
        output = refine(
            "selfrefine",
            write(tmp_path, server, "max_candidates = 2", top="max_cost = 1.0"),
            "--target-kept",
            3,
            code=5,
        )
    assert "max_cost cannot stop this run: no call was priced" in " ".join(output.split())
    assert saved(tmp_path)["stopped_by"] == "max_candidates"


def test_a_target_without_a_cap_says_what_to_add(tmp_path):
    with FakeLLM(policy) as server:
        loaded = load_pipeline(write(tmp_path, server))
    with pytest.raises(ConfigError, match=r"max_candidates = N in \[source\].*or max_cost"):
        selfrefine(loaded, rounds=None, target=3)


def test_the_next_round_fits_the_rest_of_the_budget_at_the_cost_per_candidate_seen():
    caps = Caps(target=10, max_cost=1.0)
    # Yield 2 of 10: 8 more need 40 candidates, but $0.40 left at $0.06 a candidate buys 6.
    assert draw_size(caps, Tally(drawn=10, kept=2, spent=0.6), available=100) == 6
    assert draw_size(caps, Tally(drawn=10, kept=2, spent=0.1), available=100) == 40
    assert draw_size(Caps(target=10), Tally(), available=100) == 10, "before any round: as if every one were kept"
    assert draw_size(Caps(target=10), Tally(drawn=4, kept=0), available=100) == 40, "none kept yet: as if 1 were"


def test_schema_of_selfrefine_json():
    schema = json.loads(refine("schema", "selfrefine"))
    assert {"target_kept", "candidates_drawn", "kept", "cap_hit", "missing"} <= set(schema["properties"])


def test_a_round_whose_every_sampling_call_failed_is_drawn_again_by_the_next_run(tmp_path):
    from funreason_refine.testing.fake_llm import Reply

    broken = {"on": True}
    with FakeLLM(lambda r: Reply("no such model", status=400) if broken["on"] else policy(r)) as server:
        path = write(tmp_path, server, "max_candidates = 20")
        output = refine("selfrefine", path, "--target-kept", 1, code=5)
        assert "every sampling call of round 1 failed" in " ".join(output.split())
        assert saved(tmp_path)["stopped_by"] == "sampling" and saved(tmp_path)["rounds"] == []
        errors = read_jsonl(tmp_path / "sr" / "round-1" / "sampling_errors.jsonl")
        assert [e["query_id"] for e in errors] == ["q0"] and "HTTP 400" in errors[0]["error"]
        broken["on"] = False
        refine("selfrefine", path, "--target-kept", 1)
    # Round 1 is drawn now: Oslo, rejected; round 2 draws the query drawn fewest times first: Paris.
    assert ids(tmp_path / "sr" / "kept.jsonl") == ["q1#r2s0"]
