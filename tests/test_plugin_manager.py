import pluggy
import pytest
from pydantic import BaseModel, ConfigDict

from funreason_refine import Stage, StageConfig, Verdict, hookimpl
from funreason_refine.errors import PluginError
from funreason_refine.plugin_manager import get_plugin_manager, plugin_rows, stage_registry
from funreason_refine.specs import builtin_specs
from tests.conftest import write_jsonl, write_pipeline, xlam_row


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
    rows = {r["name"]: r for r in plugin_rows()}
    assert rows["echo_plugin"]["hooks"] == ["register_stages"]
    assert rows["echo_plugin"]["package"] == f"none: registered in code (module {__name__})", "not built in"
    assert rows["echo_plugin"]["version"] == "-"


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


def _install(folder, package, module, code):
    """A package as pip installs it, in ``folder``: its module, and metadata naming an entry point to it."""
    (folder / f"{module}.py").write_text(code)
    info = folder / f"{package.replace('-', '_')}-0.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {package}\nVersion: 0.3\n")
    (info / "entry_points.txt").write_text(f"[funreason_refine]\n{module.removesuffix('_mod')} = {module}\n")


@pytest.fixture
def installed(monkeypatch, tmp_path):
    """Install packages (``installed(package, module, code)``) whose plugins a fresh plugin manager loads."""
    import sys

    from funreason_refine import plugin_manager

    monkeypatch.setattr(plugin_manager, "_pm", None)
    monkeypatch.setattr(plugin_manager, "_installed", {}, raising=False)
    monkeypatch.setattr(sys, "_called_from_test", False)
    monkeypatch.delenv("FUNREASON_REFINE_NO_PLUGINS", raising=False)
    monkeypatch.syspath_prepend(str(tmp_path))
    return lambda package, module, code: _install(tmp_path, package, module, code)


def _cli(*args):
    from click.testing import CliRunner

    from funreason_refine.cli import main

    return CliRunner().invoke(main, list(args))


def test_an_installed_plugin_that_fails_to_import_is_named_with_its_package_and_what_to_do(installed, monkeypatch):
    installed("broken-stages", "broken_stages_mod", "import numpyy\n")
    for command in ("stages", "plugins"):  # `refine plugins` cannot list it either: the message says what can
        result = _cli(command)
        assert result.exit_code == 1 and "Traceback" not in result.output
        said = " ".join(result.output.split())
        assert (
            "the installed plugin 'broken_stages' failed to load: ModuleNotFoundError: No module named 'numpyy'" in said
        )
        assert "(entry point `broken_stages = broken_stages_mod` of package broken-stages" in said
        assert "`pip uninstall broken-stages`" in said and "FUNREASON_REFINE_NO_PLUGINS=1" in said
    from funreason_refine import plugin_manager

    monkeypatch.setattr(plugin_manager, "_pm", None)
    monkeypatch.setenv("FUNREASON_REFINE_NO_PLUGINS", "1")
    assert _cli("stages").exit_code == 0  # what the message offers works


def test_an_installed_plugin_is_listed_with_its_package_and_version(installed):
    code = "from funreason_refine import hookimpl\n\n@hookimpl\ndef record_finished(record):\n    pass\n"
    installed("good-observer", "good_observer_mod", code)
    rows = {r["name"]: r for r in plugin_rows()}
    assert rows["good_observer"] == {
        "name": "good_observer",
        "package": "good-observer",
        "version": "0.3",
        "hooks": ["record_finished"],
    }
    assert rows["funreason_refine.stages.builtin"]["package"] == "funreason-refine (built-in)"


def test_a_raising_register_stages_hook_is_a_one_line_error_naming_the_plugin(plugin, tmp_path):
    class Exploding:
        @hookimpl
        def register_stages(self, register):
            raise RuntimeError("no config file")

    plugin(Exploding(), "exploding_plugin")
    with pytest.raises(PluginError, match="register_stages hook of plugin exploding_plugin raised RuntimeError: no"):
        stage_registry()
    write_jsonl(tmp_path / "in.jsonl", [xlam_row()])
    for args in (["stages"], ["validate", str(write_pipeline(tmp_path))]):
        result = _cli(*args)
        assert result.exit_code != 0 and "Traceback" not in result.output
        assert "the register_stages hook of plugin exploding_plugin raised RuntimeError" in result.output, args


