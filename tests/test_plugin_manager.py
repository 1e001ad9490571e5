import pluggy
import pytest

from funreason_refine import Stage, Verdict, hookimpl
from funreason_refine.errors import PluginError
from funreason_refine.plugin_manager import get_plugin_manager, plugin_rows, stage_registry
from funreason_refine.specs import builtin_specs


class Echo(Stage):
    """Passes everything (a test plugin's stage)."""

    name = "echo"

    def check(self, record):
        return Verdict.passed()


class EchoPlugin:
    __name__ = "echo_plugin"

    @hookimpl
    def register_stages(self, register):
        register(Echo)


def test_builtin_stages_come_from_the_builtin_plugin_through_the_same_hook():
    registry = stage_registry()
    paper = ["classification", "query_tool", "cot", "function_params", "format"]
    assert list(registry) == registry.default_pipeline() == ["conversation", *paper]
    assert sorted(builtin_specs()) == sorted(paper)  # each has the judge's side in stage_specs/
    assert {e.plugin for e in registry.stages()} == {"funreason_refine.stages.builtin"}


def test_builtin_specs_hold_only_the_judges_side_of_code_stages():
    # A pipeline that names no model does without them (config._Loader._specs): that is the same pipeline
    # only while no built-in spec makes a judge-only stage or overrides a stage's on_fail or max_attempts.
    registry = stage_registry()
    for name, spec in builtin_specs().items():
        assert registry.get(name) is not None, name
        assert (spec.on_fail, spec.max_attempts, spec.description) == (None, None, None), name


def test_a_plugin_stage_is_registered_with_its_plugin_name(plugin):
    plugin(EchoPlugin(), "echo_plugin")
    entry = stage_registry()["echo"]
    assert (entry.cls, entry.plugin) == (Echo, "echo_plugin")
    assert Echo.summary() == "Passes everything (a test plugin's stage)."
    assert any(r["name"] == "echo_plugin" and r["hooks"] == ["register_stages"] for r in plugin_rows())


def test_a_duplicate_stage_name_names_both_plugins(plugin):
    plugin(EchoPlugin(), "first_plugin")
    plugin(EchoPlugin(), "second_plugin")
    with pytest.raises(PluginError, match="'echo' is registered twice: by first_plugin and by second_plugin"):
        stage_registry()


def test_registering_something_that_is_not_a_stage_names_the_plugin(plugin):
    class Bad:
        @hookimpl
        def register_stages(self, register):
            register(dict)

    plugin(Bad(), "bad_plugin")
    with pytest.raises(PluginError, match="bad_plugin registered"):
        stage_registry()


def test_a_misspelled_hook_fails_loudly():
    class Typo:
        @hookimpl
        def register_stage(self, register):
            pass

    pm = get_plugin_manager()
    pm.register(Typo(), name="typo")
    try:
        with pytest.raises(pluggy.PluginValidationError):
            pm.check_pending()
    finally:
        pm.unregister(name="typo")


def test_an_installed_plugin_that_fails_to_import_is_a_one_line_error(monkeypatch):
    import sys

    from click.testing import CliRunner

    from funreason_refine import plugin_manager
    from funreason_refine.cli import main

    def broken(self, group, name=None):
        raise ModuleNotFoundError("No module named 'numpyy'")

    monkeypatch.setattr(plugin_manager, "_pm", None)
    monkeypatch.setattr(sys, "_called_from_test", False)
    monkeypatch.delenv("FUNREASON_REFINE_NO_PLUGINS", raising=False)
    monkeypatch.setattr(pluggy.PluginManager, "load_setuptools_entrypoints", broken)
    result = CliRunner().invoke(main, ["stages"])
    assert result.exit_code == 1
    assert "an installed plugin failed to load: ModuleNotFoundError: No module named 'numpyy'" in result.output
    assert "FUNREASON_REFINE_NO_PLUGINS=1" in result.output and "Traceback" not in result.output
