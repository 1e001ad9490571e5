"""hf:// paths as values: what they name, and the one-line errors of those that name nothing."""

import pytest

from funreason_refine.hub.paths import HubFile, HubPath
from funreason_refine.readers import InputConfig


def test_a_path_names_a_dataset_a_revision_and_a_file_or_glob():
    path = HubPath.parse("hf://datasets/Salesforce/xlam-function-calling-60k@v1.0/data/*.json")
    assert (path.repo_id, path.revision, path.pattern, path.is_glob) == (
        "Salesforce/xlam-function-calling-60k",
        "v1.0",
        "data/*.json",
        True,
    )
    pinned = path.pinned("a" * 40, (HubFile("data/a.json", 3), HubFile("data/b.json", 4)))
    assert pinned.url == "hf://datasets/Salesforce/xlam-function-calling-60k@v1.0/data/*.json"
    assert str(pinned) == f"hf://datasets/Salesforce/xlam-function-calling-60k@{'a' * 40}/data/*.json"
    assert pinned.fs_path("data/a.json") == f"datasets/Salesforce/xlam-function-calling-60k@{'a' * 40}/data/a.json"
    assert pinned.stat().st_size == 7 and pinned.name == "*.json"
    assert not pinned.is_file()  # not a file on this machine: the run fingerprints only local input files
    answers = pinned.parent / "possible_answer" / "a.json"  # what bfcl.default_answers_path asks
    assert str(answers) == f"hf://datasets/Salesforce/xlam-function-calling-60k@{'a' * 40}/data/possible_answer/a.json"
    assert HubPath.parse("hf://datasets/o/n/f.jsonl").revision is None
    assert HubPath.parse("hf://datasets/o/n@refs%2Fpr%2F3/f.jsonl").revision == "refs/pr/3"


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("hf://models/o/n/f.jsonl", "only dataset repositories can be read"),
        ("hf://datasets/o/n", "names no file in the repository"),
        ("hf://datasets/o/n/", "names no file in the repository"),
        ("hf://datasets/o/n@a@b/f.jsonl", "write the revision once"),
    ],
)
def test_a_path_that_names_no_file_says_what_to_write(text, says):
    with pytest.raises(ValueError, match=says):
        HubPath.parse(text)


def test_the_input_table_takes_local_and_hub_paths():
    assert isinstance(InputConfig(path="hf://datasets/o/n/f.jsonl").path, HubPath)
    assert str(InputConfig(path="records.jsonl").path) == "records.jsonl"
    assert InputConfig(path="hf://datasets/o/n/f.jsonl").model_dump(mode="json")["path"] == "hf://datasets/o/n/f.jsonl"


@pytest.mark.parametrize(
    ("text", "revision", "pattern"),
    [
        (
            "hf://datasets/o/n@refs/convert/parquet/default/train/*.parquet",
            "refs/convert/parquet",
            "default/train/*.parquet",
        ),
        ("hf://datasets/o/n@refs/pr/12/data/train.jsonl", "refs/pr/12", "data/train.jsonl"),
        (
            "hf://datasets/o/n@refs%2Fconvert%2Fparquet/default/train/0000.parquet",
            "refs/convert/parquet",
            "default/train/0000.parquet",
        ),
        ("hf://datasets/o/n@refs/data/train.jsonl", "refs", "data/train.jsonl"),  # a branch named refs
    ],
)
def test_the_hubs_special_revisions_are_read_unquoted_as_hffilesystem_reads_them(text, revision, pattern):
    # The Hub's Parquet conversion is at @refs/convert/parquet: it was read as revision 'refs' (not found).
    path = HubPath.parse(text)
    assert (path.revision, path.pattern) == (revision, pattern)
    assert HubPath.parse(path.url) == path


def test_a_special_revision_with_no_file_after_it_names_no_file():
    with pytest.raises(ValueError, match="names no file in the repository"):
        HubPath.parse("hf://datasets/o/n@refs/convert/parquet/")
