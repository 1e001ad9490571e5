"""The README's examples run as written, and so do the pipeline examples of docs/."""

import re

import pytest

from funreason_refine.plugin_manager import get_plugin_manager, stage_registry
from funreason_refine.testing import check, make_record
from tests.conftest import FAKE_HUB, REPO

README = (REPO / "README.md").read_text(encoding="utf-8")
# docs/plugins.md's pipelines name stages of a plugin; tests/test_plugin_docs.py runs its examples.
PIPELINE_PAGES = [REPO / "README.md", *sorted(p for p in (REPO / "docs").glob("*.md") if p.name != "plugins.md")]
TOML_EXAMPLES = [
    pytest.param(example, id=f"{page.name}-{number}")
    for page in PIPELINE_PAGES
    for number, example in enumerate(re.findall(r"```toml\n(.*?)```", page.read_text(encoding="utf-8"), re.S), 1)
]


def test_the_first_two_blocks_are_the_set_up_commands_and_ci_runs_the_second():
    blocks = re.findall(r"```bash\n(.*?)\n```", README, re.S)
    assert "refine run examples/quickstart/pipeline.toml" in blocks[0]
    assert blocks[1].endswith("pytest -n 2")  # the whole suite, on two workers
    assert blocks[1] in (REPO / ".ci" / "run").read_text()


def readme_plugin():
    """The README's stage example, run as written, as a plugin module."""
    code = re.search(r"```python\n(.*?)\n```", README, re.S).group(1)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    return type("ReadmePlugin", (), {"register_stages": staticmethod(namespace["register_stages"])})


def test_the_stage_example_registers_and_judges():
    pm = get_plugin_manager()
    pm.register(readme_plugin(), name="readme_plugin")
    try:
        entry = stage_registry()["query_has_values"]
        assert entry.plugin == "readme_plugin"
        ok = make_record(query="Weather in Paris?", answers=[{"name": "get_weather", "arguments": {"city": "paris"}}])
        bad = make_record(query="Weather in Paris?", answers=[{"name": "get_weather", "arguments": {"city": "Rome"}}])
        assert check(entry.cls, ok).action == "pass"
        verdict = check(entry.cls, bad)
        assert (verdict.action, verdict.reason) == ("discard", "value_not_in_query")
        assert check(entry.cls, ok, ignore_case=False).action == "discard"
    finally:
        pm.unregister(name="readme_plugin")


def test_every_reason_code_in_the_readme_table_is_one_the_code_can_give():
    from tests.test_cli import REASONS

    table = README.split("## The stages", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"`([a-z_]+)`", table))
    for stage, reasons in REASONS.items():
        assert reasons <= documented, stage


def test_the_docs_have_pipeline_examples_to_check():
    pages = {page.name for page in PIPELINE_PAGES if "```toml" in page.read_text(encoding="utf-8")}
    assert {"README.md", "judges.md", "cost.md", "selfrefine.md", "configuration.md", "audits.md"} <= pages


@pytest.mark.parametrize("example", TOML_EXAMPLES)
def test_the_pipeline_examples_load(example, tmp_path):
    """Each TOML example of the README and docs/ is a valid pipeline once given an input and an output."""
    from funreason_refine.config import load_pipeline

    (tmp_path / "records.jsonl").write_bytes((REPO / "examples/quickstart/records.jsonl").read_bytes())
    (tmp_path / "my_prompts").mkdir()
    (tmp_path / "my_prompts" / "function_params.txt").write_text("Check {answer} for {query}")
    (tmp_path / "evals").mkdir()
    bfcl = REPO / "tests" / "data" / "bfcl" / "BFCL_v4_simple_python.json"
    (tmp_path / "evals" / bfcl.name).write_bytes(bfcl.read_bytes())
    head, tables = ("", example) if example.lstrip().startswith("[") else example.split("\n[", 1)
    tables = tables if tables.startswith("[") else "[" + tables
    extra = "" if "[input]" in example else '[input]\npath = "records.jsonl"\n[output]\ndir = "run"\n'
    for repo_id, file in re.findall(r'"hf://datasets/([^/"@]+/[^/"@]+)(?:@[^/"]*)?/([^"]+)"', example):
        # a dataset on the Hub: this one, on the tests' local stand-in of the Hub (tests/hub/fake_hub.py)
        FAKE_HUB.dataset(repo_id, {file: (REPO / "examples/quickstart/records.jsonl").read_bytes()})
    (tmp_path / "p.toml").write_text(head + "\n" + extra + tables)
    assert load_pipeline(tmp_path / "p.toml").stages


def _anchors(page):
    """The anchors GitHub gives a page's headings: lower case, punctuation dropped, spaces as hyphens."""
    headings = re.findall(r"^#+ (.+)$", page.read_text(encoding="utf-8"), re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


# Pages other branches are writing, linked from here already.
ANNOUNCED = {"reading.md"}


@pytest.mark.parametrize("page", [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))], ids=lambda p: p.name)
def test_every_link_between_the_pages_leads_somewhere(page):
    for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text(encoding="utf-8")):
        if target.startswith(("http://", "https://")):
            continue
        name, _, anchor = target.partition("#")
        dest = (page.parent / name).resolve() if name else page
        if dest.name in ANNOUNCED and not dest.exists():
            continue
        assert dest.exists(), f"{page.name}: {target} is not a file"
        if anchor and dest.suffix == ".md":
            assert anchor in _anchors(dest), f"{page.name}: {target}: no such heading"


def test_the_stage_example_registers_beside_the_example_package_the_test_command_installs():
    # Both were named values_in_query: following the README with the example installed was refused.
    example = pytest.importorskip("values_in_query", reason="the README's test command installs it")
    pm = get_plugin_manager()
    pm.register(readme_plugin(), name="readme_plugin")
    pm.register(example, name="values_in_query")
    try:
        registry = stage_registry()
        assert registry["query_has_values"].plugin == "readme_plugin"
        assert registry["values_in_query"].plugin == "values_in_query"
    finally:
        pm.unregister(name="readme_plugin")
        pm.unregister(name="values_in_query")
