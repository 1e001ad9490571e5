"""What the dataset audits read of a kept record, reduced where it was refined to a few small values.

A record's features are computed in the process that refined it (a worker, for large inputs),
so that the main process only looks them up; the same function of a kept line read back
(resume, a merge of shards) gives the same features, from the same fields.
"""

from __future__ import annotations

import hashlib
import json
import math
from array import array
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

import orjson

from funreason_refine.audit.words import words

if TYPE_CHECKING:
    from funreason_refine.audit.evalsets import EvalIndex
    from funreason_refine.audit.settings import AuditSettings
    from funreason_refine.record import Record

NUM_PERM = 32  # MinHash slots: enough for LSH bands that find 98% of the pairs at 0.8 (candidates are verified)
SEED = 2505_20192  # fixed: signatures of the same query agree in every process and every run
CALL_KINDS = ("text", "no_call", "one_call", "parallel", "several_functions")


class Audited(NamedTuple):
    """The parts of a record the audits read."""

    query: str
    calls: list[dict[str, Any]] | None  # each call's name and arguments; None for a text answer
    text: str | None  # the text answer, when the answer is text


def audited(fields: Mapping[str, Any]) -> Audited:
    """The one place the audits read a record: ``fields`` is a kept line as parsed JSON, or a
    record's own fields (``record.__dict__``), which have the same names (its calls are models)."""
    query = fields.get("query")
    answer = fields.get("answer")
    query = query if isinstance(query, str) else ""
    messages = fields.get("messages")
    if messages:  # a conversation: what its user says in all its turns
        said = [_fields(m).get("content") for m in messages if _fields(m).get("role") == "user"]
        query = "\n".join(text for text in said if isinstance(text, str))
    if not isinstance(answer, list):
        return Audited(query, None, answer if isinstance(answer, str) else "")
    return Audited(query, [_fields(c) for c in answer], None)


def _fields(value: Any) -> dict[str, Any]:
    """A model's fields as its line holds them (a FunctionCall, a Message), or the parsed line's dict."""
    return value if isinstance(value, dict) else value.__dict__


def _conversation(messages: list[Any]) -> bytes:
    """A conversation as exact duplicates compare it: each message's role, text and calls, as bytes
    (CoTs and targets aside: the same conversation reasoned otherwise is still the same)."""
    parts = []
    for message in map(_fields, messages):
        answer = message.get("answer")
        calls = _canonical_calls([_fields(c) for c in answer]) if isinstance(answer, list) else b""
        text = message.get("content") if message.get("role") != "assistant" else answer
        parts.append(
            b"%s\0%s\0%s" % (str(message.get("role")).encode(), _spaced(text) if isinstance(text, str) else b"", calls)
        )
    return b"\1".join(parts)


def call_kind(calls: list[dict[str, Any]] | None) -> str:
    """The record's kind in the call mix."""
    if calls is None:
        return "text"
    if len(calls) <= 1:
        return "one_call" if calls else "no_call"
    return "parallel" if len({call["name"] for call in calls}) == 1 else "several_functions"


def turn_kinds(messages: list[Any]) -> tuple[str, ...]:
    """The call-mix kind of each assistant turn of a conversation, in order."""
    kinds = []
    for message in map(_fields, messages):
        if message.get("role") == "assistant":
            answer = message.get("answer")
            kinds.append(call_kind([_fields(c) for c in answer] if isinstance(answer, list) else None))
    return tuple(kinds)


class Features(NamedTuple):
    """A kept record as the audits see it: a tuple of plain values, cheap to send from a worker."""

    key: bytes  # the query (case and spacing aside) and the answer, hashed (8 bytes): equal keys, exact duplicates
    signature: bytes | None  # MinHash of the query's word pairs (NUM_PERM 32-bit slots); None without words
    pairs: bytes | None  # the distinct word pairs of the query, hashed (64-bit each): their exact Jaccard similarity
    kind: str  # one of CALL_KINDS
    contamination: tuple[float, int, int] | None  # (overlap, eval set, item) when over the threshold
    turns: tuple[str, ...] = ()  # the kind of each assistant turn of a conversation; () for a single turn


