"""refine export --hub-dir: a folder that datasets.load_dataset reads, with a dataset card the Hub reads."""

import json
import subprocess
import sys

import pytest

from funreason_refine.hub.card import untouched
from funreason_refine.overrides import OverrideLog, decision_for
from funreason_refine.testing.fake_llm import FakeLLM, Reply
from tests.conftest import read_jsonl, refine
from tests.hub.conftest import jsonl, xlam_rows

datasets = pytest.importorskip("datasets")
from huggingface_hub import DatasetCard  # noqa: E402

FORMAT_COLUMNS = {
    "funreason": {"id", "messages"},
    "hermes": {"id", "tools", "messages"},
    "sharegpt": {"id", "conversations", "tools", "cot"},
    "openai": {"id", "messages", "tools"},
}


def load(folder, config="default"):
    return datasets.load_dataset(str(folder), config, split="train", cache_dir=str(folder.parent / "hf-cache"))


@pytest.mark.parametrize("fmt", ["funreason", "hermes", "sharegpt", "openai"])
def test_the_folder_loads_with_datasets_as_two_configurations(tmp_path, quickstart_run, fmt):
    output = refine("export", quickstart_run, "--format", fmt, "--hub-dir", tmp_path / "hub")
    assert "TO FILL IN" in output
    kept, discarded = load(tmp_path / "hub"), load(tmp_path / "hub", "discarded")
    summary = json.loads((quickstart_run / "summary.json").read_text())
    assert kept.num_rows == summary["outcomes"]["kept"] and set(kept.column_names) >= FORMAT_COLUMNS[fmt]
    assert kept["id"] == [line["id"] for line in read_jsonl(quickstart_run / "kept.jsonl")]
    assert discarded.num_rows == summary["outcomes"]["discarded"]
    lines = list(read_jsonl(quickstart_run / "discarded.jsonl"))
    # Parquet holds UTF-8: the sample's lone surrogate (a legal JSON escape) is written as an escape.
    escaped = [line["message"].encode("utf-8", "backslashreplace").decode() for line in lines]
    assert any(e != line["message"] for e, line in zip(escaped, lines, strict=True))
    assert [(r["index"], r["stage"], r["reason"], r["message"]) for r in discarded] == [
        (line["index"], line["stage"], line["reason"], e) for line, e in zip(lines, escaped, strict=True)
    ]
    assert not (tmp_path / "hub" / "data" / "dataset_info.json").exists()  # LLaMA-Factory's file is for -o only


def test_the_card_has_the_hubs_metadata_and_says_what_a_person_still_has_to_write(tmp_path, quickstart_run):
    refine("export", quickstart_run, "--format", "funreason", "--hub-dir", tmp_path / "hub")
    text = (tmp_path / "hub" / "README.md").read_text()
    card = DatasetCard.load(tmp_path / "hub" / "README.md")
    data = card.data.to_dict()
    assert data["license"] == "unknown" and "# TO FILL IN: the licence" in text.split("license:")[0]
    assert data["size_categories"] == ["n<1K"] and data["task_categories"] == ["text-generation"]
    assert [(c["config_name"], c.get("default", False)) for c in data["configs"]] == [
        ("default", True),
        ("discarded", False),
    ]
    assert [c["data_files"][0]["split"] for c in data["configs"]] == ["train", "train"]
    body = card.text
    assert body.count("TO FILL IN") >= 4 and "Before you publish this card" in body
    summary = json.loads((quickstart_run / "summary.json").read_text())
    assert summary["input"]["path"] in body
    for stage in ("classification", "query_tool", "cot", "function_params", "format"):
        for reason, count in summary["stages"][stage]["records_discarded"].items():
            assert f"| `{stage}` | `{reason}` | {count} |" in body
    assert "| `classification` | Function Call Classification |" in body
    assert "No LLM judge" in body and "1 exact (dropped)" in body and "eval_set.json" in body
    assert "eprint        = {2505.20192}" in body
    assert untouched(text) and not untouched(text.replace("license: unknown", "license: cc-by-4.0"))


