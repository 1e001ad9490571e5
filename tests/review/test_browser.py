"""The review page in headless Chromium, driven for real: clicks, key presses, reloads, a killed server."""

import os
import re
import select
import shutil
import signal
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from funreason_refine.cli import main
from funreason_refine.testing import run_rows
from tests.chats import calls, chat, result, run_chats, say, user
from tests.conftest import read_jsonl, xlam_row
from tests.review.conftest import HOSTILE
from tests.test_pages import EVIL, UNKNOWN

pytestmark = pytest.mark.skipif(
    not (shutil.which("chromium") and shutil.which("chromedriver")),
    reason="needs Debian's chromium and chromium-driver (CI installs them)",
)
NOTE = "Rome is not asked for"


def start_review(run_dir):
    """`refine review` in its own process; returns it and the address it printed."""
    process = subprocess.Popen(
        [sys.executable, "-c", "from funreason_refine.cli import main; main()", "review", str(run_dir), "--no-browser"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    deadline, seen = time.monotonic() + 30, b""
    while time.monotonic() < deadline:
        if select.select([process.stdout], [], [], 0.2)[0]:
            seen += os.read(process.stdout.fileno(), 4096)
            found = re.search(rb"http://127\.0\.0\.1:\d+/", seen)
            if found:
                return process, found.group().decode()
        if process.poll() is not None:
            break
    process.kill()
    raise AssertionError(f"refine review did not print its address: {seen.decode(errors='replace')}")


def wait(driver, condition, what):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, 15).until(lambda d: condition(d), message=what)


def open_page(driver, url):
    from selenium.webdriver.common.by import By

    driver.get(url)
    wait(driver, lambda d: d.find_element(By.ID, "app").get_attribute("data-ready") == "true", "the page to load")


def status_is(driver, text):
    from selenium.webdriver.common.by import By

    wait(driver, lambda d: d.find_element(By.ID, "status").text == text, f"status {text!r}")


def press(driver, keys):
    from selenium.webdriver.common.action_chains import ActionChains

    ActionChains(driver).send_keys(keys).perform()


def marks(driver):
    from selenium.webdriver.common.by import By

    rows = driver.find_elements(By.CSS_SELECTOR, "#list li")
    return {int(r.get_attribute("data-index")): r.get_attribute("data-decision") for r in rows}


def show(driver, index):
    from selenium.webdriver.common.by import By

    driver.find_element(By.CSS_SELECTOR, f'#list li[data-index="{index}"]').click()
    wait(driver, lambda d: d.find_element(By.ID, "title").text.startswith(f"Record {index} "), f"record {index}")


def test_mark_reload_kill_restart_and_export(browser, run_dir, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    first, url = start_review(run_dir)
    try:
        open_page(browser, url)
        # 1. By mouse: the discard of no-days (record 4, missing days) was wrong.
        show(browser, 4)
        browser.find_element(By.ID, "wrong").click()
        status_is(browser, "saved #4: verdict wrong")
        # 2. By keyboard: the page moved on to record 5 (unknown parameter); that discard was right.
        wait(browser, lambda d: d.find_element(By.ID, "title").text.startswith("Record 5 "), "record 5")
        press(browser, "r")
        status_is(browser, "saved #5: verdict right")
        # 3. By keyboard, with a note: on to record 0, j to record 1 (ok-rome), n, the note, Esc, w.
        wait(browser, lambda d: d.find_element(By.ID, "title").text.startswith("Record 0 "), "record 0")
        press(browser, "j")
        wait(browser, lambda d: d.find_element(By.ID, "title").text.startswith("Record 1 "), "record 1")
        press(browser, "n")
        press(browser, NOTE + Keys.ESCAPE)
        press(browser, "w")
        status_is(browser, "saved #1: verdict wrong")
        expected = {4: "wrong", 5: "right", 1: "wrong"}
        assert {i: m for i, m in marks(browser).items() if m} == expected

        browser.refresh()
        open_page(browser, browser.current_url)
        assert {i: m for i, m in marks(browser).items() if m} == expected
        show(browser, 1)
        assert browser.find_element(By.ID, "decision").text.startswith(f"Your decision: verdict wrong — {NOTE}")
    finally:
        first.send_signal(signal.SIGKILL)  # killed: only what was on disk survives
        first.wait(10)

    second, url = start_review(run_dir)
    try:
        open_page(browser, url)
        assert {i: m for i, m in marks(browser).items() if m} == expected
        show(browser, 1)
        assert browser.find_element(By.ID, "note").get_property("value") == NOTE

        # The record with <script>, </textarea> and an <img onerror> in its query is text.
        show(browser, 3)
        assert browser.find_element(By.ID, "query").get_property("textContent") == HOSTILE
        assert browser.execute_script("return window.pwned") is None
        assert browser.find_elements(By.TAG_NAME, "img") == []
        assert len(browser.find_elements(By.TAG_NAME, "script")) == 1
        assert browser.find_element(By.ID, "note").get_property("value") == ""
        problems = [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]
        assert problems == [], problems
    finally:
        second.send_signal(signal.SIGINT)
        assert second.wait(10) == 0

    out = tmp_path / "train.jsonl"
    result = CliRunner().invoke(main, ["export", str(run_dir), "--format", "funreason", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert [r["id"] for r in read_jsonl(out)] == ["ok-paris", "repaired", "no-days"]
    assert "1 wrongly discarded record(s) restored; 1 wrongly kept left out" in " ".join(result.output.split())


HOSTILE_RESULT = '<script>window.pwned=3</script></textarea><img src=x onerror="window.pwned=4"> {"temp": 9}'


def test_a_conversation_turn_by_turn_its_tool_results_as_text(browser, tmp_path):
    from selenium.webdriver.common.by import By

    rows = [
        # 0 discarded at turn 1 (days missing); its first tool result is hostile text
        chat(
            "hostile-result",
            user("Weather in Oslo, then the forecast?"),
            {**calls(("o", "get_weather", {"city": "Oslo"})), "reasoning_content": "First the weather."},
            result("o", HOSTILE_RESULT),
            calls(("f", "get_forecast", {"city": "Oslo"})),
            result("f", '{"rain": true}'),
            say("Rain."),
        ),
        # 1 truncated at turn 1 (unknown function): kept up to turn 0
        chat(
            "cut",
            user("Weather in Rome?"),
            calls(("r", "get_weather", {"city": "Rome"})),
            result("r", "Error: timeout"),
            calls(("s", "get_wether", {"city": "Rome"})),
        ),
    ]
    out = run_chats(
        rows,
        tmp_path,
        '[[stages]]\nname = "conversation"\n[[stages]]\nname = "query_tool"\n'
        'on_fail = "truncate"\n[[stages]]\nname = "function_params"',
    )
    assert [r["id"] for r in out["discarded"]] == ["hostile-result"] and [r["id"] for r in out["kept"]] == ["cut"]
    process, url = start_review(tmp_path / "run")
    try:
        open_page(browser, url)
        show(browser, 0)
        assert browser.find_element(By.ID, "chat-section").is_displayed()
        assert not browser.find_element(By.ID, "single").is_displayed()
        blocks = browser.find_elements(By.CSS_SELECTOR, "#conversation .msg")
        heads = [b.find_element(By.TAG_NAME, "h4").text for b in blocks]
        assert heads == [
            "user",
            "assistant · turn 0",
            "tool result · get_weather (call o)",
            "assistant · turn 1 · ✗ failed here: function_params / missing_required",
            "tool result · get_forecast (call f)",
            "assistant · turn 2",
        ]
        assert [b.get_attribute("class") for b in blocks][3] == "msg assistant failed"
        pres = blocks[1].find_elements(By.TAG_NAME, "pre")
        assert [p.get_property("textContent") for p in pres] == ["First the weather.", '[get_weather(city="Oslo")]']
        assert blocks[2].find_element(By.TAG_NAME, "pre").get_property("textContent") == HOSTILE_RESULT
        assert browser.execute_script("return window.pwned") is None
        assert browser.find_elements(By.TAG_NAME, "img") == []
        assert len(browser.find_elements(By.TAG_NAME, "script")) == 1
        trail = browser.find_elements(By.CSS_SELECTOR, "#trail tr")
        assert trail[0].text.split() == ["turn", "stage", "verdict", "reason", "judge", "attempt", "message"]
        assert trail[-1].text.startswith("1 function_params discard missing_required rules 1")

        show(browser, 1)
        verdict = browser.find_element(By.ID, "verdict").text
        assert verdict.startswith("Kept up to turn 0: turn 1 failed at query_tool: unknown_function — ")
        blocks = browser.find_elements(By.CSS_SELECTOR, "#conversation .msg")
        assert blocks[-1].find_element(By.TAG_NAME, "h4").text == (
            "turn 1 · not kept: the conversation was cut before it · ✗ failed here: query_tool / unknown_function"
        )
        problems = [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]
        assert problems == [], problems
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(10) == 0


def test_text_that_closes_the_script_and_looks_like_a_template_is_shown_as_text(browser, tmp_path):
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.common.by import By

    run_rows([xlam_row(EVIL, query=f"{EVIL} now?", answers=UNKNOWN)], tmp_path)
    process, url = start_review(tmp_path / "run")
    try:
        open_page(browser, url)
        show(browser, 0)
        assert browser.find_element(By.ID, "query").get_property("textContent") == f"{EVIL} now?"
        assert browser.find_element(By.ID, "title").text.startswith(f"Record 0 · id {EVIL} · ")
        with pytest.raises(NoAlertPresentException):
            browser.switch_to.alert.accept()  # there is no alert to accept
        assert len(browser.find_elements(By.TAG_NAME, "script")) == 1
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(10) == 0


@pytest.fixture
def slow_server(run_dir):
    """The review of run_dir served in this process, each decision answered 0.4 s late; ``fail`` set to a
    message makes the server refuse to save."""
    from funreason_refine.errors import RefineError
    from funreason_refine.review.server import ReviewServer

    server = ReviewServer(run_dir).start()
    decide = server.state.decide
    server.fail = None

    def slow(payload):
        time.sleep(0.4)
        if server.fail:
            raise RefineError(server.fail)
        return decide(payload)

    server.state.decide = slow
    yield server
    server.stop()


def listed(driver):
    """The indexes of the records in the list, in its order."""
    from selenium.webdriver.common.by import By

    return [int(li.get_attribute("data-index")) for li in driver.find_elements(By.CSS_SELECTOR, "#list li")]


def row(driver, index, attribute):
    from selenium.webdriver.common.by import By

    return driver.find_element(By.CSS_SELECTOR, f'#list li[data-index="{index}"]').get_attribute(attribute)


def leaving_asks(driver):
    """Whether the page's beforeunload handler asks the browser to confirm leaving."""
    return driver.execute_script(
        "const e = new Event('beforeunload', {cancelable: true}); window.dispatchEvent(e); return e.defaultPrevented"
    )


def saved(run_dir):
    path = run_dir / "overrides.jsonl"
    return [(d["index"], d["decision"]) for d in read_jsonl(path)] if path.exists() else []


def test_keys_pressed_faster_than_the_saves_each_decide_the_record_on_screen(browser, run_dir, slow_server):
    from selenium.webdriver.common.by import By

    open_page(browser, slow_server.url)
    order = listed(browser)
    assert browser.find_element(By.ID, "title").text.startswith(f"Record {order[0]} ")
    press(browser, "rwr")  # three keys in one go, while the first save takes 0.4 s
    # The page moved on with each key at once; the third decision is still on its way to the server.
    assert browser.find_element(By.ID, "counts").text.startswith("4 of 6 · ")
    assert (row(browser, order[2], "data-state"), row(browser, order[2], "data-decision")) == ("saving", "right")
    assert leaving_asks(browser)
    status_is(browser, f"saved #{order[2]}: verdict right")
    assert not leaving_asks(browser)
    assert saved(run_dir) == [(order[0], "right"), (order[1], "wrong"), (order[2], "right")]
    assert browser.find_element(By.ID, "title").text.startswith(f"Record {order[3]} ")
    assert {i: m for i, m in marks(browser).items() if m} == {order[0]: "right", order[1]: "wrong", order[2]: "right"}
    assert browser.find_element(By.ID, "counts").text == "4 of 6 · 3 decided"

    # A key held down decides one record, not each one it repeats over.
    browser.execute_script(
        "for (const repeat of [false, true, true]) "
        "document.dispatchEvent(new KeyboardEvent('keydown', {key: 'w', repeat: repeat, bubbles: true}));"
    )
    status_is(browser, f"saved #{order[3]}: verdict wrong")
    assert saved(run_dir)[3:] == [(order[3], "wrong")]
    assert browser.find_element(By.ID, "title").text.startswith(f"Record {order[4]} ")


def test_a_decision_the_server_did_not_save_stays_on_the_page_until_it_is_saved(browser, run_dir, slow_server):
    from selenium.webdriver.common.by import By

    open_page(browser, slow_server.url)
    first, second = listed(browser)[:2]
    slow_server.fail = "disk full"
    press(browser, "w")
    status_is(browser, f"NOT saved (#{first}): disk full; marked ! in the list: decide again")
    assert browser.find_element(By.ID, "status").get_attribute("class") == "error"
    assert (row(browser, first, "data-state"), row(browser, first, "data-decision")) == ("unsaved", "wrong")
    assert browser.find_element(By.CSS_SELECTOR, f'#list li[data-index="{first}"] .mark').text == "!"
    assert browser.find_element(By.ID, "counts").text == "2 of 6 · 0 decided · 1 NOT saved"
    assert browser.find_element(By.ID, "title").text.startswith(f"Record {second} ")
    assert saved(run_dir) == []
    assert leaving_asks(browser), "closing or reloading the page asks first"

    show(browser, first)
    assert browser.find_element(By.ID, "decision").text == "NOT saved: verdict wrong (disk full); press the key again"
    assert browser.find_element(By.ID, "wrong").get_attribute("aria-pressed") == "true"
    slow_server.fail = None
    press(browser, "w")
    status_is(browser, f"saved #{first}: verdict wrong")
    assert saved(run_dir) == [(first, "wrong")]
    assert (row(browser, first, "data-state"), row(browser, first, "data-decision")) == ("", "wrong")
    assert browser.find_element(By.ID, "counts").text == "2 of 6 · 1 decided"
    assert not leaving_asks(browser)


def test_space_or_enter_after_a_click_on_a_verdict_button_decides_nothing_more(browser, run_dir):
    # The clicked button kept the focus: Space (to scroll the next record) or Enter pressed it again,
    # marking the record after it right without the person reading it, and the next, and so on.
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    process, url = start_review(run_dir)
    try:
        open_page(browser, url)
        first, second = listed(browser)[:2]
        browser.find_element(By.ID, "right").click()
        status_is(browser, f"saved #{first}: verdict right")
        assert browser.find_element(By.ID, "title").text.startswith(f"Record {second} ")
        press(browser, Keys.SPACE + Keys.ENTER)
        time.sleep(0.5)
        assert browser.find_element(By.ID, "title").text.startswith(f"Record {second} ")
        assert saved(run_dir) == [(first, "right")]
        press(browser, "w")  # the keys still decide
        status_is(browser, f"saved #{second}: verdict wrong")
    finally:
        process.terminate()
        process.wait(10)


def test_a_note_on_a_record_not_decided_yet_waits_for_the_decision(browser, run_dir):
    # The note was lost without a word when the person moved on before deciding.
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    process, url = start_review(run_dir)
    try:
        open_page(browser, url)
        first, second = listed(browser)[:2]
        press(browser, "n")
        press(browser, NOTE + Keys.ESCAPE)
        assert browser.find_element(By.ID, "decision").text == (
            "Not decided yet: the note is saved with your decision (r or w)"
        )
        press(browser, "j")
        wait(browser, lambda d: d.find_element(By.ID, "title").text.startswith(f"Record {second} "), "the next")
        assert browser.find_element(By.ID, "note").get_property("value") == ""
        press(browser, "k")
        wait(browser, lambda d: d.find_element(By.ID, "title").text.startswith(f"Record {first} "), "back")
        assert browser.find_element(By.ID, "note").get_property("value") == NOTE
        press(browser, "w")
        status_is(browser, f"saved #{first}: verdict wrong")
        (decision,) = read_jsonl(run_dir / "overrides.jsonl")
        assert (decision["index"], decision["decision"], decision["note"]) == (first, "wrong", NOTE)
    finally:
        process.terminate()
        process.wait(10)
