"""Read-only JSON containers: what many records share (their tools) cannot be changed through one.

Readers give every record that offers the same tool one normalised tool object, and schema
caches are keyed by that object; changing it through one record would change it in every
other record, read before or after. So shared tools are frozen: ``dict``/``list`` subclasses
(JSON Schema validators, ``json`` and the serialisers take them as they are) whose mutating
methods raise. ``dict(tool)``, ``list(tools)`` and ``copy.deepcopy`` give ordinary mutable copies.
"""

from __future__ import annotations

import copy
from typing import Any, NoReturn

READ_ONLY = (
    "record tools are shared by every record that offers the same tool, so they are read-only; "
    "build changed ones from copies (dict(tool), list(record.tools)) and set them with "
    "record.model_copy(update={'tools': new_tools})"
)


def _refuse(self: object, *args: object, **kwargs: object) -> NoReturn:
    raise TypeError(READ_ONLY)


class FrozenDict(dict[str, Any]):
    """A dict that refuses changes."""

    __slots__ = ()
    __setitem__ = __delitem__ = __ior__ = _refuse
    clear = pop = popitem = setdefault = update = _refuse

    def __copy__(self) -> dict[str, Any]:
        return dict(self)

    def __deepcopy__(self, memo: dict[int, Any]) -> dict[str, Any]:
        return {key: copy.deepcopy(value, memo) for key, value in self.items()}

    def __reduce__(self) -> tuple[Any, ...]:
        return (FrozenDict, (dict(self),))


class FrozenList(list[Any]):
    """A list that refuses changes."""

    __slots__ = ()
    __setitem__ = __delitem__ = __iadd__ = __imul__ = _refuse
    append = extend = insert = remove = pop = clear = sort = reverse = _refuse

    def __copy__(self) -> list[Any]:
        return list(self)

    def __deepcopy__(self, memo: dict[int, Any]) -> list[Any]:
        return [copy.deepcopy(value, memo) for value in self]

    def __reduce__(self) -> tuple[Any, ...]:
        return (FrozenList, (list(self),))


def freeze(value: Any) -> Any:
    """``value`` with every dict and list in it, at every depth, made read-only."""
    if isinstance(value, dict):
        return value if type(value) is FrozenDict else FrozenDict({k: freeze(v) for k, v in value.items()})
    if isinstance(value, list):
        return value if type(value) is FrozenList else FrozenList(freeze(v) for v in value)
    return value