class PlainConfig(Stage):
    name = "plain_config"

    class Config(BaseModel):
        limit: int = 3

    def check(self, record):
        return Verdict.passed()


class LooseConfig(Stage):
    name = "loose_config"

    class Config(StageConfig):
        model_config = ConfigDict(extra="allow")

    def check(self, record):
        return Verdict.passed()


@pytest.mark.parametrize(
    "stage, words",
    [
        (PlainConfig, "stage 'plain_config' (PlainConfig) has a Config that is not a StageConfig subclass"),
        (LooseConfig, "stage 'loose_config' (LooseConfig) has a Config with extra='allow'"),
    ],
)
def test_a_stage_whose_config_would_accept_unknown_keys_is_refused(plugin, stage, words):
    class Loose:
        @hookimpl
        def register_stages(self, register):
            register(stage)

    plugin(Loose(), "loose_plugin")
    with pytest.raises(PluginError) as info:
        stage_registry()
    assert str(info.value).startswith(f"plugin loose_plugin: {words}")
    assert "unknown keys in its [[stages]] table are errors" in str(info.value)


def _entry_point(folder, package, name, module):
    info = folder / f"{package.replace('-', '_')}-0.3.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {package}\nVersion: 0.3\n")
    (info / "entry_points.txt").write_text(f"[funreason_refine]\n{name} = {module}\n")


STAGE_MODULE = """from funreason_refine import Stage, Verdict, hookimpl


class MaxCalls(Stage):
    name = "{stage}"

    def check(self, record):
        return Verdict.passed()


@hookimpl
def register_stages(register):
    register(MaxCalls)
"""


def test_two_packages_whose_entry_points_share_a_name_are_refused_naming_both(installed, tmp_path):
    # One of the two was never loaded, without a word: which depended on the install order, and a run used
    # the other package's stage of the same name.
    (tmp_path / "alpha_mod.py").write_text(STAGE_MODULE.format(stage="alpha_calls"))
    (tmp_path / "beta_mod.py").write_text(STAGE_MODULE.format(stage="beta_calls"))
    _entry_point(tmp_path, "alpha-stages", "stages", "alpha_mod")
    _entry_point(tmp_path, "beta-stages", "stages", "beta_mod")
    result = _cli("stages")
    said = " ".join(result.output.split())
    assert result.exit_code == 1 and "two plugins are named 'stages'" in said, said
    assert "alpha-stages" in said and "beta-stages" in said and "another entry point name" in said


def test_a_package_found_twice_on_the_path_is_loaded_once(installed, tmp_path):
    (tmp_path / "alpha_mod.py").write_text(STAGE_MODULE.format(stage="alpha_calls"))
    _entry_point(tmp_path, "alpha-stages", "stages", "alpha_mod")
    _entry_point(tmp_path / "again", "alpha-stages", "stages", "alpha_mod")
    import sys

    sys.path.append(str(tmp_path / "again"))
    try:
        result = _cli("stages")
    finally:
        sys.path.remove(str(tmp_path / "again"))
    assert result.exit_code == 0 and "alpha_calls" in result.output, result.output


def test_an_installed_plugin_with_a_misspelt_hook_is_named_with_its_package_and_what_to_do(installed):
    code = "from funreason_refine import hookimpl\n\n@hookimpl\ndef register_stage(register):\n    pass\n"
    installed("gamma-stages", "gamma_stages_mod", code)
    result = _cli("stages")
    said = " ".join(result.output.split())
    assert result.exit_code == 1 and "plugin gamma_stages (package gamma-stages) implements a hook" in said, said
    assert (
        "register_stage" in said and "`pip uninstall gamma-stages`" in said and "FUNREASON_REFINE_NO_PLUGINS=1" in said
    )
