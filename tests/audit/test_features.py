"""What the audits read of a record is the same whether it is read where the record was refined or
from its line in the run folder (a resume, a merge of shards): or a resumed run would drop others."""

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from funreason_refine.audit.features import FeatureReader, call_kind
from funreason_refine.audit.index import lsh_bands
from funreason_refine.audit.settings import AuditSettings
from funreason_refine.audit.words import words
from funreason_refine.record import FunctionCall, Record, Source
from funreason_refine.run_folder import to_json_line
from tests.conftest import write_jsonl

odd_text = st.text(max_size=30) | st.sampled_from(["\ud800 lone", "Straße", "ﬁle №1", "   "])
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=2**64, max_value=2**80)
    | st.floats(allow_nan=True, allow_infinity=True)
    | odd_text
)
# Keys without lone surrogates: the run folder writes those as U+FFFD (orjson), so a key that holds
# one is not the same key read back; values keep them (escaped).
keys = st.text(max_size=12) | st.sampled_from(["Straße", "ﬁle"])
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=3),
    max_leaves=10,
)
calls = st.lists(
    st.builds(FunctionCall, name=st.sampled_from(["f", "g"]), arguments=st.dictionaries(keys, values, max_size=3)),
    max_size=3,
)


def reader(tmp_path):
    eval_set = write_jsonl(
        tmp_path / "eval.jsonl", [{"id": "e", "query": "straße near the ﬁle", "tools": "[]", "answers": "[]"}]
    )
    return FeatureReader(AuditSettings(near_duplicates=True, eval_sets=[eval_set], contamination_ngram=2))


@settings(max_examples=150, deadline=None)
@given(query=odd_text, answer=calls | odd_text)
def test_a_record_and_its_line_give_the_same_features(tmp_path_factory, query, answer):
    features = reader(tmp_path_factory.mktemp("eval"))
    record = Record(index=3, id="r", source=Source(file="f", line=1), query=query, tools=[], answer=answer)
    line = json.loads(to_json_line(record))
    assert features(record) == features.of(line)


def test_normalisation_and_call_kinds():
    assert words("What's the WEATHER in ﬁle-town?") == words("what s the weather in file town")  # near, contamination
    f, f1, g = {"name": "f", "arguments": {}}, {"name": "f", "arguments": {"a": 1}}, {"name": "g", "arguments": {}}
    assert call_kind(None) == "text" and call_kind([]) == "no_call" and call_kind([f]) == "one_call"
    assert call_kind([f, f1]) == "parallel" and call_kind([f, g]) == "several_functions"


def test_lsh_bands_find_a_pair_at_the_threshold_at_least_95_percent_of_the_time():
    for threshold in (0.5, 0.7, 0.8, 0.9, 1.0):
        bands, rows = lsh_bands(threshold)
        assert bands * rows <= 32 and 1 - (1 - threshold**rows) ** bands >= 0.95
    assert lsh_bands(0.8) == (8, 4)


def test_a_conversation_and_its_line_give_the_same_features_and_differ_from_its_last_turn(tmp_path):
    from funreason_refine.record import Message

    features = reader(tmp_path)
    paris = FunctionCall(name="get_weather", arguments={"city": "Paris"})
    messages = [
        Message(role="user", content="Weather in Paris?"),
        Message(role="assistant", answer=[paris], call_ids=["c1"], cot="look it up"),
        Message(role="tool", call_id="c1", content="sunny"),
        Message(role="user", content="Thanks"),
        Message(role="assistant", answer="You're welcome."),
    ]
    conversation = Record(
        index=0,
        id="c",
        source=Source(file="f", line=1),
        query="Thanks",
        tools=[],
        answer="You're welcome.",
        messages=messages,
        turn=1,
    )
    last_turn = Record(
        index=1, id="t", source=Source(file="f", line=2), query="Thanks", tools=[], answer="You're welcome."
    )
    assert features(conversation) == features.of(json.loads(to_json_line(conversation)))
    assert features(conversation).key != features(last_turn).key
    rethought = conversation.model_copy(
        update={"messages": [*messages[:1], messages[1].model_copy(update={"cot": "x"}), *messages[2:]]}
    )
    assert features(rethought).key == features(conversation).key  # CoTs aside
