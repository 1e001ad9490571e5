"""One test per hook (named test_hook_<name>), plus the plugin guarantees around them."""

import json
import os
import subprocess
import sys
import time

import click
import pytest
from click.testing import CliRunner

from funreason_refine import Stage, Verdict, hookimpl
from funreason_refine.errors import ConfigError, PluginError
from funreason_refine.plugin_manager import get_plugin_manager, stage_registry
from funreason_refine.stages.cot import Cot
from funreason_refine.testing import run_rows
from tests.conftest import REPO, xlam_row


class Nap(Stage):
    name = "nap"
    timeout = 0.3

    def check(self, record):
        try:
            time.sleep(30)
        except Exception:  # a plugin that swallows everything cannot swallow the timeout
            pass
        return Verdict.passed()


def test_hook_register_stages(plugin):
    class Plugin:
        @hookimpl
        def register_stages(self, register):
            register(Nap)

    plugin(Plugin(), "napper")
    assert stage_registry()["nap"].plugin == "napper"


def test_hook_register_commands(plugin):
    @click.command("hello")
    def hello():
        click.echo("hello from a plugin")

    class Plugin:
        @hookimpl
        def register_commands(self, cli):
            cli.add_command(hello)

    plugin(Plugin(), "greeter")
    group = click.Group()
    get_plugin_manager().hook.register_commands(cli=group)
    assert CliRunner().invoke(group, ["hello"]).output == "hello from a plugin\n"


def test_hook_record_finished(plugin, tmp_path):
    seen = []

    class Plugin:
        @hookimpl
        def record_finished(self, kind, record):  # a subset of the arguments is fine
            seen.append((kind, record["index"], record.get("reason")))

    plugin(Plugin(), "observer")
    run_rows([xlam_row("a"), xlam_row("b", answers=[{"name": "nope", "arguments": {}}])], tmp_path)
    assert seen == [("kept", 0, None), ("discarded", 1, "unknown_function")]


def test_hook_run_finished(plugin, tmp_path):
    exported = {}

    class Exporter:
        @hookimpl
        def run_finished(self, run_dir, summary):
            lines = (run_dir / "kept.jsonl").read_text().splitlines()
            (run_dir / "export.txt").write_text("\n".join(json.loads(line)["target"] for line in lines))
            exported["kept"] = summary["outcomes"]["kept"]

    plugin(Exporter(), "exporter")
    run_rows([xlam_row("a")], tmp_path)
    assert exported == {"kept": 1}
    assert (tmp_path / "run" / "export.txt").read_text() == '[get_weather(city="Paris")]'


def test_a_raising_lifecycle_hook_stops_the_run_naming_the_plugin_and_the_folder_resumes(plugin, tmp_path):
    class Broken:
        @hookimpl
        def record_finished(self, record):
            if record["index"] == 2:
                raise ValueError("disk quota")

    plugin(Broken(), "broken_observer")
    rows = [xlam_row(str(i)) for i in range(5)]
    with pytest.raises(PluginError, match="record_finished hook of plugin\\(s\\) broken_observer raised ValueError"):
        run_rows(rows, tmp_path)
    get_plugin_manager().unregister(name="broken_observer")
    from funreason_refine.config import load_pipeline
    from funreason_refine.engine import run_pipeline

    result = run_pipeline(load_pipeline(tmp_path / "pipeline.toml"))
    assert result.resumed == 2 and result.summary.as_dict()["outcomes"]["kept"] == 5


def test_a_record_a_record_finished_hook_failed_on_is_told_again_on_resume_and_only_the_raiser_is_named(
    plugin, tmp_path
):
    # Its line was written before the hook: the resumed run never told the plugin about it again, and the
    # message named every plugin that implements the hook.
    got, failing = [], {"on": "b"}

    class Exporter:
        @hookimpl
        def record_finished(self, record):
            if record["id"] == failing["on"]:
                raise ConnectionError("upload failed")
            got.append(record["id"])

    class Logger:
        @hookimpl
        def record_finished(self, record):
            pass

    plugin(Exporter(), "exporter")
    plugin(Logger(), "innocent_logger")
    rows = [xlam_row(rid) for rid in "abc"]
    with pytest.raises(PluginError) as stopped:
        run_rows(rows, tmp_path)
    assert "record_finished hook of plugin(s) exporter raised ConnectionError: upload failed" in str(stopped.value)
    failing["on"] = None  # the upload works again
    from funreason_refine.config import load_pipeline
    from funreason_refine.engine import run_pipeline

    run_pipeline(load_pipeline(tmp_path / "pipeline.toml"))
    assert got == ["a", "b", "c"]
    assert [json.loads(line)["id"] for line in (tmp_path / "run" / "kept.jsonl").read_text().splitlines()] == list(
        "abc"
    )


