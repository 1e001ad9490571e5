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


class AnswerCache:
    def __init__(self, folder: Path):
        self._db = sqlite3.connect(folder / FILE, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        # No fsync per answer (it would stall the event loop): WAL with NORMAL survives a crash of
        # the process; a power cut may lose the last answers, which are then asked again.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS answers (key TEXT PRIMARY KEY, text TEXT NOT NULL, "
            "prompt_tokens INTEGER, completion_tokens INTEGER, cost REAL)"
        )

    def get(self, key: str) -> Cached | None:
        row = self._db.execute(
            "SELECT text, prompt_tokens, completion_tokens, cost FROM answers WHERE key = ?", (key,)
        ).fetchone()
        return Cached(*row) if row else None

    def put(self, key: str, answer: Cached) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO answers VALUES (?, ?, ?, ?, ?)",
            (key, answer.text, answer.prompt_tokens, answer.completion_tokens, answer.cost),
        )

    def close(self) -> None:
        self._db.close()
