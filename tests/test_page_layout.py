"""Long text without a space (a judge's reason, a URL, compact JSON) wraps on every page: none of them
scrolls sideways in headless Chromium."""

import shutil

import pytest
from click.testing import CliRunner

from funreason_refine.cli import main
from funreason_refine.review.server import ReviewServer
from funreason_refine.testing import run_rows
from funreason_refine.testing.fake_llm import FakeLLM
from tests.conftest import write_jsonl, xlam_row
from tests.review.test_browser import listed, open_page, show, wait
from tests.test_pages import RULES_ONLY, UNKNOWN

pytestmark = pytest.mark.skipif(
    not (shutil.which("chromium") and shutil.which("chromedriver")),
    reason="needs Debian's chromium and chromium-driver (CI installs them)",
)
REASON = "x" * 3000
SHOWN = REASON[:500]
URL = "https://example.com/" + "a/" * 400
WIDE = "return [document.documentElement.scrollWidth, window.innerWidth]"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Run A judged (its judge's reason 3,000 characters long, of which the verdict keeps 500), run B rules
    only, both with long ids and URLs as queries, and a calibration whose disagreement has a long comment."""
    root = tmp_path_factory.mktemp("long")
    rows = [
        xlam_row("ok"),
        xlam_row("long-" + "i" * 300, query=f"Weather at {URL}?"),
        xlam_row("unknown-" + "j" * 300, query=URL, answers=UNKNOWN),
    ]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OPENAI_API_KEY", "sk-test")

        def judge(request):
            return f"<judge>False</judge><reason>{REASON}</reason>" if URL in request.prompt else "<judge>True</judge>"

        with FakeLLM(judge) as server:
            toml = f'[judge]\nmodel = "openai/fake"\napi_base = "{server.api_base}"\nmax_retries = 0\n'
            out = run_rows(rows, root / "a", stages_toml='[[stages]]\nname = "query_tool"\n' + toml)
    assert len(out["discarded"]) == 2 and SHOWN in str(out["discarded"])
    run_rows(rows, root / "b", stages_toml='[[stages]]\nname = "format"\n')
    row = xlam_row("golden-" + "k" * 300, query=URL, answers=UNKNOWN)
    write_jsonl(root / "golden.jsonl", [{**row, "label": {"outcome": "discard"}, "comment": REASON}])
    (root / "pipeline.toml").write_text(RULES_ONLY)
    for args in (
        ["report", root / "a" / "run"],
        ["compare", root / "a" / "run", root / "b" / "run", "--html", root / "compare.html"],
        ["calibrate", root / "golden.jsonl", root / "pipeline.toml", "--out", root / "cal"],
    ):
        result = CliRunner().invoke(main, [str(a) for a in args])
        assert result.exit_code == 0, result.output
    return root


@pytest.mark.parametrize("page", ["a/run/report.html", "compare.html", "cal/calibration.html"])
def test_a_page_with_long_unbroken_text_does_not_scroll_sideways(browser, runs, page):
    html = (runs / page).read_text(encoding="utf-8")
    assert any(long in html for long in (SHOWN, "i" * 300, "k" * 300)), "a long text is on the page"
    browser.get((runs / page).as_uri())
    wide, window = browser.execute_script(WIDE)
    assert wide <= window


def test_the_review_page_wraps_long_unbroken_text(browser, runs):
    from selenium.webdriver.common.by import By

    server = ReviewServer(runs / "a" / "run").start()
    trails = []
    try:
        open_page(browser, server.url)
        for index in listed(browser):
            show(browser, index)
            wait(browser, lambda d: d.find_element(By.ID, "app").get_attribute("data-loading") == "false", "shown")
            wide, window = browser.execute_script(WIDE)
            assert wide <= window, f"record {index}"
            main = browser.find_element(By.TAG_NAME, "main")
            assert main.get_property("scrollWidth") <= main.get_property("clientWidth"), f"record {index}"
            trails.append(browser.find_element(By.ID, "trail").get_property("textContent"))
    finally:
        server.stop()
    assert sum(SHOWN in trail for trail in trails) == 1, "the judged discard's reason"
