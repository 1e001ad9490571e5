"""docs/plugins.md stays true: every hook with its exact signature, and a test for every hook."""

import inspect
import re

from funreason_refine import hookspecs
from tests import test_hooks
from tests.conftest import REPO

DOCS = (REPO / "docs" / "plugins.md").read_text(encoding="utf-8")
HOOKS = {
    name: f for name, f in inspect.getmembers(hookspecs, inspect.isfunction) if hasattr(f, "funreason_refine_spec")
}


def test_every_hook_is_documented_with_its_exact_signature():
    assert HOOKS
    for name, func in HOOKS.items():
        signature = f"def {name}{str(inspect.signature(func)).replace(chr(39), '')}"
        assert f"### {name}\n\n```python\n{signature}\n```" in DOCS, signature


def test_the_docs_document_no_hook_that_does_not_exist():
    assert set(re.findall(r"^### ([a-z_]+)$", DOCS, re.M)) - {"The stage contract", "Testing a stage"} <= set(HOOKS)


def test_every_hook_has_a_test():
    for name in HOOKS:
        assert hasattr(test_hooks, f"test_hook_{name}"), name


def test_the_worked_example_runs(tmp_path):
    from funreason_refine.plugin_manager import get_plugin_manager
    from funreason_refine.testing import check, make_record

    code = re.search(r"`my_stages/__init__.py`:\n\n```python\n(.*?)```", DOCS, re.S).group(1)
    namespace: dict = {}
    exec(compile(code, "docs/plugins.md", "exec"), namespace)
    record = make_record(answers=[{"name": "get_weather", "arguments": {"city": c}} for c in ("Paris", "Rome", "Oslo")])
    assert check(namespace["MaxCalls"], record, limit=2).reason == "too_many_calls"
    plugin = type("DocPlugin", (), {"register_stages": staticmethod(namespace["register_stages"])})
    pm = get_plugin_manager()
    pm.register(plugin, name="doc_plugin")
    try:
        from funreason_refine.testing import run_rows
        from tests.conftest import xlam_row

        rows = [xlam_row("a", answers=[{"name": "get_weather", "arguments": {"city": c}} for c in ("A", "B", "C")])]
        out = run_rows(rows, tmp_path, '[[stages]]\nname = "max_calls"\nlimit = 2\n')
        assert out["discarded"][0]["reason"] == "too_many_calls"
    finally:
        pm.unregister(name="doc_plugin")


def test_the_conversation_example_runs(tmp_path):
    from funreason_refine.config import load_pipeline
    from funreason_refine.engine import run_pipeline
    from funreason_refine.testing import registered
    from tests.conftest import read_jsonl, write_jsonl
    from tests.test_conversations import turns

    code = re.search(r"`conversation_stages/__init__.py`:\n\n```python\n(.*?)```", DOCS, re.S).group(1)
    namespace: dict = {}
    exec(compile(code, "docs/plugins.md", "exec"), namespace)
    plugin = type("DocConversationPlugin", (), {"register_stages": staticmethod(namespace["register_stages"])})
    repeated = turns(5)
    repeated["messages"][-1]["tool_calls"][0]["function"]["arguments"] = '{"city": "Oslo", "days": 3}'  # turn 2's call
    write_jsonl(tmp_path / "in.jsonl", [turns(5), repeated])
    stages = '[[stages]]\nname = "no_repeated_call"\non_fail = "truncate"\n'
    (tmp_path / "p.toml").write_text(f'[input]\npath = "in.jsonl"\nformat = "openai"\n{stages}')
    with registered(plugin, "doc_conversation_plugin"):
        run_pipeline(load_pipeline(tmp_path / "p.toml"))
    first, cut = read_jsonl(tmp_path / "runs" / "p" / "kept.jsonl")
    assert first["turn"] == 4 and cut["turn"] == 3
    assert cut["trail"][-1]["reason"] == "repeated_call" and cut["trail"][-1]["turn"] == 4


def test_the_repair_example_runs_and_is_applied_only_with_on_fail_regenerate():
    from funreason_refine.refine import refine_record
    from funreason_refine.stages.base import PipelineStage
    from funreason_refine.testing import make_record

    code = re.search(r"```python\n(  from funreason_refine import FunctionCall.*?)  ```", DOCS, re.S).group(1)
    namespace: dict = {}
    exec(compile(inspect.cleandoc("\n" + code), "docs/plugins.md", "exec"), namespace)
    units = namespace["MetricUnits"]
    ways = {
        on_fail: refine_record(make_record(), [PipelineStage(units(), "docs", on_fail, 3)])
        for on_fail in (units.on_fail, "discard")
    }
    assert ways["regenerate"].outcome == "kept"
    assert ways["regenerate"].record.calls[0].arguments == {"city": "Paris", "units": "metric"}
    assert (ways["discard"].outcome, ways["discard"].reason) == ("discarded", "missing_units")
    said = " ".join(re.search(r"ends with `\((a repair.*?)\)`", DOCS, re.S).group(1).split())
    assert ways["discard"].message == f"units added ({said})"  # as the docs say


def test_the_docs_register_stages_in_tests_as_the_fixture_allows_when_the_package_is_installed(plugin, register_stage):
    from funreason_refine import Stage, Verdict, hookimpl
    from funreason_refine.plugin_manager import stage_registry

    calls = re.findall(r"register_stage\((.*?)\)", DOCS)
    assert calls and all(c.endswith("replace=True") for c in calls), calls

    class MaxCalls(Stage):
        name = "max_calls"

        def check(self, record):
            return Verdict.passed()

    class Installed:  # what the package's entry point registers in a plugin author's environment
        @hookimpl
        def register_stages(self, register):
            register(MaxCalls)

    plugin(Installed(), "my_stages")
    register_stage(MaxCalls, replace=True)
    entry = stage_registry()["max_calls"]
    assert entry.replaced == "my_stages" and entry.plugin.startswith("test-stage-MaxCalls")


def test_the_fixture_example_asks_the_judge_and_keeps_the_record(register_stage, fake_judge, record_factory, tmp_path):
    from funreason_refine.testing import run_rows
    from tests.conftest import xlam_row

    code = re.search(r"```python\n(def test_my_stage_before_a_judge.*?)```", DOCS, re.S).group(1)
    namespace: dict = {}
    exec(compile(code.replace("[...xlam rows...]", "ROWS"), "docs/plugins.md", "exec"), namespace)
    worked = re.search(r"`my_stages/__init__.py`:\n\n```python\n(.*?)```", DOCS, re.S).group(1)
    exec(compile(worked, "docs/plugins.md", "exec"), namespace)
    namespace.update(run_rows=run_rows, ROWS=[xlam_row("a")])
    namespace["test_my_stage_before_a_judge"](register_stage, fake_judge, record_factory, tmp_path)
