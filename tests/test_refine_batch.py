"""refine_batch: many records stage by stage, with exactly the outcomes refine_record gives each alone."""

from pathlib import Path

from funreason_refine.config import load_pipeline
from funreason_refine.engine import _open_stream
from funreason_refine.record import FunctionCall, Quarantined, Verdict
from funreason_refine.refine import refine_batch, refine_record, run_sync
from funreason_refine.run_folder import to_json_line
from funreason_refine.stages.base import Stage
from funreason_refine.stages.cot import Cot
from funreason_refine.testing import make_record
from tests.test_engine import FORECAST, WEATHER, staged

QUICKSTART = Path(__file__).resolve().parents[1] / "examples" / "quickstart" / "pipeline.toml"


def described(outcome):
    return outcome.kind, outcome.stage, outcome.reason, outcome.message, to_json_line(outcome.line())


def one_at_a_time(records, stages):
    return [described(run_sync(refine_record(r, stages, owned=True))) for r in records]


def test_the_quickstart_gets_the_outcomes_of_one_record_at_a_time(tmp_path):
    pipeline = load_pipeline(QUICKSTART, tmp_path / "run")
    stream = _open_stream(pipeline)

    def records():
        items = [stream.convert(raw) for raw in stream.raw_items()]
        return [item for item in items if not isinstance(item, Quarantined)]

    expected = one_at_a_time(records(), pipeline.stages)
    got = [described(o) for o in refine_batch(records(), pipeline.stages)]
    assert got == expected
    # every reason code of the example is among them, regenerations included
    assert {"kept", "discarded"} <= {kind for kind, *_ in got}
    assert any(b'"verdict":"regenerate"' in line for *_, line in got)


class Mixed(Stage):
    """A different path through refine_record for each record, by index."""

    name = "mixed"

    def check(self, record):
        kind = record.index % 6
        if kind == 0:
            raise ValueError("broken plugin")
        if kind == 1 and record.calls and record.calls[0].name == "get_weather":  # changes the answer: cot re-checks
            new = [FunctionCall(name="get_forecast", arguments={"city": "Paris", "days": 1})]
            return Verdict.regenerate(record.model_copy(update={"answer": new}), "switched", "to forecast")
        if kind == 2:
            return Verdict.passed("enough", "accepted here", final=True)
        if kind == 3:
            return Verdict.discard("bad", "discarded here")
        if kind == 4:  # never satisfied: bounded by max_attempts
            return Verdict.regenerate(record.model_copy(update={"cot": (record.cot or "") + "."}), "again", "more")
        return Verdict.passed()


class Last(Stage):
    name = "last"

    def check(self, record):
        return Verdict(action="pass", record=record.model_copy(update={"target": f"done {record.index}"}))


def mixed_records():
    cot = "I call get_weather."
    return [make_record(tools=[WEATHER, FORECAST], cot=cot, index=i) for i in range(30)]


def test_every_path_through_the_stages_gets_the_same_outcome():
    stages = staged(Cot(), Mixed(), Last(), max_attempts=2)
    expected = one_at_a_time(mixed_records(), stages)
    got = [described(o) for o in refine_batch(mixed_records(), stages)]
    assert got == expected
    assert {kind for kind, *_ in got} == {"kept", "discarded", "errors"}


def test_stages_run_over_the_whole_batch_in_turn_and_each_record_sees_the_same_checks():
    calls = []

    class Logged(Stage):
        def check(self, record):
            calls.append((self.name, record.index))
            return Verdict.passed()

    first, second = (type(name, (Logged,), {"name": name})() for name in ("first", "second"))
    stages = staged(first, Cot(), Mixed(), second, max_attempts=2)

    def per_record():
        return {i: [name for name, index in calls if index == i] for i in range(30)}

    one_at_a_time(mixed_records(), stages)
    alone = per_record()
    calls.clear()
    refine_batch(mixed_records(), stages)
    assert per_record() == alone
    # the first stage checked every record before the second one checked any
    assert [name for name, _ in calls[:30]] == ["first"] * 30
    assert "first" not in [name for name, _ in calls[30:]]
