import pytest

from funreason_refine.readers.tool_schema import (
    UnconvertibleType,
    normalize_json_schema,
    normalize_tool,
    python_type_to_schema,
    xlam_parameters_to_schema,
)

ARRAY_OF_INT = {"type": "array", "items": {"type": "integer"}}


@pytest.mark.parametrize(
    "text, schema, optional",
    [
        ("str", {"type": "string"}, False),
        ("int", {"type": "integer"}, False),
        ("float", {"type": "number"}, False),
        ("bool", {"type": "boolean"}, False),
        ("int, optional", {"type": "integer"}, True),
        ("str, default='x'", {"type": "string"}, True),
        ("float, optional, default 0.5", {"type": "number"}, True),
        ("List[int]", ARRAY_OF_INT, False),
        ("list", {"type": "array"}, False),
        ("List[int], optional", ARRAY_OF_INT, True),
        ("Dict[str, Any]", {"type": "object"}, False),
        ("Dict[str, int]", {"type": "object", "additionalProperties": {"type": "integer"}}, False),
        ("List[Dict[str, Any]]", {"type": "array", "items": {"type": "object"}}, False),
        ("Optional[str]", {"anyOf": [{"type": "string"}, {"type": "null"}]}, True),
        ("Union[int, float]", {"anyOf": [{"type": "integer"}, {"type": "number"}]}, False),
        ("int | None", {"anyOf": [{"type": "integer"}, {"type": "null"}]}, False),
        (
            "Tuple[float, float]",
            {"type": "array", "prefixItems": [{"type": "number"}, {"type": "number"}], "minItems": 2, "maxItems": 2},
            False,
        ),
        ("Tuple[int, ...]", ARRAY_OF_INT, False),
        ("Set[str]", {"type": "array", "items": {"type": "string"}, "uniqueItems": True}, False),
        ("Literal['a', 'b']", {"enum": ["a", "b"]}, False),
        ("Any", {}, False),
        ("typing.List[str]", {"type": "array", "items": {"type": "string"}}, False),
        ("string", {"type": "string"}, False),
    ],
)
def test_python_types_convert(text, schema, optional):
    assert python_type_to_schema(text) == (schema, optional)


@pytest.mark.parametrize(
    "text",
    [
        "Callable[[int], int]",
        "Callable",
        "pd.DataFrame",
        "np.ndarray",
        "datetime",
        "List[Callable]",
        "",
        "int,",
        "List[",
        "x" * 600,
    ],
)
def test_unconvertible_types_raise_with_the_type_named(text):
    with pytest.raises(UnconvertibleType):
        python_type_to_schema(text)


def test_converted_schema_is_a_copy_not_the_cache():
    schema, _ = python_type_to_schema("List[int]")
    schema["items"]["type"] = "string"
    assert python_type_to_schema("List[int]")[0] == ARRAY_OF_INT


def test_xlam_parameters_get_required_from_optional_and_default():
    schema = xlam_parameters_to_schema(
        "f",
        {
            "a": {"type": "str", "description": "A"},
            "b": {"type": "int, optional", "description": "B"},
            "c": {"type": "int", "description": "C", "default": 3},
        },
    )
    assert schema == {
        "type": "object",
        "required": ["a"],
        "properties": {
            "a": {"type": "string", "description": "A"},
            "b": {"type": "integer", "description": "B"},
            "c": {"type": "integer", "description": "C", "default": 3},
        },
    }


def test_unconvertible_parameter_names_tool_and_parameter():
    with pytest.raises(UnconvertibleType, match="tool 'apply', parameter 'f'"):
        xlam_parameters_to_schema("apply", {"f": {"type": "Callable[[int], int]"}})


def test_bfcl_dialect_becomes_json_schema():
    bfcl = {
        "type": "dict",
        "properties": {
            "x": {"type": "float"},
            "pair": {"type": "tuple", "items": {"type": "integer"}},
            "anything": {"type": "any", "description": "d"},
            "opts": {"type": "dict", "properties": {"n": {"type": "integer"}}},
        },
        "required": ["x"],
    }
    assert normalize_json_schema(bfcl) == {
        "type": "object",
        "required": ["x"],
        "properties": {
            "x": {"type": "number"},
            "pair": {"type": "array", "items": {"type": "integer"}},
            "anything": {"description": "d"},
            "opts": {"type": "object", "properties": {"n": {"type": "integer"}}},
        },
    }


def test_bfcl_enum_beside_an_array_type_constrains_its_items():
    schema = {"type": "array", "items": {"type": "string"}, "enum": ["view", "trust"], "default": []}
    assert normalize_json_schema(schema) == {
        "type": "array",
        "items": {"type": "string", "enum": ["view", "trust"]},
        "default": [],
    }
    whole_arrays = {"type": "array", "enum": [[1, 2], [3]]}  # standard JSON Schema: left as it is
    assert normalize_json_schema(whole_arrays) == whole_arrays


@pytest.mark.parametrize(
    "schema, normalized",
    [
        ({"type": "string", "default": None}, {"type": ["string", "null"], "default": None}),
        (
            {"type": "string", "enum": ["day", "week"], "default": None},
            {"type": ["string", "null"], "enum": ["day", "week", None], "default": None},
        ),
        ({"type": ["integer", "null"], "default": None}, {"type": ["integer", "null"], "default": None}),
        ({"type": "string", "default": "x"}, {"type": "string", "default": "x"}),
        ({"type": "string"}, {"type": "string"}),
    ],
)
def test_a_null_default_admits_null(schema, normalized):
    assert normalize_json_schema(schema) == normalized


def test_openai_function_wrapper_is_unwrapped():
    tool = normalize_tool(
        {
            "type": "function",
            "function": {"name": "f", "description": "d", "parameters": {"type": "object", "properties": {}}},
        }
    )
    assert tool == {"name": "f", "description": "d", "parameters": {"type": "object", "properties": {}}}


@pytest.mark.parametrize("tool", [{"description": "no name"}, "not a dict", {"name": "f", "parameters": ["x"]}])
def test_unusable_tools_raise(tool):
    with pytest.raises(UnconvertibleType):
        normalize_tool(tool)
