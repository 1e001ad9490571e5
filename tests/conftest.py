import atexit
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import settings

from funreason_refine import hookimpl
from tests.hub.fake_hub import FakeHub

# No property test is timed: on two busy cores Hypothesis's 200 ms deadline failed examples that are correct
# (speed is measured in bench/, not in tests).
settings.register_profile("untimed", deadline=None)
settings.load_profile("untimed")

# Installed third-party plugins must never change what the project's own tests see,
# here or in the worker processes a run may spawn (they inherit the environment).
sys._called_from_test = True  # type: ignore[attr-defined]
os.environ["FUNREASON_REFINE_NO_PLUGINS"] = "1"

REPO = Path(__file__).resolve().parent.parent
QUICKSTART = REPO / "examples" / "quickstart"

# No test reaches the Hugging Face Hub. huggingface_hub reads HF_ENDPOINT once, when it is imported (and
# sends a request there as it builds its first headers), so it is set here, before any test imports it, to
# a local stand-in of the Hub's API that the Hub tests use (tests/hub/). HF_HOME is a fresh folder, so that
# no saved token or cache of the person running the tests is used, and no token comes from the environment.
FAKE_HUB = FakeHub().start()
os.environ["HF_ENDPOINT"] = FAKE_HUB.url
os.environ["HF_HOME"] = tempfile.mkdtemp(prefix="funreason-hf-home-")
atexit.register(shutil.rmtree, os.environ["HF_HOME"], True)
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
for _name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
    os.environ.pop(_name, None)


FIRST = ("tests/test_style.py", "plugins/funreason_msl/tests/test_msl_trainer.py", "tests/test_durability.py")
"""The files of the suite's longest tests, which run first: mypy over the package (one to two and a half minutes on
a fresh checkout, which has no mypy cache), training tiny models, `refine run` killed at several points. pytest-xdist
hands tests out in the order they were collected, and these came last or nearly: one worker went on with them for
minutes after the other had run out of tests."""


def pytest_collection_modifyitems(items):
    items.sort(key=lambda item: FIRST.index(path) if (path := item.nodeid.split("::")[0]) in FIRST else len(FIRST))


def refine(*args, code=0) -> str:
    """`refine ARGS` as the CLI runs it; its output, once its exit status is ``code``."""
    from click.testing import CliRunner

    from funreason_refine.cli import main

    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == code, result.output
    return result.output


def write_jsonl(path: Path, rows) -> Path:
    lines = [r if isinstance(r, (bytes, str)) else json.dumps(r) for r in rows]
    path.write_bytes(b"".join((line.encode() if isinstance(line, str) else line) + b"\n" for line in lines))
    return path


def xlam_row(rid="r", query="What's the weather in Paris?", tools=None, answers=None, cot=None):
    tools = tools or [
        {
            "name": "get_weather",
            "description": "Weather.",
            "parameters": {"city": {"type": "str", "description": "City"}},
        }
    ]
    answers = [{"name": "get_weather", "arguments": {"city": "Paris"}}] if answers is None else answers
    row = {"id": rid, "query": query, "tools": json.dumps(tools), "answers": json.dumps(answers)}
    if cot is not None:
        row["cot"] = cot
    return row


def write_pipeline(folder: Path, input_name: str = "in.jsonl", stages: str = "", extra: str = "") -> Path:
    path = folder / "pipeline.toml"
    path.write_text(f'[input]\npath = "{input_name}"\n{extra}\n[output]\ndir = "run"\n{stages}', encoding="utf-8")
    return path


def read_jsonl(path: Path):
    # Split on "\n" only: str.splitlines() also splits on U+0085 and U+2028, which JSON holds raw.
    return [json.loads(line) for line in path.read_text(encoding="utf-8").split("\n") if line]


@pytest.fixture(autouse=True)
def quick_backoff(monkeypatch):
    """A failed judge call is retried after a backoff of 0.5 to 1 s, doubled each time (BACKOFF_BASE, judge/calls.py).
    No test measures it, and the tests of failing servers waited it out: about 18 s in all. Here it is a tenth of
    that, in this process (a child process backs off as any run does); a server's Retry-After is waited as it says."""
    monkeypatch.setattr("funreason_refine.judge.calls.BACKOFF_BASE", 0.1)


@pytest.fixture
def tmp_pipeline(tmp_path):
    """Write rows and a pipeline over them; returns (pipeline path, run folder)."""

    def make(rows, stages: str = "", extra: str = ""):
        write_jsonl(tmp_path / "in.jsonl", rows)
        return write_pipeline(tmp_path, stages=stages, extra=extra), tmp_path / "run"

    return make


@pytest.fixture
def plugin():
    """Register throwaway plugins for one test; always unregistered afterwards."""
    from contextlib import ExitStack

    from funreason_refine.testing import registered

    with ExitStack() as stack:
        yield lambda obj, name: stack.enter_context(registered(obj, name))


@pytest.fixture
def flaky_stage(plugin):
    """A stage named "flaky" that raises (an error, not a verdict) for the record ids in the set it returns."""
    from funreason_refine import Stage, Verdict, hookimpl

    failing: set[str] = set()

    class Flaky(Stage):
        name = "flaky"

        def check(self, record):
            if record.id in failing:
                raise RuntimeError("the disk is full")
            return Verdict.passed()

    class Plugin:
        @hookimpl
        def register_stages(self, register):
            register(Flaky)

    plugin(Plugin(), "flaky_plugin")
    return failing


class KillAfter:
    """A plugin that stops a run (as Ctrl-C or SIGTERM would) once it has written ``after`` records (of the run
    folder named ``folder`` only, where one is given: a round of selfrefine): record_finished comes before a
    record's line is written, so it stops at the next record's."""

    def __init__(self, after: int, folder: str | None = None):
        self.after, self.folder, self.seen = after, folder, 0

    @hookimpl
    def record_finished(self, run_dir):
        if self.folder is None or run_dir.name == self.folder:
            self.seen += 1
            if self.seen == self.after + 1:
                raise KeyboardInterrupt


CHROMIUM_QUIET = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
"""Chromium's flags for the tests: no sandbox (containers), and no network of its own."""


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """Headless Chromium driven by Selenium, one per test module that asks for it (Debian's chromium and driver)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in (
        "--headless=new",
        *CHROMIUM_QUIET,
        f"--user-data-dir={tmp_path_factory.mktemp('chromium')}",
        "--window-size=1400,1000",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # The driver is given: Selenium Manager never looks for (or downloads) one.
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()
