import sqlite3
import subprocess
import sys
from types import SimpleNamespace

from funreason_refine.judge import cache as cache_module
from funreason_refine.judge.cache import FILE, AnswerCache, Cached

ANSWER = Cached("<judge>True</judge><reason>ok</reason>", 120, 8, 0.001, 0.9)


def rows_on_disk(folder) -> set[str]:
    """The keys another reader of the file sees (a second connection, as a resumed run would open)."""
    with sqlite3.connect(folder / FILE) as db:
        return {key for (key,) in db.execute("SELECT key FROM answers")}


def test_an_answer_is_read_back_at_once_and_written_half_a_second_later_in_one_go(tmp_path, monkeypatch):
    clock = iter([100.0, 100.1, 100.3, 100.6, 100.7, 100.8])  # open, three puts, the write, the close
    monkeypatch.setattr(cache_module, "time", SimpleNamespace(monotonic=lambda: next(clock)))
    cache = AnswerCache(tmp_path)
    cache.put("a", ANSWER)
    cache.put("b", ANSWER)
    assert cache.get("a") == ANSWER and rows_on_disk(tmp_path) == set()  # kept, not yet written
    cache.put("c", ANSWER)  # 0.6 s after the last write: all three are written together
    assert rows_on_disk(tmp_path) == {"a", "b", "c"}
    assert cache.get("c") == ANSWER and cache.get("missing") is None
    cache.close()


def test_closing_writes_what_is_kept_and_a_reopened_cache_knows_it_has_earlier_answers(tmp_path):
    cache = AnswerCache(tmp_path)
    assert not cache.inherited
    cache.put("a", ANSWER)
    cache.close()
    again = AnswerCache(tmp_path)
    assert again.inherited and again.get("a") == ANSWER
    again.close()


def test_a_crash_loses_only_the_answers_not_yet_written(tmp_path):
    code = (
        "import os, sys\n"
        "from funreason_refine.judge.cache import AnswerCache, Cached\n"
        "cache = AnswerCache(__import__('pathlib').Path(sys.argv[1]))\n"
        "cache.put('early', Cached('yes', 1, 1, 0.0))\n"
        "cache.write()\n"
        "cache.put('late', Cached('yes', 1, 1, 0.0))\n"
        "os._exit(9)\n"  # killed: no close
    )
    died = subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=False)
    assert died.returncode == 9
    assert rows_on_disk(tmp_path) == {"early"}  # the late answer is asked again by the resumed run
