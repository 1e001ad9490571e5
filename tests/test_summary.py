"""summary.json as typed models: parts add up, every reader goes through them, the schema is published."""

from __future__ import annotations

import json

import jsonschema
import pytest
from click.testing import CliRunner

from funreason_refine.cli import main
from funreason_refine.config import load_pipeline
from funreason_refine.engine import run_pipeline
from funreason_refine.errors import RunFolderError
from funreason_refine.summary import (
    SCHEMA_VERSION,
    JudgeSection,
    JudgeUsage,
    ProtocolCounts,
    ServerStats,
    StageCounts,
    Summary,
)
from tests.conftest import QUICKSTART


def _summary(**fields):
    base = {
        "version": "0",
        "pipeline": "p.toml",
        "config_hash": "h",
        "complete": True,
        "input": {"path": "/in.jsonl", "format": "xlam", "records": 3},
        "outcomes": {"kept": 2, "discarded": 1, "quarantined": 0, "errors": 0},
        "stages": {"cot": {"passed": 2, "discarded": 1, "reasons": {"discard": {"empty_cot": 1}}}},
    }
    return Summary.model_validate({**base, **fields})


def test_two_shards_add_up_to_their_counts_judge_use_and_time():
    a = _summary(
        judge={"model": "m", "calls": 3, "cost_usd": 0.25, "per_stage": {"cot": {"calls": 3}}},
        timings={"started": "2026-01-01T00:00:00+00:00", "finished": "2026-01-01T00:01:00+00:00", "seconds": 60},
    )
    b = _summary(
        outcomes={"kept": 1, "discarded": 0, "quarantined": 1, "errors": 1},
        stages={"cot": {"passed": 1, "truncated": 1, "reasons": {"truncate": {"cot_misses_function": 1}}}},
        judge={"model": "m", "calls": 2, "cost_usd": 0.5, "per_stage": {"cot": {"calls": 2}}, "notes": ["x"]},
        timings={"started": "2026-01-01T00:00:30+00:00", "finished": "2026-01-01T00:02:00+00:00", "seconds": 90},
    )
    total = a + b
    assert total.outcomes == {"kept": 3, "discarded": 1, "quarantined": 1, "errors": 1}
    assert total.errors == 1 and total.records == 6 and total.input.records == 6
    cot = total.stages["cot"]
    assert (cot.passed, cot.discarded, cot.truncated) == (3, 1, 1)
    assert cot.reasons == {"discard": {"empty_cot": 1}, "truncate": {"cot_misses_function": 1}}
    assert (total.judge.calls, total.judge.cost_usd, total.judge.per_stage["cot"].calls) == (5, 0.75, 5)
    assert total.judge.notes == ["x"] and total.judge.model == "m"
    assert total.timings.started == "2026-01-01T00:00:00+00:00" and total.timings.finished.endswith("02:00+00:00")
    assert total.timings.seconds == 150 and total.dataset is None


def test_parts_of_different_configurations_do_not_add_up():
    with pytest.raises(ValueError, match="different configurations"):
        _summary() + _summary(config_hash="other")


def test_servers_add_up_by_address_and_keep_the_highest_latency():
    one = ServerStats(model="m", api_base="http://a", calls=2, latency_p95_s=0.5, in_rotation=True)
    two = ServerStats(model="m", api_base="http://a", calls=3, latency_p95_s=0.9, in_rotation=False)
    other = ServerStats(model="m", api_base="http://b", calls=1)
    a = JudgeSection(endpoints={"m": [one]})
    b = JudgeSection(endpoints={"m": [two, other]})
    rows = (a + b).endpoints["m"]
    assert [(r.api_base, r.calls, r.latency_p95_s, r.in_rotation) for r in rows] == [
        ("http://a", 5, 0.9, False),
        ("http://b", 1, None, True),
    ]


def test_protocol_reasks_add_up_per_stage_and_model_apart_from_retries():
    a = JudgeSection(
        retries=1,
        protocol_failures=3,
        protocol_reasks=2,
        per_stage={"cot": JudgeUsage(protocol_failures=3, protocol_reasks=2)},
        protocol={"m": ProtocolCounts(failures=3, reasks=2, problems={"no_verdict": 2, "cut_off": 1})},
    )
    b = JudgeSection(
        protocol_failures=1,
        protocol_reasks=1,
        per_stage={"format": JudgeUsage(protocol_failures=1, protocol_reasks=1)},
        protocol={"m": ProtocolCounts(failures=1, reasks=1, problems={"cut_off": 1}), "n": ProtocolCounts()},
    )
    total = a + b
    assert (total.retries, total.protocol_failures, total.protocol_reasks) == (1, 4, 3)
    assert {s: u.protocol_reasks for s, u in total.per_stage.items()} == {"cot": 2, "format": 1}
    assert total.protocol["m"] == ProtocolCounts(failures=4, reasks=3, problems={"no_verdict": 2, "cut_off": 2})
    assert "protocol" not in JudgeSection().model_dump(), "left out when no answer failed"


def test_a_summary_of_schema_2_still_reads():
    old = _summary(schema_version=2).as_dict()
    for usage in [old["judge"], *old["judge"]["per_stage"].values()]:
        del usage["protocol_failures"], usage["protocol_reasks"]
    assert Summary.parse(json.dumps(old)).judge.protocol_reasks == 0


def test_stage_counts_and_usage_add_field_by_field():
    assert (StageCounts(passed=1) + StageCounts(passed=2, regenerated=1)).model_dump()["passed"] == 3
    assert (JudgeUsage(cost_usd=0.1) + JudgeUsage(cost_usd=0.2)).cost_usd == 0.3


def test_a_run_writes_a_summary_that_reads_back_and_fits_the_published_schema(tmp_path):
    result = run_pipeline(load_pipeline(QUICKSTART / "pipeline.toml", tmp_path / "run"))
    written = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert written["schema_version"] == SCHEMA_VERSION
    assert Summary.read(tmp_path / "run") == result.summary
    printed = CliRunner().invoke(main, ["schema", "summary"])
    assert printed.exit_code == 0, printed.output
    jsonschema.validate(written, json.loads(printed.output))
    written["stages"]["cot"]["passd"] = 1  # a key no reader knows: an error, not a silent zero
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(written, json.loads(printed.output))


def test_an_unreadable_or_newer_summary_is_a_one_line_error_naming_the_file_and_key(tmp_path):
    (tmp_path / "summary.json").write_text('{"schema_version": 99}')
    with pytest.raises(RunFolderError, match="newer funreason-refine"):
        Summary.read(tmp_path)
    (tmp_path / "summary.json").write_text(json.dumps({**_summary().as_dict(), "outcomes": "many"}))
    with pytest.raises(RunFolderError, match=r"summary.json: outcomes: .*not written by this tool"):
        Summary.read(tmp_path)
    (tmp_path / "summary.json").unlink()
    with pytest.raises(RunFolderError, match="has not finished"):
        Summary.read(tmp_path)