def test_the_review_moves_records_between_the_configurations(tmp_path, quickstart_run):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(quickstart_run, run)
    wrongly_discarded = next(
        line for line in read_jsonl(run / "discarded.jsonl") if line["stage"] == "dataset"
    )  # a duplicate: it can be trained on
    wrongly_kept, also_wrong = read_jsonl(run / "kept.jsonl")[:2]
    log = OverrideLog(run)
    log.append(decision_for(wrongly_discarded, "discarded", "wrong"))
    log.append(decision_for(wrongly_kept, "kept", "wrong", note="the answer is off"))
    log.append(decision_for(also_wrong, "kept", "wrong"))
    output = refine("export", run, "--format", "openai", "--hub-dir", tmp_path / "hub")
    assert "1 wrongly discarded record(s) restored; 2 wrongly kept left out" in output
    kept, discarded = load(tmp_path / "hub"), load(tmp_path / "hub", "discarded")
    assert wrongly_discarded["id"] in kept["id"] and wrongly_kept["id"] not in kept["id"]
    reviewed = [r for r in discarded if r["id"] == wrongly_kept["id"]]
    assert [(r["stage"], r["reason"], r["message"]) for r in reviewed] == [
        ("review", "wrongly_kept", "the answer is off")
    ]
    assert wrongly_discarded["index"] not in discarded["index"]
    assert discarded["index"] == sorted(discarded["index"])
    card = " ".join((tmp_path / "hub" / "README.md").read_text().split())
    assert "applied the review" in card
    # The card's count is the default configuration's (one restored, one left out), not the run's.
    run_kept = json.loads((run / "summary.json").read_text())["outcomes"]["kept"]
    assert kept.num_rows == run_kept - 1
    assert f"**{kept.num_rows}** were kept after a person's review (the run kept {run_kept})" in card


