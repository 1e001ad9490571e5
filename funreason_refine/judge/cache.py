"""Judge answers by content address (model, sampling parameters, prompt), in the run folder.

A re-run of a finished pipeline makes no judge call; changing one stage's prompt re-asks only
that stage. SQLite (standard library) gives atomic writes that survive a crash mid-run.

An answer its reader found unusable (not a verdict, cut off, reasoning alone, empty) is dropped
(:meth:`AnswerCache.drop`): it is never served again, so that ``refine retry`` asks again instead of
reading the same answer back, and what the calls that paid for it cost stays counted (:func:`spent`).

In a run (an event loop), an answer is written at most half a second after it came, with the
others of that half second in one transaction: a write per answer had the event loop give up the
GIL for each one, to the threads where LiteLLM logs each answer, at about 1 ms of a judged run's
time per call (docs/benchmarks.md). A crash (SIGKILL, out of memory, power) loses at most the
answers of the last half second, which the resumed run asks again; Ctrl-C, SIGTERM and every
other end of a run write them all. Outside an event loop an answer is written at once.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections import Counter
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

FILE = "judge_cache.sqlite"
WRITE_SECONDS = 0.5
COLUMNS = "text, prompt_tokens, completion_tokens, cost, seconds, reasoning, finish_reason"


@dataclass(frozen=True)
class Cached:
    text: str
    prompt_tokens: int
    completion_tokens: int
    cost: float
    seconds: float = 0.0  # how long the call took when it was made (0 for answers cached before this was kept)
    reasoning: str | None = None  # the response's reasoning field (answers cached before it was kept hold it in text)
    finish_reason: str | None = None  # "length": the token limit cut the answer off (None: not known)
    counted_locally: bool = False  # its tokens counted here: the batch line came without usage (not kept on disk)


class AnswerCache:
    def __init__(self, folder: Path):
        self._db = sqlite3.connect(folder / FILE, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        # No fsync per answer (it would stall the event loop): WAL with NORMAL survives a crash of
        # the process; a power cut may lose the last answers, which are then asked again.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS answers (key TEXT PRIMARY KEY, text TEXT NOT NULL, "
            "prompt_tokens INTEGER, completion_tokens INTEGER, cost REAL, seconds REAL, paid INTEGER)"
        )
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(answers)")}
        # Columns a cache written by an earlier version lacks: call times, reasoning fields, finish reasons, and
        # the calls that paid for each answer (NULL: written before they were counted, each paid once).
        for column, kind in (
            ("seconds", "REAL"),
            ("reasoning", "TEXT"),
            ("finish_reason", "TEXT"),
            ("paid", "INTEGER"),
        ):
            if column not in columns:
                self._db.execute(f"ALTER TABLE answers ADD COLUMN {column} {kind}")
        # What the calls that paid for answers dropped as unusable cost (:meth:`drop`): still spent.
        self._db.execute("CREATE TABLE IF NOT EXISTS dropped (key TEXT NOT NULL, cost REAL NOT NULL)")
        # Whether answers of earlier runs are here (only those can be under a key of an older version).
        self.inherited = self._db.execute("SELECT 1 FROM answers LIMIT 1").fetchone() is not None
        self._unwritten: dict[str, Cached] = {}
        # Calls that paid for each unwritten answer: two in flight with one prompt are both paid, and kept once.
        self._paid: Counter[str] = Counter()
        self._due: asyncio.TimerHandle | None = None  # the write of the answers kept, half a second after the first
        self._closed = False

    def get(self, key: str) -> Cached | None:
        unwritten = self._unwritten.get(key)
        if unwritten is not None:
            return unwritten
        row = self._db.execute(f"SELECT {COLUMNS} FROM answers WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        text, prompt_tokens, completion_tokens, cost, seconds, reasoning, finish_reason = row
        return Cached(text, prompt_tokens, completion_tokens, cost, seconds or 0.0, reasoning, finish_reason)

    def find(self, key: str, old_key: Callable[[], str | None]) -> tuple[Cached | None, bool]:
        """The answer under ``key``; in a cache that held answers when it was opened, else under
        ``old_key()`` (the key an older version gave it, None when it gave none). Returns the answer
        and whether it was found under the old key."""
        hit = self.get(key)
        if hit is not None or not self.inherited:
            return hit, False
        old = old_key()
        hit = self.get(old) if old is not None else None
        return hit, hit is not None

    def recall(self, key: str, old_key: Callable[[], str | None]) -> Cached | None:
        """The answer under ``key``, or under ``old_key()`` (:meth:`find`), then kept under ``key`` too."""
        hit, under_old_key = self.find(key, old_key)
        if hit is not None and under_old_key:
            self.put(key, hit, paid=False)
        return hit

    def put(self, key: str, answer: Cached, paid: bool = True) -> None:
        """Keep an answer: written within half a second in an event loop (or by :meth:`write`, :meth:`close`),
        at once outside one. ``paid``: a call (or batch) just paid for it (:func:`spent` counts it)."""
        if self._closed:
            raise RuntimeError("an answer was given to a closed answer cache")
        self._unwritten[key] = answer
        self._paid[key] += paid
        if self._due is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.write()
            return
        self._due = loop.call_later(WRITE_SECONDS, self.write)

    def drop(self, key: str) -> None:
        """Serve the answer under ``key`` no more (its reader found it unusable); what it cost (each call that
        paid for it) stays counted by :meth:`spent`. Written at once: drops are rare, and a retry must not find
        the answer again."""
        if self._closed:
            return
        self.write()
        with self._db:
            self._db.execute("BEGIN")
            self._db.execute(
                "INSERT INTO dropped (key, cost) SELECT key, COALESCE(cost, 0.0) * COALESCE(paid, 1) FROM answers "
                "WHERE key = ?",
                (key,),
            )
            self._db.execute("DELETE FROM answers WHERE key = ?", (key,))

    def spent_on_nothing(self, key: str, cost: float) -> None:
        """A call for ``key`` that a server answered without an answer in it, and billed: :meth:`spent` counts it."""
        if self._closed or not cost:
            return
        with self._db:
            self._db.execute("BEGIN")
            self._db.execute("INSERT INTO dropped (key, cost) VALUES (?, ?)", (key, cost))

    def write(self) -> None:
        """Write the answers kept since the last write, in one transaction."""
        if self._due is not None:
            self._due.cancel()
            self._due = None
        if not self._unwritten:
            return
        rows = [
            (
                key,
                *(answer.text, answer.prompt_tokens, answer.completion_tokens, answer.cost, answer.seconds),
                *(answer.reasoning, answer.finish_reason, self._paid[key]),
            )
            for key, answer in self._unwritten.items()
        ]
        with self._db:  # one transaction (isolation_level None: begun here by hand)
            self._db.execute("BEGIN")
            self._db.executemany(
                f"INSERT INTO answers (key, {COLUMNS}, paid) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (key) DO UPDATE SET text = excluded.text, prompt_tokens = excluded.prompt_tokens, "
                "completion_tokens = excluded.completion_tokens, cost = excluded.cost, seconds = excluded.seconds, "
                "reasoning = excluded.reasoning, finish_reason = excluded.finish_reason, "
                "paid = COALESCE(paid, 1) + excluded.paid",
                rows,
            )
        self._unwritten.clear()
        self._paid.clear()

    def spent(self) -> float:
        """What the answers paid for into this cache cost, those dropped as unusable included (module function
        :func:`spent`)."""
        self.write()
        (kept,) = self._db.execute("SELECT COALESCE(SUM(cost * COALESCE(paid, 1)), 0.0) FROM answers").fetchone()
        (dropped,) = self._db.execute("SELECT COALESCE(SUM(cost), 0.0) FROM dropped").fetchone()
        return float(kept) + float(dropped)

    def close(self) -> None:
        self.write()
        self._closed = True
        self._db.close()


def spent(folder: Path) -> float:
    """What every call that paid for an answer in the cache in ``folder`` cost (0.0 without a cache there),
    whichever process made it: a run stopped and resumed is counted whole (less the answers of a crash's last
    half second), answers dropped as unusable included. Two calls that paid for one answer count its cost twice;
    an answer cached before calls were counted, once.

    Self-refinement counts a round's spend here: its samples and its judges' answers go to the round's folder.
    """
    if not (folder / FILE).exists():
        return 0.0
    with closing(AnswerCache(folder)) as cache:
        return cache.spent()