class FeatureReader:
    """Computes the features of kept records; built from the ``[audit]`` table in every process that
    refines (it reads the eval sets once there)."""

    def __init__(self, settings: AuditSettings):
        self.evals: EvalIndex | None = None
        if settings.eval_sets:
            from funreason_refine.audit.evalsets import EvalIndex

            self.evals = EvalIndex.load(settings)
        self.near = settings.near

    def __call__(self, record: Record) -> Features:
        return self.of(record.__dict__)

    def of(self, fields: Mapping[str, Any]) -> Features:
        query, calls, text = audited(fields)
        key = hashlib.blake2b(_spaced(query), digest_size=8)
        key.update(b"\0" + (_canonical_calls(calls) if calls is not None else _spaced(text or "")))
        if fields.get("messages"):  # a conversation: the same whole conversation, not only its last turn
            key.update(b"\1" + _conversation(fields["messages"]))
        contamination = signature = pairs = None
        if self.evals is not None or self.near:  # words only where they are compared
            said = words(query)
            contamination = self.evals.match(said) if self.evals is not None else None
            signature, pairs = sketch(said) if self.near else (None, None)
        turns = turn_kinds(fields["messages"]) if fields.get("messages") else ()
        return Features(key.digest(), signature, pairs, call_kind(calls), contamination, turns)

    def of_line(self, line: bytes) -> Features:
        """The features of a kept line (as the run folder holds it)."""
        return self.of(json.loads(line))  # not orjson: it reads integers beyond 64 bits as floats


def _spaced(text: str) -> bytes:
    """Text as exact duplicates compare it: case folded, runs of white space as one space (a third of
    the time ``words`` takes, on every kept record)."""
    return " ".join(text.casefold().split()).encode("utf-8", "surrogatepass")  # lone surrogates: legal JSON


def sketch(said: list[str]) -> tuple[bytes | None, bytes | None]:
    """The query's word pairs (the word itself for a one-word query) as a MinHash signature (NUM_PERM
    32-bit slots) and as their distinct 64-bit hashes; (None, None) for a query without words."""
    import rensa

    if not said:
        return None, None
    pairs = list(map(" ".join, zip(said, said[1:], strict=False))) or said
    minhash = rensa.RMinHash(NUM_PERM, SEED)
    minhash.update(pairs)
    hashes = rensa.RMinHash.hash_token_sets([pairs])[0]  # rensa's token hash: the same in every process
    return array("I", minhash.digest()).tobytes(), array("Q", set(hashes)).tobytes()


# Sorted keys, non-string keys as JSON writes them: a record's arguments and the same arguments read
# back from its line give the same bytes (NaN is null in both). orjson refuses integers beyond 64 bits
# and lone surrogates; both ways then take the json module's path, where _as_written makes
# non-finite floats null as the run folder writes them.
_SORTED = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS


def _canonical_calls(calls: list[dict[str, Any]]) -> bytes:
    """The calls as bytes that do not depend on key order or on the order of parallel calls."""
    if len(calls) == 1:
        return _dumps(calls[0])
    return b"\0".join(sorted([_dumps(call) for call in calls]))


def _dumps(value: Any) -> bytes:
    try:
        return orjson.dumps(value, option=_SORTED)
    except (orjson.JSONEncodeError, TypeError):
        plain = _as_written(value)
        try:
            return json.dumps(plain, sort_keys=True, ensure_ascii=True, default=str).encode()
        except TypeError:  # keys of mixed types cannot be sorted
            return json.dumps(plain, ensure_ascii=True, default=str).encode()


def _as_written(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _as_written(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_as_written(item) for item in value]
    return value
