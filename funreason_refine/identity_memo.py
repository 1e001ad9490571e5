"""A memo keyed by object identity, for values derived from objects that many records share."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class IdentityMemo(Generic[T]):
    """``memo(obj)`` is ``compute(obj)``, computed once per object while it is remembered.

    Readers share one normalised tool object among the records that offer the same tool, and
    copies of a record share its tools list, so identity is a cheap, exact key. Each entry holds
    the object itself, so its id cannot be reused while it is here; a hit is confirmed with ``is``.
    Written by hand: functools caches key by equality, which would hash every schema again.
    """

    def __init__(self, compute: Callable[[Any], T], max_size: int):
        self._compute = compute
        self._max_size = max_size
        self._entries: dict[int, tuple[Any, T]] = {}

    def __call__(self, obj: Any) -> T:
        hit = self._entries.get(id(obj))
        if hit is not None and hit[0] is obj:
            return hit[1]
        if len(self._entries) >= self._max_size:
            self._entries.clear()
        value = self._compute(obj)
        self._entries[id(obj)] = (obj, value)
        return value
