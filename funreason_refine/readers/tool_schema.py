"""Turn the tool definitions of xLAM, BFCL and OpenAI into OpenAI functions with JSON Schema.

xLAM writes parameter types in Python notation (``"int, optional"``, ``"List[Dict[str, Any]]"``)
and has no ``required`` list; BFCL uses a JSON Schema dialect (``"dict"``, ``"float"``,
``"tuple"``, ``"any"``). Both are converted once, at read time. A type that has no JSON Schema
(``Callable[...]``, ``pd.DataFrame``) raises :class:`UnconvertibleType`, which the reader turns
into a reasoned discard.

The type parser is hand-written over ``ast`` because no library converts Python typing
strings to JSON Schema; ``ast.parse`` only builds a tree, it never evaluates anything.
"""

from __future__ import annotations

import ast
import re
from typing import Any

from funreason_refine.memo import memoize


class UnconvertibleType(ValueError):
    """A tool parameter type has no JSON Schema equivalent."""


_SCALARS: dict[str, dict[str, Any]] = {
    "str": {"type": "string"},
    "string": {"type": "string"},
    "int": {"type": "integer"},
    "integer": {"type": "integer"},
    "float": {"type": "number"},
    "number": {"type": "number"},
    "double": {"type": "number"},
    "bool": {"type": "boolean"},
    "boolean": {"type": "boolean"},
    "list": {"type": "array"},
    "array": {"type": "array"},
    "tuple": {"type": "array"},
    "set": {"type": "array", "uniqueItems": True},
    "dict": {"type": "object"},
    "object": {"type": "object"},
    "none": {"type": "null"},
    "nonetype": {"type": "null"},
    "null": {"type": "null"},
    "any": {},
}
_ARRAYS = {"list", "sequence", "iterable", "array", "tuple", "set", "frozenset", "collection"}
_OBJECTS = {"dict", "mapping", "object"}
# ", optional" or ", default=..." after the type, outside brackets.
_SUFFIX = re.compile(r",\s*(optional|default\b.*)$", re.IGNORECASE | re.DOTALL)


def _split_suffix(text: str) -> tuple[str, bool]:
    """Strip xLAM's ``, optional`` / ``, default ...`` tails; return (type, optional)."""
    optional = False
    while True:
        depth = 0
        cut = None
        for i, ch in enumerate(text):
            if ch in "[(":
                depth += 1
            elif ch in "])":
                depth -= 1
            elif ch == "," and depth == 0 and _SUFFIX.match(text[i:]):
                cut = i
                break
        if cut is None:
            return text.strip(), optional
        optional = True
        text = text[:cut]


def _node_name(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_node_name(node.value)}.{node.attr}"
    if isinstance(node, ast.Constant) and node.value is None:
        return "None"
    raise UnconvertibleType(f"{ast.unparse(node)!r} is not a type name")


def _convert(node: ast.expr) -> dict[str, Any]:
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        return {"anyOf": [_convert(node.left), _convert(node.right)]}
    if isinstance(node, ast.Subscript):
        return _convert_subscript(node)
    name = _node_name(node)
    scalar = _SCALARS.get(name.split(".")[-1].lower()) if "." not in name or name.startswith("typing.") else None
    if scalar is None:
        raise UnconvertibleType(f"{name!r} has no JSON Schema equivalent")
    return dict(scalar)


def _convert_subscript(node: ast.Subscript) -> dict[str, Any]:
    """``Optional[...]``, ``Union[...]``, ``Literal[...]``, ``Tuple[...]``, and the array and object generics."""
    outer = _node_name(node.value).split(".")[-1].lower()
    inner = node.slice
    args = list(inner.elts) if isinstance(inner, ast.Tuple) else [inner]
    if outer == "optional":
        return {"anyOf": [_convert(args[0]), {"type": "null"}]}
    if outer == "union":
        return {"anyOf": [_convert(a) for a in args]}
    if outer == "literal":
        return {"enum": [_constant(a) for a in args]}
    if outer == "tuple":
        if len(args) == 2 and isinstance(args[1], ast.Constant) and args[1].value is Ellipsis:
            return {"type": "array", "items": _convert(args[0])}
        items = [_convert(a) for a in args]
        return {"type": "array", "prefixItems": items, "minItems": len(items), "maxItems": len(items)}
    if outer in _ARRAYS:
        schema: dict[str, Any] = {"type": "array", "items": _convert(args[0])}
        if outer in {"set", "frozenset"}:
            schema["uniqueItems"] = True
        return schema
    if outer in _OBJECTS:
        schema = {"type": "object"}
        value = _convert(args[1]) if len(args) == 2 else {}
        if value:
            schema["additionalProperties"] = value
        return schema
    raise UnconvertibleType(f"{ast.unparse(node)!r} has no JSON Schema equivalent")


def _constant(node: ast.expr) -> Any:
    if not isinstance(node, ast.Constant):
        raise UnconvertibleType(f"Literal value {ast.unparse(node)!r} is not a constant")
    return node.value


@memoize(4096)
def _python_type_cached(text: str) -> tuple[str, bool]:
    import json

    type_text, optional = _split_suffix(text)
    if not type_text:
        raise UnconvertibleType(f"{text!r} names no type")
    try:
        tree = ast.parse(type_text, mode="eval")
    except SyntaxError:
        raise UnconvertibleType(f"{text!r} is not a type expression") from None
    schema = _convert(tree.body)
    if isinstance(tree.body, ast.Subscript) and _node_name(tree.body.value).split(".")[-1].lower() == "optional":
        optional = True
    return json.dumps(schema), optional


