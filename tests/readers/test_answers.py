"""Tool lists are decoded element by element (each tool's own text keys the tool cache)."""

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from funreason_refine.readers.answers import _elements, parse_tools

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(), children, max_size=3),
    max_leaves=10,
)


@given(
    st.lists(json_values, max_size=5),
    st.sampled_from([(",", ":"), (", ", ": "), (" ,\n", " : ")]),
    st.sampled_from(["", " ", "\n\t "]),
)
def test_elements_decode_like_json_loads_and_keep_each_element_text(values, separators, pad):
    text = pad + json.dumps(values, separators=separators) + pad
    elements = _elements(text)
    assert [obj for obj, _ in elements] == json.loads(text)
    assert [json.loads(part) for _, part in elements] == values


@pytest.mark.parametrize(
    "text", ["", "[", "[1,", "[1 2]", "[1]x", "[1,]", '{"name": "f"}', '"[1]"', "[1]]", "[NaN]", "[1, -Infinity]"]
)
def test_what_is_not_a_json_array_is_left_to_json_loads(text):
    assert _elements(text) is None


def test_a_tool_list_that_is_not_json_names_the_field():
    from funreason_refine.readers.answers import FieldError

    with pytest.raises(FieldError, match="field 'tools' is a string but not JSON"):
        parse_tools('[{"name": "f"},', [])


def test_equal_tools_share_one_normalised_dict_whatever_the_spacing():
    one = parse_tools('[{"name": "f", "parameters": {"x": {"type": "int"}}}]', [])
    two = parse_tools('[{"name": "f", "parameters": {"x": {"type": "int"}}}]', [])
    three = parse_tools([{"name": "f", "parameters": {"x": {"type": "int"}}}], [])
    assert one[0] is two[0]
    assert three[0] == one[0]
    assert one[0]["parameters"]["properties"]["x"] == {"type": "integer"}