def test_a_hanging_check_fails_only_its_record_naming_the_plugin(plugin, tmp_path):
    class Plugin:
        @hookimpl
        def register_stages(self, register):
            register(Nap)

    plugin(Plugin(), "sleepy_plugin")
    start = time.perf_counter()
    out = run_rows([xlam_row("a"), xlam_row("b")], tmp_path, '[[stages]]\nname = "nap"\n')
    assert time.perf_counter() - start < 5
    assert [e["error"] for e in out["errors"]] == [
        "stage nap (plugin sleepy_plugin) did not answer within 0.3 s ([[stages]] timeout)"
    ] * 2


def test_replacing_a_builtin_stage_needs_replace_true(plugin):
    class MyCot(Cot):
        """A stricter CoT check."""

    class Accidental:
        @hookimpl
        def register_stages(self, register):
            register(MyCot)

    class OnPurpose:
        @hookimpl
        def register_stages(self, register):
            register(MyCot, replace=True)

    plugin(Accidental(), "accidental")
    with pytest.raises(
        PluginError, match="'cot' is registered twice: by funreason_refine.stages.builtin and by accidental"
    ):
        stage_registry()
    get_plugin_manager().unregister(name="accidental")
    plugin(OnPurpose(), "stricter")
    entry = stage_registry()["cot"]
    assert (entry.cls, entry.plugin, entry.replaced) == (MyCot, "stricter", "funreason_refine.stages.builtin")


def test_judge_only_stages_from_a_spec_folder_or_inline(tmp_path):
    from funreason_refine.config import load_pipeline

    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "tone.toml").write_text(
        'name = "tone"\ndescription = "Is the query polite?"\nprompt = "Polite? {query}"\n'
    )
    (tmp_path / "in.jsonl").write_text(json.dumps(xlam_row()) + "\n")
    base = '[input]\npath = "in.jsonl"\n[output]\ndir = "run"\n'
    (tmp_path / "p.toml").write_text(
        'stage_specs_dir = "specs"\n' + base + '[judge]\nmodel = "openai/x"\n'
        '[[stages]]\nname = "tone"\n[[stages]]\nname = "brevity"\n'
        'spec = {description = "Short?", prompt = "Short? {answer}", on_fail = "discard"}\n'
    )
    pipeline = load_pipeline(tmp_path / "p.toml")
    assert [s.plugin for s in pipeline.stages] == ["stage spec", "stage spec"]
    assert [s.judge.template for s in pipeline.stages] == ["Polite? {query}", "Short? {answer}"]
    (tmp_path / "p.toml").write_text('stage_specs_dir = "specs"\n' + base + '[[stages]]\nname = "tone"\n')
    with pytest.raises(ConfigError, match="judge-only stage .* needs a judge"):
        load_pipeline(tmp_path / "p.toml")
    (tmp_path / "p.toml").write_text(
        base + '[judge]\nmodel = "openai/x"\n[[stages]]\nname = "x"\nspec = {prompt = "{nope}"}\n'
    )
    with pytest.raises(ConfigError) as info:
        load_pipeline(tmp_path / "p.toml")
    assert len(info.value.problems) == 1 and "{nope}" in info.value.problems[0]
    (tmp_path / "p.toml").write_text(
        base + '[judge]\nmodel = "openai/x"\n[[stages]]\nname = "x"\nspec = {prompt = "Fine? {query}"}\n'
    )
    with pytest.raises(ConfigError, match="stage spec 'x' key 'description': Field required"):
        load_pipeline(tmp_path / "p.toml")


