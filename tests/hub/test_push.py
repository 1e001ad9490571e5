"""refine push: the dataset folder, in one commit, to the local stand-in of the Hub (its commit API)."""

import pytest

from funreason_refine.hub.card import untouched
from tests.conftest import refine

pytest.importorskip("huggingface_hub")

FILES = ["README.md", "data/train-00000-of-00001.parquet", "discarded/train-00000-of-00001.parquet"]


def commits(hub):
    return [r for r in hub.log if r["method"] == "POST" and "/commit/" in r["path"]]


def test_push_creates_the_repository_and_uploads_the_folder_in_one_commit_and_twice_is_once(
    tmp_path, hub, monkeypatch, quickstart_run
):
    monkeypatch.setenv("HF_TOKEN", hub.token)
    output = refine("push", quickstart_run, "me/refined", "--private")
    repo = hub.repos["me/refined"]
    assert repo.private and len(commits(hub)) == 1
    tree = repo.tree("main")
    assert sorted(tree) == FILES
    refine("export", quickstart_run, "--format", "funreason", "--hub-dir", tmp_path / "folder")
    local = tmp_path / "folder"
    for name in FILES[1:]:
        assert tree[name] == (local / name).read_bytes()
    card = tree["README.md"].decode()
    assert untouched(card) and 'load_dataset("me/refined", split="train")' in card
    assert f"in commit {repo.refs['main']}" in output and "README.md" in output
    # Again: nothing changed, so nothing is committed (huggingface_hub leaves out files the Hub has).
    again = refine("push", quickstart_run, "me/refined")
    assert "already holds these files: nothing to commit" in again and len(commits(hub)) == 1


def test_a_new_push_replaces_its_own_files_deletes_its_stale_ones_and_keeps_a_card_a_person_edited(
    hub, monkeypatch, quickstart_run
):
    monkeypatch.setenv("HF_TOKEN", hub.token)
    repo = hub.dataset("me/refined", {"data/old-00000-of-00001.parquet": b"PAR1", "notes.md": b"mine"})
    refine("push", quickstart_run, "me/refined", "--format", "hermes")
    assert sorted(repo.tree("main")) == [*FILES, "notes.md"]  # data/old-... deleted, notes.md left alone
    edited = repo.tree("main")["README.md"].replace(b"license: unknown", b"license: cc-by-4.0")
    repo.commit({"README.md": edited}, keep=True)
    output = refine("push", quickstart_run, "me/refined", "--format", "openai")
    assert "kept the README.md on the Hub" in output
    assert repo.tree("main")["README.md"] == edited and len(commits(hub)) == 2


def test_dry_run_lists_the_files_and_sends_nothing(hub, monkeypatch, quickstart_run):
    output = refine("push", quickstart_run, "me/refined", "--dry-run")
    for name in FILES:
        assert name in output
    assert "would upload 3 files to the dataset me/refined in one commit" in output
    assert not hub.requests("/api/") and "me/refined" not in hub.repos


def test_without_a_write_token_push_is_a_one_line_error(hub, quickstart_run):
    output = refine("push", quickstart_run, "me/refined", code=1)
    assert "the Hub refused to write to the dataset me/refined (401): set HF_TOKEN" in output
    assert len(output.strip().splitlines()) == 1


def test_a_bad_repository_id_is_refused_before_anything_is_sent(hub, quickstart_run):
    assert "write ORG/NAME" in refine("push", quickstart_run, "refined", code=1)
    assert not hub.log


def test_records_in_neither_configuration_are_said_by_the_folder_and_the_push(tmp_path, hub, flaky_stage):
    # A run whose stage failed on a record (errors.jsonl: no verdict yet) was published without it, without a word.
    from tests.conftest import write_jsonl
    from tests.hub.conftest import xlam_rows

    flaky_stage.add("r1")
    write_jsonl(tmp_path / "in.jsonl", [*xlam_rows("r", 4), "{not json"])
    (tmp_path / "p.toml").write_text('[input]\npath = "in.jsonl"\n[output]\ndir = "run"\n[[stages]]\nname = "flaky"\n')
    refine("run", tmp_path / "p.toml", code=3)
    run = tmp_path / "run"
    for output in (
        refine("export", run, "--format", "openai", "--hub-dir", tmp_path / "hub"),
        refine("push", run, "me/refined", "--dry-run"),
    ):
        said = " ".join(output.split())
        assert f"1 record(s) in {run / 'errors.jsonl'} are in neither configuration" in said
        assert f"run `refine retry {run}`, then write the folder again" in said
        assert f"1 input record(s) that could not be read ({run / 'quarantined.jsonl'})" in said


def test_a_card_a_person_edits_while_the_push_runs_is_not_replaced(hub, monkeypatch, quickstart_run):
    # The push looked at the README.md, then committed on whatever the branch was at by then: an edit made in
    # between was overwritten without a word.
    import funreason_refine.hub.push as push

    monkeypatch.setenv("HF_TOKEN", hub.token)
    refine("push", quickstart_run, "me/refined")
    repo = hub.repos["me/refined"]
    edited = repo.tree("main")["README.md"].replace(b"license: unknown", b"license: cc-by-4.0")
    looked = push._edited_card

    def a_person_edits_meanwhile(card_path, new):
        answer = looked(card_path, new)
        repo.commit({"README.md": edited}, keep=True)
        return answer

    monkeypatch.setattr(push, "_edited_card", a_person_edits_meanwhile)
    output = refine("push", quickstart_run, "me/refined", "--format", "openai", code=1)
    assert "the dataset me/refined changed on the Hub while this push looked at it" in " ".join(output.split())
    assert repo.tree("main")["README.md"] == edited
    monkeypatch.setattr(push, "_edited_card", looked)
    assert "kept the README.md on the Hub" in refine("push", quickstart_run, "me/refined", "--format", "openai")
    assert repo.tree("main")["README.md"] == edited