def python_type_to_schema(text: str) -> tuple[dict[str, Any], bool]:
    """``"List[int], optional"`` -> (``{"type": "array", "items": {"type": "integer"}}``, True)."""
    import json

    if len(text) > 500:
        raise UnconvertibleType(f"type text of {len(text)} characters is not a type")
    schema_json, optional = _python_type_cached(text)
    return json.loads(schema_json), optional


def xlam_parameters_to_schema(tool_name: str, params: Any) -> dict[str, Any]:
    """xLAM ``{"p": {"type": "int, optional", "description": ..., "default": ...}}`` to JSON Schema."""
    if not isinstance(params, dict):
        raise UnconvertibleType(f"tool {tool_name!r}: parameters must be an object, got {type(params).__name__}")
    properties: dict[str, Any] = {}
    required: list[str] = []
    for pname, spec in params.items():
        if not isinstance(spec, dict):
            raise UnconvertibleType(f"tool {tool_name!r}: parameter {pname!r} must be an object")
        type_text = spec.get("type", "Any")
        if not isinstance(type_text, str):
            raise UnconvertibleType(f"tool {tool_name!r}: parameter {pname!r} type must be a string")
        try:
            schema, optional = python_type_to_schema(type_text)
        except UnconvertibleType as exc:
            raise UnconvertibleType(f"tool {tool_name!r}, parameter {pname!r}: {exc}") from None
        for key, value in spec.items():
            if key != "type":
                schema[key] = value
        properties[pname] = schema
        if not optional and "default" not in spec:
            required.append(pname)
    return {"type": "object", "properties": properties, "required": required}


_BFCL_TYPES = {
    "dict": "object",
    "float": "number",
    "tuple": "array",
    "list": "array",
    "int": "integer",
    "str": "string",
    "bool": "boolean",
}


def normalize_json_schema(schema: Any) -> Any:
    """Rewrite BFCL's dialect into standard JSON Schema.

    Type names ``dict``, ``float``, ``tuple``, ``any``; an ``enum`` of plain values beside
    ``"type": "array"`` constrains the items; a ``"default": null`` admits null.
    """
    if isinstance(schema, list):
        return [normalize_json_schema(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "type" and isinstance(value, str):
            if value.lower() == "any":
                continue
            out[key] = _BFCL_TYPES.get(value, value)
        elif key in {"properties", "definitions", "$defs", "patternProperties"} and isinstance(value, dict):
            out[key] = {k: normalize_json_schema(v) for k, v in value.items()}
        elif key in {"items", "additionalProperties", "not", "anyOf", "oneOf", "allOf", "prefixItems"}:
            out[key] = normalize_json_schema(value)
        else:
            out[key] = value
    _enum_to_items(out)
    _null_default(out)
    return out


def _enum_to_items(schema: dict[str, Any]) -> None:
    """BFCL's ``{"type": "array", "enum": ["a", "b"]}`` means items from the enum.

    Read literally (the array itself one of "a", "b") no value could satisfy it, so the rewrite
    changes the meaning of no schema that anything satisfies.
    """
    enum = schema.get("enum")
    if schema.get("type") != "array" or not isinstance(enum, list) or any(isinstance(m, list) for m in enum):
        return
    items = schema.get("items")
    items = dict(items) if isinstance(items, dict) else {}
    if "enum" not in items:
        items["enum"] = enum
    schema["items"] = items
    del schema["enum"]


def _null_default(schema: dict[str, Any]) -> None:
    """A parameter whose default is null accepts null (BFCL's checker does; JSON Schema would not)."""
    if "default" not in schema or schema["default"] is not None:
        return
    kind = schema.get("type")
    if isinstance(kind, str) and kind != "null":
        schema["type"] = [kind, "null"]
    elif isinstance(kind, list) and "null" not in kind:
        schema["type"] = [*kind, "null"]
    enum = schema.get("enum")
    if isinstance(enum, list) and None not in enum:
        schema["enum"] = [*enum, None]


def _looks_like_json_schema(params: dict[str, Any]) -> bool:
    # xLAM maps parameter names to objects; a JSON Schema has a string "type" at its root.
    return isinstance(params.get("type"), str)


def normalize_tool(tool: Any) -> dict[str, Any]:
    """One tool of any supported dialect -> ``{"name", "description", "parameters": JSON Schema}``."""
    if not isinstance(tool, dict):
        raise UnconvertibleType(f"a tool must be an object, got {type(tool).__name__}")
    if tool.get("type") == "function" and isinstance(tool.get("function"), dict):
        tool = tool["function"]
    name = tool.get("name")
    if not isinstance(name, str) or not name:
        raise UnconvertibleType("a tool has no name")
    params = tool.get("parameters", {})
    if params is None:
        params = {}
    if isinstance(params, dict) and (_looks_like_json_schema(params) or not params):
        schema = normalize_json_schema(params) if params else {"type": "object", "properties": {}}
    else:
        schema = xlam_parameters_to_schema(name, params)
    out = {k: v for k, v in tool.items() if k not in {"name", "parameters"}}
    return {"name": name, **out, "parameters": schema}
