"""Judge answers by content address (model, sampling parameters, prompt), in the run folder.

A re-run of a finished pipeline makes no judge call; changing one stage's prompt re-asks only
that stage. SQLite (standard library) gives atomic writes that survive a crash mid-run.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

FILE = "judge_cache.sqlite"


@dataclass(frozen=True)
class Cached:
    text: str
    prompt_tokens: int
    completion_tokens: int
    cost: float
    seconds: float = 0.0  # how long the call took when it was made (0 for answers cached before this was kept)


class AnswerCache:
    def __init__(self, folder: Path):
        self._db = sqlite3.connect(folder / FILE, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        # No fsync per answer (it would stall the event loop): WAL with NORMAL survives a crash of
        # the process; a power cut may lose the last answers, which are then asked again.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS answers (key TEXT PRIMARY KEY, text TEXT NOT NULL, "
            "prompt_tokens INTEGER, completion_tokens INTEGER, cost REAL, seconds REAL)"
        )
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(answers)")}
        if "seconds" not in columns:  # a cache written before call times were kept
            self._db.execute("ALTER TABLE answers ADD COLUMN seconds REAL")

    def get(self, key: str) -> Cached | None:
        row = self._db.execute(
            "SELECT text, prompt_tokens, completion_tokens, cost, seconds FROM answers WHERE key = ?", (key,)
        ).fetchone()
        if row is None:
            return None
        text, prompt_tokens, completion_tokens, cost, seconds = row
        return Cached(text, prompt_tokens, completion_tokens, cost, seconds or 0.0)

    def put(self, key: str, answer: Cached) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO answers (key, text, prompt_tokens, completion_tokens, cost, seconds) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (key, answer.text, answer.prompt_tokens, answer.completion_tokens, answer.cost, answer.seconds),
        )

    def close(self) -> None:
        self._db.close()
