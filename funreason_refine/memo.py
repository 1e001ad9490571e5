"""One memo for values derived from what many records repeat: tools, schemas, names, verdicts."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any, Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")
_MISSING: Any = object()


class Memo(Generic[K, V]):
    """``memo(key)`` is ``compute(key)``, computed once while it is remembered.

    Holds at most ``max_size`` keys and forgets them all when full (the working set of a run is
    small: a few thousand tools, a few hundred schema shapes). ``by_identity=True`` keys by the
    object itself, not its value: for read-only objects that many records share (frozen tools
    and their schemas), where hashing by value would walk the whole schema on every look-up.
    Each such entry holds its object, so its id cannot be reused while it is remembered.

    Written by hand because functools' caches key by equality only, and raise on unhashable
    keys such as schema dicts. Called a few times per record per stage: the hit is one dict look-up.
    """

    def __init__(self, compute: Callable[[K], V], max_size: int, by_identity: bool = False):
        self._compute = compute
        self._max_size = max_size
        self._by_identity = by_identity
        self._values: dict[Any, Any] = {}

    def __call__(self, arg: K) -> V:
        if self._by_identity:
            hit = self._values.get(id(arg))
            return hit[1] if hit is not None and hit[0] is arg else self._remember(id(arg), arg, arg)
        value = self._values.get(arg, _MISSING)
        return self._remember(arg, arg, arg) if value is _MISSING else value

    def keyed(self, key: Hashable, arg: K) -> V:
        """``compute(arg)``, remembered under ``key`` (say, the text a tool was read from); value-keyed memos only."""
        assert not self._by_identity, "keyed() is for memos keyed by value"
        value = self._values.get(key, _MISSING)
        return self._remember(key, key, arg) if value is _MISSING else value

    def _remember(self, slot: Hashable, key: Any, arg: K) -> V:
        if len(self._values) >= self._max_size:
            self._values.clear()
        value = self._compute(arg)
        self._values[slot] = (key, value) if self._by_identity else value
        return value


def memoize(max_size: int, by_identity: bool = False) -> Callable[[Callable[[K], V]], Memo[K, V]]:
    """Decorator form: ``@memoize(4096)`` over a one-argument function."""

    def wrap(compute: Callable[[K], V]) -> Memo[K, V]:
        return Memo(compute, max_size, by_identity)

    return wrap
