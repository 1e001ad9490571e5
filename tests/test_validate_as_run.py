"""`refine validate` refuses what `refine run` would refuse once started: a BFCL answer file that is not there, an eval
set whose format cannot be told, an [output] dir that is a file (config._Loader)."""

import pytest

from tests.conftest import refine, write_jsonl, xlam_row


def pipeline(tmp_path, toml):
    write_jsonl(tmp_path / "recs.jsonl", [xlam_row("a"), xlam_row("b")])
    (tmp_path / "p.toml").write_text('[input]\npath = "recs.jsonl"\n' + toml)
    return tmp_path / "p.toml"


def refused_alike(path, *expected):
    """validate and run both refuse, saying each of ``expected``; the run writes nothing."""
    for command in ("validate", "run"):
        text = " ".join(refine(command, path, code=1).split())
        for words in expected:
            assert words in text, (command, text)
    assert not (path.parent / "runs").exists()


def test_a_bfcl_input_without_its_answer_file(tmp_path):
    path = pipeline(tmp_path, 'format = "bfcl"\n')
    missing = tmp_path / "possible_answer" / "recs.jsonl"
    refused_alike(path, f"[input] key 'format': BFCL ground truth not found: {missing}", "[input] answers")


def test_an_answer_file_named_that_is_not_there(tmp_path):
    path = pipeline(tmp_path, 'answers = "nope.json"\n')
    refused_alike(path, f"[input] key 'answers': file {tmp_path / 'nope.json'} not found")


@pytest.mark.parametrize(
    ("content", "why"),
    [
        ('[{"prompt": "What is the weather?"}]', "its only record has the keys of no format"),
        ("", "it holds no records"),
    ],
)
def test_an_eval_set_whose_format_cannot_be_told(tmp_path, content, why):
    (tmp_path / "evalx.json").write_text(content)
    path = pipeline(tmp_path, '[audit]\neval_sets = ["evalx.json"]\n')
    refused_alike(
        path,
        f"[audit] key 'eval_sets[0]': cannot tell the format of {tmp_path / 'evalx.json'}: {why}",
        "[input] format does not apply to it",
        "query and answers (xlam), question and function (bfcl), messages (openai) or conversations (sharegpt)",
    )
    assert "set [input] format" not in refine("validate", path, code=1)


def test_an_output_dir_that_is_a_file(tmp_path):
    path = pipeline(tmp_path, '[output]\ndir = "recs.jsonl"\n')
    refused_alike(path, f"[output] key 'dir': {tmp_path / 'recs.jsonl'} is a file, not a folder")
    path = pipeline(tmp_path, '[output]\ndir = "recs.jsonl/run"\n')
    text = " ".join(refine("validate", path, code=1).split())
    assert f"{tmp_path / 'recs.jsonl'} is a file, not a folder (the run folder {tmp_path / 'recs.jsonl/run'}" in text
