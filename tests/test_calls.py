import json
from collections import OrderedDict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from funreason_refine.calls import (
    MAX_CALL_TEXT,
    parse_calls,
    parses_back,
    parses_back_as_rendered,
    render_calls,
    render_value,
)
from funreason_refine.errors import CallSyntaxError
from funreason_refine.record import FunctionCall


class Float64(float):  # as numpy's float64: a float that prints as something else
    def __repr__(self):
        return f"np.float64({float(self)!r})"


class Name(str):
    pass


def test_render_matches_the_papers_syntax():
    calls = [
        FunctionCall(name="get_weather", arguments={"city": "Paris", "days": 3, "metric": True, "extra": None}),
        FunctionCall(name="math.sqrt", arguments={"x": 2.5}),
    ]
    assert render_calls(calls) == '[get_weather(city="Paris", days=3, metric=True, extra=None), math.sqrt(x=2.5)]'


@pytest.mark.parametrize(
    "value",
    [
        'it\'s "quoted"\n\ttab',
        "München ☃",
        "",
        0,
        -7,
        10**30,
        1.5,
        -0.25,
        1e-9,
        [1, [2, {"a": None}]],
        {"k": [True, False]},
        {},
        [],
    ],
)
def test_values_round_trip_exactly(value):
    call = FunctionCall(name="f", arguments={"v": value})
    (back,) = parse_calls(render_calls([call]))
    assert back.arguments == {"v": value}
    assert type(back.arguments["v"]) is type(value)


def test_empty_call_list_round_trips():
    assert render_calls([]) == "[]"
    assert parse_calls("[]") == []


def test_tuples_from_model_output_become_lists():
    (call,) = parse_calls("[f(point=(1, 2))]")
    assert call.arguments == {"point": [1, 2]}


@pytest.mark.parametrize(
    "text",
    [
        "[__import__('os').system('echo pwned')]",
        "[f(x=__import__('os'))]",
        "[f(x=open('/etc/passwd').read())]",
        "[(lambda: 1)()]",
        "[f(x=[i for i in range(3)])]",
        "[f(x=f'{1+1}')]",
        "[f(x=1 if True else 2)]",
        "[f(1)]",
        "[f(**{'a': 1})]",
        "[f(x={1, 2})]",
        "[f(x=1j)]",
        "[f(x=b'bytes')]",
        "[getattr(f, 'x')()]",
        "f(x=1)",
        "[f(x=1), 2]",
        "[f(x=1, x=2)]",
        "[f(x=1e999)]",
        "[f(x={1: 'a'})]",
        "[f(x=",
        "",
    ],
)
def test_hostile_or_malformed_text_is_rejected_without_evaluation(text, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(CallSyntaxError):
        parse_calls(text)
    assert list(tmp_path.iterdir()) == []


def test_deeply_nested_or_huge_text_is_rejected_not_crashing():
    with pytest.raises(CallSyntaxError):
        parse_calls("[f(x=" + "[" * 100_000 + "]" * 100_000 + ")]")
    with pytest.raises(CallSyntaxError, match="over"):
        parse_calls("[f(x='" + "a" * MAX_CALL_TEXT + "')]")


@pytest.mark.parametrize(
    "call, message",
    [
        (FunctionCall(name="get weather", arguments={}), "function name"),
        (FunctionCall(name="f", arguments={"max-results": 1}), "parameter name"),
        (FunctionCall(name="f", arguments={"class": 1}), "parameter name"),
        (FunctionCall(name="f", arguments={"x": float("nan")}), "literal"),
    ],
)
def test_unrenderable_calls_say_why(call, message):
    with pytest.raises(CallSyntaxError, match=message):
        render_calls([call])


@pytest.mark.parametrize(
    "value", [object(), (1, 2), {1, 2}, {1: "a"}, pytest.param(10**5000, id="int-over-4300-digits")]
)
def test_render_value_rejects_non_json(value):
    with pytest.raises(CallSyntaxError):
        render_value(value)


class Renamed(str):  # formats as another name
    def __format__(self, spec):
        return "g"


@pytest.mark.parametrize(
    "call",
    [
        FunctionCall.model_construct(name=Renamed("f"), arguments={}),
        FunctionCall.model_construct(name="f", arguments={Renamed("k"): 1}),
    ],
)
def test_names_are_str_exactly(call):
    with pytest.raises(CallSyntaxError, match="not a Python identifier"):
        render_calls([call])


@pytest.mark.parametrize("value", [Float64(1.5), Name("x"), OrderedDict(a=1), [Name("x")], {"k": Float64(2.0)}])
def test_render_value_takes_json_types_exactly_not_their_subclasses(value):
    with pytest.raises(CallSyntaxError, match="is not JSON"):
        render_value(value)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(
    arguments=st.dictionaries(
        st.from_regex(r"[a-z_][a-z0-9_]{0,10}", fullmatch=True).filter(
            lambda k: not __import__("keyword").iskeyword(k)
        ),
        json_values,
        max_size=5,
    )
)
def test_any_json_arguments_round_trip(arguments):
    call = FunctionCall(name="tool.run", arguments=arguments)
    text = render_calls([call])
    try:
        (back,) = parse_calls(text)
    except CallSyntaxError:
        # Only a lone surrogate (legal in JSON, not encodable as UTF-8) may fail to parse back.
        assert any("\ud800" <= ch <= "\udfff" for ch in text)
        return
    import json

    assert json.dumps(back.arguments, sort_keys=True) == json.dumps(arguments, sort_keys=True)


python_literals = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text() | st.binary(max_size=3),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.tuples(inner, inner)
        | st.dictionaries(st.text(max_size=3) | st.integers(), inner, max_size=3)
    ),
    max_leaves=12,
)


