"""The paper's call syntax ``[func(param=value, ...)]``: render it and parse it back safely.

Parsing uses ``ast`` and ``ast.literal_eval`` only; nothing is ever evaluated. Written by hand
because no library renders Python-literal call lists and checks the round trip.
"""

from __future__ import annotations

import ast
import json
import keyword
import math
from collections.abc import Iterable
from typing import Any

from funreason_refine.errors import CallSyntaxError
from funreason_refine.memo import memoize
from funreason_refine.record import FunctionCall

# A rendered answer longer than this is not parsed: ast on hostile megabyte inputs is slow
# and can exhaust the C stack.
MAX_CALL_TEXT = 200_000


# json.dumps(value, ensure_ascii=False) builds a new encoder on every call; this one is reused.
_json_string = json.JSONEncoder(ensure_ascii=False).encode


def render_value(value: Any) -> str:
    """Render a JSON value as a Python literal (strings double-quoted, True/False/None).

    JSON's own types only, exactly: a subclass may print as something else (numpy's float64 is
    a float and prints as ``np.float64(1.5)``), and never parses back as itself.
    """
    kind = type(value)
    if value is None:
        return "None"
    if value is True:
        return "True"
    if value is False:
        return "False"
    if kind is str:
        # JSON string escapes are valid Python string escapes.
        return _json_string(value)
    if kind is int:
        return _int_literal(value)
    if kind is float:
        if not math.isfinite(value):
            raise CallSyntaxError(f"{value!r} has no Python literal")
        return repr(value)
    if kind is list:
        return "[" + ", ".join(render_value(v) for v in value) + "]"
    if kind is dict:
        parts = []
        for key, item in value.items():
            if type(key) is not str:
                raise CallSyntaxError(f"dict key {key!r} is not a string")
            parts.append(f"{render_value(key)}: {render_value(item)}")
        return "{" + ", ".join(parts) + "}"
    raise CallSyntaxError(f"{kind.__name__} value {value!r} is not JSON (str, int, float, bool, None, list or dict)")


def _int_literal(value: int) -> str:
    try:
        return str(value)
    except ValueError:  # over sys.get_int_max_str_digits(); Python's parser refuses it too
        raise CallSyntaxError(f"an integer of {value.bit_length()} bits is too long to write as a literal") from None


@memoize(16384)
def _is_dotted_name(name: str) -> bool:
    return all(p.isidentifier() and not _is_keyword(p) for p in name.split("."))


_is_keyword = keyword.iskeyword


def render_call(call: FunctionCall) -> str:
    # Names are str exactly, as values are (render_value): a subclass could format as another name.
    if type(call.name) is not str or not _is_dotted_name(call.name):
        raise CallSyntaxError(f"function name {call.name!r} is not a Python identifier")
    args = []
    for key, value in call.arguments.items():
        if type(key) is not str or not key.isidentifier() or _is_keyword(key):
            raise CallSyntaxError(f"parameter name {key!r} of {call.name} is not a Python identifier")
        args.append(f"{key}={render_value(value)}")
    return f"{call.name}({', '.join(args)})"


def render_calls(calls: list[FunctionCall]) -> str:
    """``[f(a=1), g(b="x")]``; raises CallSyntaxError when a call cannot be written this way."""
    return "[" + ", ".join(render_call(c) for c in calls) + "]"


def _dotted(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    raise CallSyntaxError(f"the called object {ast.dump(node)[:80]} is not a plain function name")


def _literal(node: ast.expr, name: str, param: str) -> Any:
    # Fast paths for the common shapes, giving exactly what literal_eval would; the rest goes to it.
    if isinstance(node, ast.Constant):
        if _plain(node):
            return node.value
    elif isinstance(node, ast.List):
        items = [e for e in node.elts if isinstance(e, ast.Constant) and _plain(e)]
        if len(items) == len(node.elts):
            return [e.value for e in items]
    elif isinstance(node, ast.Dict):
        keys = [k for k in node.keys if isinstance(k, ast.Constant) and type(k.value) is str]
        values = [v for v in node.values if isinstance(v, ast.Constant) and _plain(v)]
        if len(keys) == len(values) == len(node.keys):
            return {k.value: v.value for k, v in zip(keys, values, strict=True)}
    where = f"{name}({param}=...)"
    try:
        value = ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError) as exc:
        raise CallSyntaxError(f"{where} is not a literal value ({type(exc).__name__})") from None
    return _to_json(value, where)


_SCALARS = frozenset({str, int, bool, type(None)})


def _plain(node: ast.Constant) -> bool:
    """A constant that is already a JSON value (a float only when finite: 1e999 parses to inf)."""
    value = node.value
    return type(value) in _SCALARS or (type(value) is float and math.isfinite(value))