def test_the_card_of_a_judged_run_from_the_hub_names_the_dataset_commit_judges_and_cost(tmp_path, hub, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    repo = hub.dataset("org/ds", {"train.jsonl": jsonl(*xlam_rows("r", 3))})
    rows = '[[stages]]\nname = "query_tool"\nprompt = "Is {query} solvable with {tools}?"\n'
    with FakeLLM(lambda request: Reply(text="<judge>True</judge><reason>ok</reason>")) as server:
        pipeline = tmp_path / "pipeline.toml"
        pipeline.write_text(
            '[input]\npath = "hf://datasets/org/ds/train.jsonl"\n[output]\ndir = "run"\n'
            f'[judge]\nmodel = "openai/fake-judge"\napi_base = "{server.api_base}"\n{rows}'
        )
        refine("run", pipeline)
    refine("export", tmp_path / "run", "--format", "hermes", "--hub-dir", tmp_path / "hub")
    body = DatasetCard.load(tmp_path / "hub" / "README.md").text
    commit = repo.refs["main"]
    assert f"the dataset `org/ds` on the Hugging Face Hub, at revision\n  `main`, read at commit `{commit}`" in body
    assert "Judge and generator models: openai/fake-judge" in body and "Calls: 3" in body
    assert "| `query_tool` | Query & Tool Identification | discard | openai/fake-judge |" in body


def test_export_needs_a_file_or_a_folder_and_refuses_an_unfinished_run(tmp_path, quickstart_run):
    assert "give -o FILE, --hub-dir DIR, or both" in refine("export", quickstart_run, "--format", "openai", code=2)
    (tmp_path / "empty").mkdir()
    output = refine("export", tmp_path / "empty", "--format", "openai", "--hub-dir", tmp_path / "hub", code=1)
    assert "summary.json does not exist" in output and not (tmp_path / "hub").exists()


def test_help_imports_none_of_the_hub_libraries():
    code = (
        "import sys; from click.testing import CliRunner; from funreason_refine.cli import main; "
        "[CliRunner().invoke(main, a) for a in (['--help'], ['push', '--help'], ['export', '--help'])]; "
        "print(sorted(m for m in ('huggingface_hub', 'datasets', 'jinja2', 'pyarrow', 'polars') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_the_folder_and_a_push_say_what_the_format_left_out_as_export_o_does(tmp_path, hub):
    # The funreason format has no place for text beside calls: -o warned, --hub-dir and push dropped it silently.
    from tests.test_export import refine_text_beside_calls

    refine_text_beside_calls(tmp_path)
    said = "1 assistant turn(s) of 1 record(s) wrote text beside their calls"
    output = refine("export", tmp_path / "run", "--format", "funreason", "--hub-dir", tmp_path / "hub")
    assert said in " ".join(output.split())
    output = refine("push", tmp_path / "run", "me/chats", "--dry-run")
    assert said in " ".join(output.split())
    output = refine("push", tmp_path / "run", "me/chats", "--format", "openai", "--dry-run")
    assert "beside their calls" not in output


def test_a_run_that_discarded_nothing_has_no_discarded_configuration_which_datasets_could_not_load(
    tmp_path, hub, monkeypatch, quickstart_run
):
    # An empty discarded configuration was written, and load_dataset(..., "discarded") raised on it.
    from tests.conftest import write_jsonl
    from tests.hub.conftest import xlam_rows

    write_jsonl(tmp_path / "in.jsonl", xlam_rows("r", 3))
    (tmp_path / "p.toml").write_text('[input]\npath = "in.jsonl"\n[output]\ndir = "run"\n[[stages]]\nname = "format"\n')
    refine("run", tmp_path / "p.toml")
    folder = tmp_path / "hub"
    refine("export", quickstart_run, "--format", "openai", "--hub-dir", folder)  # an earlier export into the folder
    output = refine("export", tmp_path / "run", "--format", "openai", "--hub-dir", folder)
    assert "3 kept records (config default), no discarded record to publish" in " ".join(output.split())
    assert not (folder / "discarded").exists() or not any((folder / "discarded").iterdir())
    card = DatasetCard.load(folder / "README.md")
    assert [c["config_name"] for c in card.data.to_dict()["configs"]] == ["default"]
    assert '"discarded", split=' not in card.text and "there is no `discarded` configuration" in card.text
    assert load(folder)["id"] == ["r0", "r1", "r2"]
    monkeypatch.setenv("HF_TOKEN", hub.token)
    refine("push", quickstart_run, "me/refined")
    output = refine("push", tmp_path / "run", "me/refined")
    assert "discarded/train-00000-of-00001.parquet  (deleted: not in this run's folder)" in output
    assert sorted(hub.repos["me/refined"].tree("main")) == ["README.md", "data/train-00000-of-00001.parquet"]


def test_the_discarded_configuration_keeps_each_records_meta_as_the_kept_one_does(tmp_path):
    # The discarded rows had no meta column: a record's own metadata (its category, its origin) was lost there.
    from tests.conftest import write_jsonl, xlam_row

    good, bad = xlam_row("good"), xlam_row("bad", answers=[{"name": "nope", "arguments": {}}])
    good["meta"], bad["meta"] = {"category": "weather"}, {"category": "travel", "origin": ["a", 1]}
    write_jsonl(tmp_path / "in.jsonl", [good, bad])
    (tmp_path / "p.toml").write_text(
        '[input]\npath = "in.jsonl"\n[output]\ndir = "run"\n[[stages]]\nname = "function_params"\n'
    )
    refine("run", tmp_path / "p.toml")
    refine("export", tmp_path / "run", "--format", "openai", "--hub-dir", tmp_path / "hub")
    kept, discarded = load(tmp_path / "hub"), load(tmp_path / "hub", "discarded")
    assert [json.loads(m) for m in kept["meta"]] == [{"category": "weather"}]
    assert [(r["id"], json.loads(r["meta"])) for r in discarded] == [
        ("bad", {"category": "travel", "origin": ["a", 1]})
    ]
