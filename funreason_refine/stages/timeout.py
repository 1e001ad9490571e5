"""Run a stage's check with a time limit; a check that fails is its record's error, not the run's."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from funreason_refine.errors import RefineError

T = TypeVar("T")


class StageFailed(RefineError):
    """A check raised, ran past its timeout or returned no Verdict: its record goes to errors.jsonl."""


class CheckTimeout(BaseException):
    """A check ran past its timeout. BaseException, so a plugin's ``except Exception`` cannot eat it."""


def _on_alarm(signum: int, frame: Any) -> None:
    raise CheckTimeout()


def call_with_timeout(check: Callable[[Any], T], record: Any, seconds: float | None) -> T:
    """``check(record)``, interrupted by CheckTimeout after ``seconds``.

    SIGALRM interrupts Python code only in the main thread (checks in worker processes run
    there too); elsewhere, and for checks with no timeout, the check runs as it is.
    """
    if seconds is None or threading.current_thread() is not threading.main_thread():
        return check(record)
    if signal.getsignal(signal.SIGALRM) is not _on_alarm:
        signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        return check(record)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
