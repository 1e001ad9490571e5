"""The four pages, rendered from templates: record text stays text on each of them (no markup, no
script, no template syntax evaluated), and a template that asks for a missing value fails loudly."""

import json
import subprocess
import sys
from html.parser import HTMLParser

import jinja2
import pytest
from click.testing import CliRunner

from funreason_refine.cli import main
from funreason_refine.pages import environment, render
from funreason_refine.review.server import ReviewServer
from funreason_refine.testing import run_rows
from tests.conftest import write_jsonl, xlam_row
from tests.review.test_server import request

EVIL = "</script><script>alert(1)</script>{{ 7*7 }}"
# Asks for a function it is not given: discarded at query_tool by the rules, with its query in the examples.
UNKNOWN = [{"name": "get_time", "arguments": {}}]
RULES_ONLY = """
[input]
path = "golden-pipeline-input.jsonl"
[output]
dir = "run"
[[stages]]
name = "classification"
judge = false
[[stages]]
name = "format"
judge = false
"""


class Page(HTMLParser):
    """The elements of a page and its text as a reader sees it (entities decoded)."""

    def __init__(self, html):
        super().__init__()
        self.tags, self.text = [], []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)

    def handle_data(self, data):
        self.text.append(data)


def assert_inert(html, shown=2):
    """EVIL is on the page as text, ``shown`` times or more: never an element, never evaluated."""
    page = Page(html)
    assert "script" not in page.tags and "alert(1)</script>" not in html
    assert "".join(page.text).count(EVIL) >= shown, "the record's text is shown as it is"


def invoke(*args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result


def test_record_text_is_inert_in_the_report(tmp_path):
    out = run_rows([xlam_row("ok"), xlam_row(EVIL, query=f"{EVIL} now?", answers=UNKNOWN)], tmp_path)
    assert [r["id"] for r in out["discarded"]] == [EVIL]
    invoke("report", tmp_path / "run")
    html = (tmp_path / "run" / "report.html").read_text(encoding="utf-8")
    assert_inert(html)  # the discarded example's id and query
    assert f"(id {EVIL})" in "".join(Page(html).text)


def test_record_text_is_inert_in_the_comparison(tmp_path):
    rows = [xlam_row("ok"), xlam_row(EVIL, query=f"{EVIL} now?", answers=UNKNOWN)]
    run_rows(rows, tmp_path / "a")
    run_rows(rows, tmp_path / "b", stages_toml='[[stages]]\nname = "format"\n')  # keeps the record A discards
    html = tmp_path / "compare.html"
    invoke("compare", tmp_path / "a" / "run", tmp_path / "b" / "run", "--html", html)
    assert_inert(html.read_text(encoding="utf-8"), shown=1)  # the disagreement's id


def test_record_text_is_inert_on_the_calibration_page(tmp_path):
    row = xlam_row(EVIL, query=f"{EVIL} now?")
    write_jsonl(tmp_path / "golden.jsonl", [{**row, "label": {"outcome": "discard"}, "comment": EVIL}])
    (tmp_path / "pipeline.toml").write_text(RULES_ONLY)
    invoke("calibrate", tmp_path / "golden.jsonl", tmp_path / "pipeline.toml", "--out", tmp_path / "cal")
    html = (tmp_path / "cal" / "calibration.html").read_text(encoding="utf-8")
    assert_inert(html)  # the disagreement's id and the person's comment
    assert "svg" in Page(html).tags


def test_record_text_never_reaches_the_review_page(tmp_path):
    run_rows([xlam_row(EVIL, query=f"{EVIL} now?", answers=UNKNOWN)], tmp_path)
    server = ReviewServer(tmp_path / "run").start()
    try:
        _, _, page = request(server, "GET", "/")
        _, _, record = request(server, "GET", "/api/record?index=0")
    finally:
        server.stop()
    html = page.decode()
    assert "alert(1)" not in html and "7*7" not in html and Page(html).tags.count("script") == 1
    assert b"<" not in record and json.loads(record)["query"] == f"{EVIL} now?"  # the script puts it as textContent


def test_a_value_the_template_needs_and_is_not_given_fails_loudly():
    with pytest.raises(jinja2.UndefinedError, match="nonce"):
        render("review.html", token="t")


@pytest.mark.parametrize("name", environment().list_templates(extensions=["html"]))
def test_every_template_compiles(name):
    environment().get_template(name)


def test_printed_values_are_escaped_and_lone_surrogates_shown_as_escapes():
    html = render("review.html", token='"><script>', nonce="\ud800")
    assert 'content="&#34;&gt;&lt;script&gt;"' in html and 'nonce="\\ud800"' in html
    html.encode("utf-8")


def test_help_does_not_import_jinja2():
    code = (
        "import sys; from click.testing import CliRunner; from funreason_refine.cli import main; "
        "r = CliRunner().invoke(main, ['--help']); assert r.exit_code == 0, r.output; print('jinja2' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
