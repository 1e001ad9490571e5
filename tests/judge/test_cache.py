import asyncio
import sqlite3
import subprocess
import sys

import pytest

from funreason_refine.judge import cache as cache_module
from funreason_refine.judge.cache import FILE, AnswerCache, Cached

ANSWER = Cached("<judge>True</judge><reason>ok</reason>", 120, 8, 0.001, 0.9)


def rows_on_disk(folder) -> set[str]:
    """The keys another reader of the file sees (a second connection, as a resumed run would open)."""
    with sqlite3.connect(folder / FILE) as db:
        return {key for (key,) in db.execute("SELECT key FROM answers")}


def test_in_a_run_answers_are_read_back_at_once_and_written_together_soon_after(tmp_path, monkeypatch):
    monkeypatch.setattr(cache_module, "WRITE_SECONDS", 0.2)
    cache = AnswerCache(tmp_path)

    async def run() -> tuple[set[str], set[str]]:
        cache.put("a", ANSWER)
        cache.put("b", ANSWER)
        assert cache.get("a") == ANSWER and cache.get("missing") is None  # kept, not yet written
        held = rows_on_disk(tmp_path)
        await asyncio.sleep(0.5)  # no answer comes after them: they are written all the same
        return held, rows_on_disk(tmp_path)

    held, written = asyncio.run(run())
    assert (held, written) == (set(), {"a", "b"})
    cache.close()


def test_outside_a_run_an_answer_is_written_at_once(tmp_path):
    cache = AnswerCache(tmp_path)
    cache.put("a", ANSWER)
    assert rows_on_disk(tmp_path) == {"a"}
    cache.close()


def test_closing_writes_what_is_kept_and_a_reopened_cache_knows_it_has_earlier_answers(tmp_path):
    cache = AnswerCache(tmp_path)
    assert not cache.inherited

    async def run() -> None:
        cache.put("a", ANSWER)
        cache.close()  # before its write was due

    asyncio.run(run())
    again = AnswerCache(tmp_path)
    assert again.inherited and again.get("a") == ANSWER
    again.close()
    with pytest.raises(RuntimeError, match="closed answer cache"):
        again.put("b", ANSWER)


def test_a_crash_loses_only_the_answers_not_yet_written(tmp_path):
    code = (
        "import asyncio, os, sys\n"
        "from pathlib import Path\n"
        "from funreason_refine.judge.cache import WRITE_SECONDS, AnswerCache, Cached\n"
        "async def run():\n"
        "    cache = AnswerCache(Path(sys.argv[1]))\n"
        "    cache.put('early', Cached('yes', 1, 1, 0.0))\n"
        "    await asyncio.sleep(WRITE_SECONDS + 0.3)\n"
        "    cache.put('late', Cached('yes', 1, 1, 0.0))\n"
        "    os._exit(9)\n"  # killed: no close, the late answer not yet due
        "asyncio.run(run())\n"
    )
    died = subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=False)
    assert died.returncode == 9
    assert rows_on_disk(tmp_path) == {"early"}  # the late answer is asked again by the resumed run


def test_the_key_of_an_older_version_is_looked_up_only_in_a_cache_of_earlier_runs(tmp_path):
    def never() -> str:
        raise AssertionError("a cache begun by this run holds nothing under an older key")

    fresh = AnswerCache(tmp_path)
    assert fresh.find("new", never) == (None, False)
    fresh.put("old", ANSWER)
    fresh.close()
    earlier = AnswerCache(tmp_path)
    assert earlier.find("new", lambda: "old") == (ANSWER, True)
    assert earlier.find("old", never) == (ANSWER, False)
    assert earlier.find("other", lambda: None) == (None, False)
    earlier.close()


def test_an_answer_keeps_its_reasoning_and_finish_reason_and_an_older_cache_gains_the_columns(tmp_path):
    with sqlite3.connect(tmp_path / FILE) as db:  # a cache written before reasoning fields were kept
        db.execute(
            "CREATE TABLE answers (key TEXT PRIMARY KEY, text TEXT NOT NULL, prompt_tokens INTEGER, "
            "completion_tokens INTEGER, cost REAL, seconds REAL)"
        )
        db.execute("INSERT INTO answers VALUES ('old', '<think>r</think><judge>True</judge>', 1, 2, 0.0, 0.5)")
    cache = AnswerCache(tmp_path)
    cut = Cached("<judge>True</judge> or", 10, 64, 0.0, 1.0, reasoning="I think so", finish_reason="length")
    cache.put("cut", cut)
    cache.close()
    cache = AnswerCache(tmp_path)
    assert cache.get("cut") == cut
    assert cache.get("old") == Cached("<think>r</think><judge>True</judge>", 1, 2, 0.0, 0.5)
    cache.close()


def test_spent_counts_every_call_that_paid_for_an_answer_once_per_call(tmp_path):
    old = tmp_path / "old"
    old.mkdir()
    with sqlite3.connect(old / FILE) as db:  # a cache of a version that did not count paid calls
        db.execute(
            "CREATE TABLE answers (key TEXT PRIMARY KEY, text TEXT NOT NULL, prompt_tokens INTEGER, "
            "completion_tokens INTEGER, cost REAL, seconds REAL)"
        )
        db.execute("INSERT INTO answers VALUES ('earlier', 'x', 1, 1, 0.5, 0.1)")
    cache = AnswerCache(old)
    cache.put("a", ANSWER)
    cache.put("a", ANSWER)  # two calls in flight with one prompt: both paid, one answer kept
    cache.put("earlier", Cached("y", 1, 1, 0.25))  # asked again (a crash lost it): paid once more
    cache.put("moved", ANSWER, paid=False)  # an answer found under an older key: kept again, paid by no call
    cache.close()
    assert rows_on_disk(old) == {"a", "earlier", "moved"}
    assert cache_module.spent(old) == pytest.approx(2 * 0.001 + 0.25 + 0.25)
    assert cache_module.spent(tmp_path / "none") == 0.0


def test_a_dropped_answer_is_served_no_more_and_what_it_cost_stays_spent(tmp_path):
    async def in_a_run():
        cache = AnswerCache(tmp_path)
        cache.put("unusable", ANSWER)
        cache.put("unusable", ANSWER)  # two calls paid for it
        cache.put("good", ANSWER)
        cache.drop("unusable")  # not yet written: dropped all the same
        assert cache.get("unusable") is None and cache.get("good") == ANSWER
        cache.drop("never-kept")  # nothing to drop: nothing happens
        cache.close()

    asyncio.run(in_a_run())
    assert rows_on_disk(tmp_path) == {"good"}
    assert cache_module.spent(tmp_path) == pytest.approx(3 * 0.001)
    cache = AnswerCache(tmp_path)
    cache.put("unusable", ANSWER)  # asked again: paid again
    cache.drop("good")
    assert cache.get("good") is None and cache.spent() == pytest.approx(4 * 0.001)
    cache.close()
