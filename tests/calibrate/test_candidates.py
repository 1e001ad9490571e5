"""Calibration candidates: prompt variants, a judge that cannot be reached, the pipeline files written."""

import json
import tomllib

import pytest
from click.testing import CliRunner

from funreason_refine.cli import main
from funreason_refine.testing.fake_llm import FakeLLM, Reply
from tests.conftest import REPO, write_jsonl, xlam_row

COT_SPEC = (REPO / "stage_specs" / "cot.toml").read_text()


@pytest.fixture(autouse=True)
def key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")


def setup(tmp_path, server):
    rows = [
        {**xlam_row("a", cot="get_weather for Paris."), "label": {"outcome": "keep"}},
        {
            **xlam_row("b", query="Weather?", cot="get_weather for Paris."),
            "label": {"outcome": "discard", "stage": "cot"},
        },
    ]
    write_jsonl(tmp_path / "golden.jsonl", rows)
    (tmp_path / "prompts").mkdir()
    (tmp_path / "my_cot.txt").write_text("Pipeline's own CoT prompt {query} {cot} {answer}")
    (tmp_path / "p.toml").write_text(
        '[input]\npath = "x.jsonl"\n[output]\ndir = "run"\n'
        f'[judge]\nmodel = "openai/j"\napi_base = "{server.api_base}"\n'
        'max_retries = 0\n[[stages]]\nname = "classification"\n[[stages]]\nname = "cot"\nprompt_file = "my_cot.txt"\n'
    )
    return tmp_path


def invoke(folder, *extra):
    args = ["calibrate", folder / "golden.jsonl", folder / "p.toml", "--out", folder / "cal", *extra]
    return CliRunner().invoke(main, [str(a) for a in args])


def test_a_prompt_variant_replaces_the_pipelines_prompt_for_its_stage(tmp_path):
    def script(r):
        if "STRICT VARIANT" in r.prompt and "Weather?" in r.prompt:
            return "<judge>False</judge><reason>no city</reason>"
        return "<judge>True</judge>"

    with FakeLLM(script) as server:
        folder = setup(tmp_path, server)
        variant = folder / "prompts" / "strict"
        variant.mkdir()
        (variant / "cot.toml").write_text(COT_SPEC.replace("You are checking", "STRICT VARIANT. You are checking"))
        result = invoke(folder, "--prompts", variant)
    assert result.exit_code == 0, result.output
    names = [c["name"] for c in json.loads((folder / "cal" / "calibration.json").read_text())["candidates"]]
    assert names == ["rules only", "openai/j", "openai/j + prompts strict"]
    report = {c["slug"]: c for c in json.loads((folder / "cal" / "calibration.json").read_text())["candidates"]}
    assert report["openai-j"]["overall"]["recall"] == 0.0
    assert report["openai-j-prompts-strict"]["overall"]["recall"] == 1.0
    written = tomllib.loads((folder / "cal" / "openai-j-prompts-strict" / "pipeline.toml").read_text())
    assert "prompt_file" not in written["stages"][1] and written["stage_specs_dir"] == "specs"
    own = tomllib.loads((folder / "cal" / "openai-j" / "pipeline.toml").read_text())
    assert own["stages"][1]["prompt_file"] == str(folder / "my_cot.txt"), "relative paths made absolute"
    assert "judge" not in tomllib.loads((folder / "cal" / "rules-only" / "pipeline.toml").read_text())


def test_a_judge_that_cannot_be_reached_fails_alone(tmp_path):
    def script(r):
        return Reply("no such model", status=404) if r.model == "missing" else "<judge>True</judge>"

    with FakeLLM(script) as server:
        result = invoke(setup(tmp_path, server), "--judge-model", f"openai/missing@{server.api_base}")
    assert result.exit_code == 1
    report = json.loads((tmp_path / "cal" / "calibration.json").read_text())
    by_name = {c["name"]: c for c in report["candidates"]}
    assert "openai/missing: NotFoundError" in by_name["openai/missing"]["error"]
    assert by_name["openai/j"]["overall"]["records"] == 2 and by_name["rules only"]["overall"]["records"] == 2
    assert "failed" in result.output
