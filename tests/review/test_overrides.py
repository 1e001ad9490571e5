"""overrides.jsonl: durable appends, the latest decision per record, and what export does with them."""

import json

from click.testing import CliRunner

from funreason_refine import overrides
from funreason_refine.cli import main
from funreason_refine.overrides import OVERRIDES, OverrideLog, decision_for, read_decisions
from funreason_refine.testing import run_rows
from tests.conftest import read_jsonl, xlam_row


def line(run_dir, kind, rid):
    return next(r for r in read_jsonl(run_dir / f"{kind}.jsonl") if r["id"] == rid)


def test_each_decision_is_on_disk_before_append_returns(run_dir, monkeypatch):
    seen = []
    real = overrides.os.fsync
    monkeypatch.setattr(overrides.os, "fsync", lambda fd: (seen.append((run_dir / OVERRIDES).read_text()), real(fd)))
    OverrideLog(run_dir).append(decision_for(line(run_dir, "kept", "ok-rome"), "kept", "wrong"))
    assert seen and '"decision": "wrong"' in seen[0], "fsync'd with the line written"


def test_a_line_torn_by_a_crash_does_not_swallow_the_next_decision(run_dir):
    first = decision_for(line(run_dir, "kept", "ok-paris"), "kept", "right")
    (run_dir / OVERRIDES).write_text(json.dumps(first.model_dump()) + '\n{"index": 1, "id": "ok-ro')
    torn = read_decisions(run_dir)
    assert [(b.line, b.torn) for b in torn.bad] == [(2, True)]
    assert torn.check() == [
        f"{run_dir / OVERRIDES}:2: cut short (a decision being saved when refine review stopped, never "
        "acknowledged); ignored"
    ]
    OverrideLog(run_dir).append(decision_for(line(run_dir, "discarded", "no-days"), "discarded", "wrong", "fine"))
    read = read_decisions(run_dir)
    assert read.bad == [], "the fragment, never acknowledged, is cut off: it is not left as a bad line mid-file"
    assert {i: d.decision for i, d in read.latest.items()} == {0: "right", 4: "wrong"}
    assert (run_dir / OVERRIDES).read_text().count("\n") == 2