def test_a_spec_folder_gives_a_code_stage_a_new_prompt(tmp_path):
    from funreason_refine.config import load_pipeline

    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "cot.toml").write_text('name = "cot"\ndescription = "Mine"\nprompt = "My CoT prompt {cot}"\n')
    (tmp_path / "in.jsonl").write_text(json.dumps(xlam_row()) + "\n")
    (tmp_path / "p.toml").write_text(
        'stage_specs_dir = "specs"\n[input]\npath = "in.jsonl"\n[output]\ndir = "r"\n[judge]\nmodel = "openai/x"\n'
    )
    pipeline = load_pipeline(tmp_path / "p.toml")
    cot = next(s for s in pipeline.stages if s.name == "cot")
    assert cot.judge.template == "My CoT prompt {cot}"
    assert next(s for s in pipeline.stages if s.name == "cot").plugin == "funreason_refine.stages.builtin"


def _refine(*args, env_extra=None):
    env = {k: v for k, v in os.environ.items() if k != "FUNREASON_REFINE_NO_PLUGINS"}
    env.update({"COLUMNS": "200", **(env_extra or {})})
    code = "import sys; from funreason_refine.cli import main; sys.argv = ['refine', *sys.argv[1:]]; main()"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env)


def test_an_installed_plugin_package_is_found_through_its_entry_point(tmp_path):
    pytest.importorskip("values_in_query", reason="the README's test command installs examples/custom_stage_plugin")
    stages = _refine("stages")
    assert "values_in_query" in stages.stdout
    plugins = _refine("plugins")
    assert "funreason-values-in-query" in plugins.stdout and "0.1.0" in plugins.stdout
    run = _refine("run", str(REPO / "examples/custom_stage_plugin/pipeline.toml"), "--out", str(tmp_path / "run"))
    assert run.returncode == 0, run.stderr
    discarded = [json.loads(line) for line in (tmp_path / "run" / "discarded.jsonl").read_text().splitlines()]
    assert {d["id"] for d in discarded if d["reason"] == "value_not_in_query"} == {
        "ok-quotes",
        "coerced-bool-and-list",
        "round-trip-mismatch",
    }
    off = _refine("stages", env_extra={"FUNREASON_REFINE_NO_PLUGINS": "1"})
    assert "values_in_query" not in off.stdout


def test_tracing_prints_every_hook_call():
    traced = _refine("stages", env_extra={"FUNREASON_REFINE_TRACE": "1", "FUNREASON_REFINE_NO_PLUGINS": "1"})
    assert "register_stages" in traced.stderr and "register_commands" in traced.stderr


class Sloppy(Stage):
    """Each record a different malformed verdict: as plugin authors write them by mistake."""

    name = "sloppy"
    on_fail = "regenerate"

    def check(self, record):
        dicts = [{"name": c.name, "arguments": c.arguments} for c in record.calls]
        kind = record.id
        if kind == "dicts" and not record.trail[-1:]:  # calls as dicts, repaired once: read as FunctionCalls
            return Verdict.regenerate(record.model_copy(update={"answer": dicts}), "as_dicts", "calls as dicts")
        if kind == "bad_call":
            return Verdict.passed(record=record.model_copy(update={"answer": [{"nme": "get_weather"}]}))
        if kind == "no_message":
            return Verdict.discard("r", None)
        if kind == "number_reason":
            return Verdict.discard(5, "m")
        return Verdict.passed()


def test_malformed_verdicts_fail_only_their_records_naming_the_stage_and_the_run_finishes(plugin, tmp_path):
    class Plugin:
        @hookimpl
        def register_stages(self, register):
            register(Sloppy)

    plugin(Plugin(), "sloppy_plugin")
    ids = ["dicts", "bad_call", "no_message", "number_reason", "fine"]
    out = run_rows([xlam_row(i) for i in ids], tmp_path, '[[stages]]\nname = "sloppy"\n[[stages]]\nname = "format"\n')
    assert [r["id"] for r in out["kept"]] == ["dicts", "fine"]
    assert out["kept"][0]["answer"] == [{"name": "get_weather", "arguments": {"city": "Paris"}}]
    errors = {e["id"]: e["error"] for e in out["errors"]}
    assert set(errors) == {"bad_call", "no_message", "number_reason"}
    assert all(e.startswith("stage sloppy (plugin sloppy_plugin) ") for e in errors.values())
    assert "answer.list[FunctionCall].0.nme: Extra inputs are not permitted" in errors["bad_call"]
    assert "message must be a text (str), got NoneType" in errors["no_message"]
    assert "reason must be a short snake_case text" in errors["number_reason"]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["outcomes"]["errors"] == 3 and summary["stages"]["sloppy"]["records_errored"] == {"failed": 3}
