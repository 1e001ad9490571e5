"""docs/configuration.md and docs/cli.md stay true: regenerated from the models and `--help`, they are
unchanged, and a key or an option added without its page being regenerated is named."""

import click
import pytest
from pydantic import Field

from funreason_refine import docs_reference
from funreason_refine.audit import settings as audit_settings
from funreason_refine.cli import main
from tests.conftest import REPO

DOCS = REPO / "docs"


def test_the_reference_pages_are_what_the_code_generates():
    problems = docs_reference.stale(DOCS)
    assert not problems, "\n".join(problems)


def test_every_key_of_the_models_is_in_the_configuration_reference():
    from funreason_refine.config import PipelineFile, StageTable
    from funreason_refine.judge.settings import Endpoint, GenerateSettings, JudgeSettings, SourceSettings

    text = (DOCS / "configuration.md").read_text(encoding="utf-8")
    documented = docs_reference.documented_names(text)
    sections = {
        "Top level": PipelineFile,
        "[judge]": JudgeSettings,
        "[[judge.endpoints]]": Endpoint,
        "[generate]": GenerateSettings,
        "[source]": SourceSettings,
        "[audit]": audit_settings.AuditSettings,
        "[[stages]]": StageTable,
    }
    for heading, model in sections.items():
        for name, field in model.model_fields.items():
            assert f"{heading}: {field.alias or name}" in documented
    assert {"text_answers", "required", "forbid_uncalled_functions"} <= {n.split(": ")[1] for n in documented}


def test_every_option_of_every_command_is_in_the_cli_reference():
    documented = docs_reference.documented_names((DOCS / "cli.md").read_text(encoding="utf-8"))
    ctx = click.Context(main)
    for name in main.list_commands(ctx):  # every command, each loaded as `refine NAME` loads it
        command = main.get_command(ctx, name)
        for param in command.params:
            for option in param.opts if isinstance(param, click.Option) else []:
                assert f"refine {name}: {option}" in documented


def test_a_key_added_without_regenerating_is_named_with_the_command(tmp_path, monkeypatch):
    for page in ("configuration.md", "cli.md"):
        (tmp_path / page).write_text((DOCS / page).read_text(encoding="utf-8"), encoding="utf-8")

    class Grown(audit_settings.AuditSettings):
        drop_everything: bool = Field(False, description="A key nobody documented yet.")

    monkeypatch.setattr(audit_settings, "AuditSettings", Grown)
    (problem,) = docs_reference.stale(tmp_path)
    assert "configuration.md is out of date (not documented: [audit]: drop_everything;" in problem
    assert "run `python -m funreason_refine.docs_reference` to regenerate it" in problem

    assert docs_reference.main(["--docs", str(tmp_path)]) == 0
    assert "| `drop_everything` | boolean | `false` | A key nobody documented yet. |" in (
        tmp_path / "configuration.md"
    ).read_text(encoding="utf-8")
    assert docs_reference.stale(tmp_path) == []


def test_an_option_added_without_regenerating_is_named(tmp_path, monkeypatch):
    (tmp_path / "configuration.md").write_text((DOCS / "configuration.md").read_text(encoding="utf-8"))
    (tmp_path / "cli.md").write_text((DOCS / "cli.md").read_text(encoding="utf-8"))
    option = click.Option(["--dry-run"], is_flag=True, help="An option nobody documented yet.")
    merge = main.get_command(click.Context(main), "merge")
    monkeypatch.setattr(merge, "params", [*merge.params, option])
    (problem,) = docs_reference.stale(tmp_path)
    assert "cli.md is out of date (not documented: refine merge: --dry-run;" in problem


def test_a_key_without_a_description_is_refused(monkeypatch):
    class Undescribed(audit_settings.AuditSettings):
        silent: bool = False

    monkeypatch.setattr(audit_settings, "AuditSettings", Undescribed)
    with pytest.raises(ValueError, match=r"Undescribed.silent has no description: give it Field\(description=...\)"):
        docs_reference.configuration_reference()


def test_the_check_writes_nothing_and_says_what_is_stale(tmp_path, capsys):
    (tmp_path / "cli.md").write_text("# CLI\n\n" + docs_reference.MARKER + "\n\nold\n", encoding="utf-8")
    (tmp_path / "configuration.md").write_text((DOCS / "configuration.md").read_text(encoding="utf-8"))
    assert docs_reference.main(["--docs", str(tmp_path), "--check"]) == 1
    assert "cli.md is out of date" in capsys.readouterr().out
    assert (tmp_path / "cli.md").read_text(encoding="utf-8").endswith("old\n")


def test_a_page_without_its_marker_is_refused():
    with pytest.raises(ValueError, match="no marker line"):
        docs_reference.rewrite("# A page written by hand\n", "generated\n")