@settings(max_examples=400, deadline=None)
@given(python_literals)
def test_the_literal_fast_paths_agree_with_literal_eval(value):
    """Plain constants, and lists and string-keyed dicts of them, skip literal_eval; nothing may differ."""
    import ast

    from funreason_refine.calls import _literal, _to_json

    node = ast.parse(repr(value), mode="eval").body

    def outcome(f):
        try:
            return "ok", f()
        except (CallSyntaxError, ValueError, TypeError):  # what _literal turns into CallSyntaxError
            return "error", None

    fast = outcome(lambda: _literal(node, "f", "x"))
    slow = outcome(lambda: _to_json(ast.literal_eval(node), "f(x=...)"))
    assert fast[0] == slow[0]
    assert json.dumps(fast[1]) == json.dumps(slow[1])  # strict: True is not 1, 1 is not 1.0


@pytest.mark.parametrize("text", ["1e999", "[1, 1e999]", "{'a': -1e999}", "{'a': 1e999}", "{1: 2}", "{(1,): 2}"])
def test_infinite_or_non_json_literals_are_refused_on_every_path(text):
    with pytest.raises(CallSyntaxError):
        parse_calls(f"[f(x={text})]")


# --- the format stage's speed trick: texts known to parse back without parsing them ---

names = st.from_regex(r"[a-z_][a-z0-9_]{0,6}", fullmatch=True) | st.sampled_from(
    ["ﬁle", "café", "ℌ", "__debug__", "match", "_", "x²", "Ⅸ", "ａ"]  # NFKC-changed, non-ASCII, soft keywords
)
odd_values = st.sampled_from(["\ud800", "é", "\u2028", "\x00", "\\", '"', "(", "[[[", "{"]) | st.builds(
    lambda depth, kind: json.loads(kind[0] * depth + "1" + kind[1] * depth),
    st.integers(1, 5) | st.integers(185, 205),
    st.sampled_from([("[", "]"), ('{"k": ', "}")]),
)  # nested lists or dicts, around the parser's nesting limit


# Refused by render_value; and True, of bool, the one subclass of int that JSON has and that renders as itself.
subclassed = st.sampled_from([Float64(1.5), Name("x"), OrderedDict(a=1), True])


def _renders(calls):
    try:
        return render_calls(calls)
    except CallSyntaxError:
        return None


@settings(max_examples=500, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.lists(names, min_size=1, max_size=2).map(".".join),
            st.dictionaries(names, json_values | odd_values | subclassed, max_size=4),
        ),
        max_size=3,
    )
)
def test_texts_known_to_parse_back_do_parse_back(pairs):
    calls = [FunctionCall(name=name, arguments=arguments) for name, arguments in pairs]
    text = _renders(calls)
    if text is not None and parses_back_as_rendered(text):
        assert parses_back(text, calls)


@pytest.mark.parametrize(
    "call, known",
    [
        (FunctionCall(name="get_weather", arguments={"city": "Paris", "days": [1, 2], "opts": {"a": None}}), True),
        (FunctionCall(name="ﬁle", arguments={}), False),  # Python reads the name as "file"
        (FunctionCall(name="f", arguments={"x": "\ud800"}), False),  # not encodable as UTF-8
        (FunctionCall(name="f", arguments={"x": json.loads("[" * 199 + "]" * 199)}), False),  # over 200 levels
        (FunctionCall(name="f", arguments={"x": "München"}), False),  # fine, but only the parser says so
        (FunctionCall(name="f", arguments={"x": json.loads('{"k": ' * 199 + "1" + "}" * 199)}), False),
        (FunctionCall(name="f", arguments={"x": "a" * (MAX_CALL_TEXT - 8)}), False),  # one over MAX_CALL_TEXT
    ],
)
def test_only_plain_texts_skip_the_parse(call, known):
    text = render_calls([call])
    assert parses_back_as_rendered(text) is known
    if known:
        assert parses_back(text, [call])


def test_a_lone_surrogate_in_the_calls_says_why_no_target_can_hold_it():
    # It said "not valid call syntax: 'utf-8' codec can't encode character ...".
    from funreason_refine.calls import parse_calls
    from funreason_refine.errors import CallSyntaxError

    with pytest.raises(CallSyntaxError) as caught:
        parse_calls('[get_weather(city="Oslo\udc00")]')
    assert "lone surrogate ('\\udc00'), which no UTF-8 text can hold" in str(caught.value)