def test_export_restores_wrong_discards_drops_wrong_keeps_and_ignores_stale_decisions(run_dir, tmp_path):
    log = OverrideLog(run_dir)
    log.append(decision_for(line(run_dir, "discarded", "no-days"), "discarded", "wrong"))
    log.append(decision_for(line(run_dir, "kept", "ok-rome"), "kept", "wrong", "Rome is not asked for"))
    log.append(decision_for(line(run_dir, "discarded", "unknown-param"), "discarded", "right"))
    stale = decision_for(line(run_dir, "discarded", "hostile"), "discarded", "wrong").model_copy(
        update={"stage": "cot"}
    )
    log.append(stale)  # made on a verdict the run no longer has
    out = tmp_path / "train.jsonl"
    result = CliRunner().invoke(main, ["export", str(run_dir), "--format", "openai", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert [r["id"] for r in read_jsonl(out)] == ["ok-paris", "repaired", "no-days"], (
        "input order, restored one in place"
    )
    assert "wrote 3 records" in result.output
    assert (
        "applied the review (overrides.jsonl): 1 wrongly discarded record(s) restored; 1 wrongly kept left out; "
        "1 stale decision(s) ignored" in " ".join(result.output.split())
    )


def test_a_restored_record_without_a_readable_answer_is_named_not_exported(tmp_path):
    broken = {"id": "cut", "query": "Weather?", "tools": "[]", "answers": '[{"name": "get_weather"'}
    run_rows([xlam_row("ok"), broken], tmp_path)
    run_dir = tmp_path / "run"
    OverrideLog(run_dir).append(decision_for(line(run_dir, "discarded", "cut"), "discarded", "wrong"))
    result = CliRunner().invoke(
        main, ["export", str(run_dir), "--format", "funreason", "-o", str(tmp_path / "o.jsonl")]
    )
    assert result.exit_code == 0, result.output
    assert len(read_jsonl(tmp_path / "o.jsonl")) == 1
    assert "record 1 (id cut): its answer could not be read" in " ".join(result.output.split())


def test_without_a_review_export_is_unchanged(run_dir, tmp_path):
    result = CliRunner().invoke(main, ["export", str(run_dir), "--format", "hermes", "-o", str(tmp_path / "h.jsonl")])
    assert " ".join(result.output.split()) == f"wrote 3 records to {tmp_path / 'h.jsonl'}"


def test_an_unreadable_decision_stops_export_and_report_naming_its_line(run_dir, tmp_path):
    good = decision_for(line(run_dir, "kept", "ok-rome"), "kept", "wrong")
    lines = [json.dumps(good.model_dump()), '{"index": 4, "decision": "wrnog"}', json.dumps(good.model_dump())]
    (run_dir / OVERRIDES).write_text("\n".join(lines) + "\n")
    out = tmp_path / "train.jsonl"
    for args in (["export", str(run_dir), "--format", "openai", "-o", str(out)], ["report", str(run_dir)]):
        result = CliRunner().invoke(main, args)
        text = " ".join(result.output.split())
        assert result.exit_code == 1 and "Traceback" not in text, text
        assert f"1 line(s) of {run_dir / OVERRIDES} are not decisions `refine review` wrote: " in text
        assert f"{run_dir / OVERRIDES}:2: not a decision (id: Field required; kind: Field required;" in text
        assert "decision: Input should be 'right', 'wrong' or 'none'" in text
        assert f"fix or delete those lines, then decide those records again with `refine review {run_dir}`" in text
    assert not out.exists()


def test_a_decision_cut_short_is_a_warning_in_export_and_report(run_dir, tmp_path):
    good = decision_for(line(run_dir, "kept", "ok-rome"), "kept", "wrong")
    (run_dir / OVERRIDES).write_text(json.dumps(good.model_dump()) + '\n{"index": 4, "deci')
    expected = f"warning: {run_dir / OVERRIDES}:2: cut short (a decision being saved when refine review stopped"
    export = CliRunner().invoke(main, ["export", str(run_dir), "--format", "openai", "-o", str(tmp_path / "t.jsonl")])
    assert export.exit_code == 0 and expected in " ".join(export.output.split())
    assert "1 wrongly kept left out" in " ".join(export.output.split()), "the readable decisions still apply"
    report = CliRunner().invoke(main, ["report", str(run_dir)])
    assert report.exit_code == 0 and expected in " ".join(report.output.split())


def test_a_decision_does_not_carry_over_to_an_answer_a_redone_run_changed(run_dir, tmp_path):
    log = OverrideLog(run_dir)
    log.append(decision_for(line(run_dir, "kept", "repaired"), "kept", "right", "five days, good"))
    log.append(decision_for(line(run_dir, "kept", "ok-rome"), "kept", "wrong"))
    kept = read_jsonl(run_dir / "kept.jsonl")
    for record in kept:  # as a run redone with another judge leaves it: its answer is another
        if record["id"] == "repaired":
            record["answer"][0]["arguments"]["days"] = 3
    (run_dir / "kept.jsonl").write_text("".join(json.dumps(r) + "\n" for r in kept))
    decisions = read_decisions(run_dir)
    assert decisions.on(line(run_dir, "kept", "repaired"), "kept") is None
    assert decisions.on(line(run_dir, "kept", "ok-rome"), "kept") is not None
    old_style = json.loads(json.dumps(decisions.latest[1].model_dump())) | {"answer": None}
    assert overrides.Decision.model_validate(old_style).applies_to(line(run_dir, "kept", "ok-rome"), "kept")
    result = CliRunner().invoke(main, ["export", str(run_dir), "--format", "openai", "-o", str(tmp_path / "t.jsonl")])
    assert "1 stale decision(s) ignored" in " ".join(result.output.split())