def _to_json(value: Any, where: str) -> Any:
    """literal_eval also yields tuples, sets, bytes and complex numbers; JSON has none."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise CallSyntaxError(f"{where} is {value!r}, which JSON cannot hold")
        return value
    if isinstance(value, (list, tuple)):
        return [_to_json(v, where) for v in value]
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise CallSyntaxError(f"{where} has a non-string dict key {key!r}")
            out[key] = _to_json(item, where)
        return out
    raise CallSyntaxError(f"{where} is a {type(value).__name__}, which JSON cannot hold")


def same_value(a: Any, b: Any) -> bool:
    """Equal JSON values of equal types: unlike ==, True is not 1 and 1 is not 1.0."""
    kind = type(a)
    if kind is not type(b):
        return False
    if kind is dict:
        if a.keys() != b.keys():
            return False
        pairs: Iterable[tuple[Any, Any]] = ((v, b[k]) for k, v in a.items())
    elif kind is list:
        if len(a) != len(b):
            return False
        pairs = zip(a, b, strict=False)
    else:
        return a == b
    for x, y in pairs:
        if type(x) is not type(y):
            return False
        if type(x) is dict or type(x) is list:
            if not same_value(x, y):
                return False
        elif x != y:
            return False
    return True


def same_calls(a: list[FunctionCall], b: list[FunctionCall]) -> bool:
    return len(a) == len(b) and all(
        x.name == y.name and same_value(x.arguments, y.arguments) for x, y in zip(a, b, strict=True)
    )


def same_answer(a: list[FunctionCall] | str | None, b: list[FunctionCall] | str | None) -> bool:
    """Whether two answers are the same: the same calls (as ``same_calls``), or the same text, or both None."""
    if isinstance(a, list) and isinstance(b, list):
        return same_calls(a, b)
    return type(a) is type(b) and a == b


def parse_calls(text: str) -> list[FunctionCall]:
    """Parse ``[func(param=value), ...]`` into calls without evaluating anything."""
    return [FunctionCall(name=name, arguments=arguments) for name, arguments in _parsed(text)]


def parses_back(text: str, calls: list[FunctionCall]) -> bool:
    """Whether ``text`` parses to exactly ``calls`` (as ``same_calls``); raises CallSyntaxError."""
    parsed = _parsed(text)
    if len(parsed) != len(calls):
        return False
    for (name, arguments), call in zip(parsed, calls, strict=False):
        if name != call.name or not same_value(arguments, call.arguments):
            return False
    return True


# Python's parser refuses more than 200 nested brackets; a count of the opening ones bounds the depth.
_MAX_BRACKETS = 190


def parses_back_as_rendered(text: str) -> bool:
    """Whether ``text``, as ``render_calls`` wrote it, is known to parse back to the same calls
    without parsing it: a speed trick, 23% of a rules-only run's CPU (docs/benchmarks.md).

    What can break a rendered text's round trip is what Python's parser does to non-ASCII source
    (lone surrogates are refused; identifiers are NFKC-normalised, so ``ﬁle`` reads back as
    ``file``), its nesting limit, and MAX_CALL_TEXT; an ASCII text of few brackets meets none of
    them. False means "parse it": ``parses_back`` decides. tests/test_calls.py holds this to the
    parser on generated calls.
    """
    if not text.isascii() or len(text) > MAX_CALL_TEXT:
        return False
    return text.count("[") + text.count("{") + text.count("(") < _MAX_BRACKETS


def _parsed(text: str) -> list[tuple[str, dict[str, Any]]]:
    if len(text) > MAX_CALL_TEXT:
        raise CallSyntaxError(f"call text is {len(text)} characters, over {MAX_CALL_TEXT}")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except UnicodeEncodeError as exc:  # a lone surrogate: a legal JSON escape, but no UTF-8 text holds it
        found = exc.object[exc.start : exc.end]
        raise CallSyntaxError(
            f"the calls hold a lone surrogate ({found!r}), which no UTF-8 text can hold: no tokenizer could read "
            "this training target"
        ) from None
    except (SyntaxError, ValueError, MemoryError, RecursionError) as exc:
        raise CallSyntaxError(f"not valid call syntax: {exc}") from None
    if not isinstance(tree.body, ast.List):
        raise CallSyntaxError("calls must be a list: [func(param=value), ...]")
    calls = []
    for position, node in enumerate(tree.body.elts, 1):
        if not isinstance(node, ast.Call):
            raise CallSyntaxError(f"element {position} of the list is not a function call")
        name = _dotted(node.func)
        if node.args:
            raise CallSyntaxError(f"{name}: positional arguments are not allowed, write param=value")
        arguments: dict[str, Any] = {}
        for kw in node.keywords:
            param, value = kw.arg, kw.value
            if param is None:
                raise CallSyntaxError(f"{name}: **kwargs is not allowed")
            if param in arguments:
                raise CallSyntaxError(f"{name}: parameter {param!r} is given twice")
            arguments[param] = _literal(value, name, param)
        calls.append((name, arguments))
    return calls
