"""Property: a chat read and exported in its own format is the chat it was, up to what
docs/reading.md says is normalised, or it is quarantined naming the message and the field.

``meaning`` is what these tests compare: written from docs/reading.md, not from the readers, it
keeps every message in its place with its role, name, content (parts as given), CoT, calls with
their ids, refusal and results, and forgets only what the document lists as normalised.
"""

import json
import re
from pathlib import Path

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from funreason_refine.export.formats import to_row
from funreason_refine.readers import InputStream
from funreason_refine.record import Quarantined
from funreason_refine.run_folder import to_json_line

ANY = object()  # a value the reader fills in (an id none was given for): any value matches
WEATHER = {
    "name": "get_weather",
    "description": "Weather now.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
THINK = re.compile(r"^\s*<think>(.*?)</think>\s*", re.DOTALL)

words = st.text(alphabet="abcxyz ,.?!'\n", min_size=1, max_size=10).filter(lambda t: t.strip())
names = st.none() | st.sampled_from(["ana", "bot", "get_weather"])
good_ids = st.text(alphabet="abc_123", min_size=1, max_size=5) | st.integers(-3, 10**12) | st.floats(-1e6, 1e6)
bad_ids = st.booleans() | st.dictionaries(st.just("a"), st.integers(), max_size=1) | st.lists(st.integers(), max_size=1)
ids = st.none() | good_ids | good_ids | bad_ids


def parts_of(texts):
    return st.sampled_from(["strings", "text parts"]).map(
        lambda kind: list(texts) if kind == "strings" else [{"type": "text", "text": t} for t in texts]
    )


IMAGES = [
    {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
    {"type": "image", "text": None, "image": "cat.png"},  # Hugging Face datasets' mixed parts
]


@st.composite
def content(draw, images=True):
    """A text, a list of strings or of text parts, maybe with an image, or (rarely) a text part with null text."""
    kind = draw(st.sampled_from(["text", "text", "parts", "image", "null text"] if images else ["text", "parts"]))
    if kind == "text":
        return draw(words)
    parts = draw(parts_of(draw(st.lists(words, min_size=1, max_size=3))))
    if kind == "image":
        parts = [*parts, draw(st.sampled_from(IMAGES))]
        if isinstance(parts[0], str):  # an image beside plain strings would not be a list of parts
            parts = [{"type": "text", "text": p} for p in parts[:-1]] + parts[-1:]
    if kind == "null text":
        parts = [*parts, {"type": "text", "text": None}]
    return parts


def said(role, text, name):
    return {"role": role, "content": text, **({"name": name} if name else {})}


@st.composite
def cot_and_text(draw, text):
    """An assistant's text with its CoT: none, a leading think block, or reasoning_content."""
    where = draw(st.sampled_from(["none", "think", "reasoning_content"]))
    cot = draw(words)
    if where == "think":
        return {}, f"<think>{cot}</think>{text}"
    return ({"reasoning_content": cot} if where == "reasoning_content" else {}), text


@st.composite
def assistant_turn(draw, turn):
    """An assistant message and the results of its calls (in any order)."""
    kind = draw(st.sampled_from(["text", "calls", "calls", "legacy", "refusal", "empty tool_calls"]))
    name = draw(names)
    if kind == "refusal":
        extra, text = draw(cot_and_text(""))
        return [{"role": "assistant", "content": text or None, "refusal": draw(words), **extra}], []
    if kind in ("text", "empty tool_calls"):
        extra, text = draw(cot_and_text(draw(words)))
        message = {"role": "assistant", "content": text, **extra, **({"name": name} if name else {})}
        if draw(st.booleans()):
            message["content"] = [{"type": "text", "text": text}]
        return [message | ({"tool_calls": []} if kind == "empty tool_calls" else {})], []
    n = 1 if kind == "legacy" else draw(st.integers(1, 3))
    made = [(draw(ids) if kind != "legacy" else None, {"city": draw(words)}) for _ in range(n)]
    functions = [{"name": "get_weather", "arguments": json.dumps(a)} for _, a in made]
    extra, text = draw(cot_and_text(draw(st.none() | words) or ""))
    message = {"role": "assistant", "content": text or None, **extra, **({"name": name} if name else {})}
    if kind == "legacy":
        message["function_call"] = functions[0]
    else:
        calls = [{"id": i, "type": "function", "function": f} for (i, _), f in zip(made, functions, strict=True)]
        shape = draw(st.sampled_from(["list", "list", "json text", "object"]))
        message["tool_calls"] = {"list": calls, "json text": json.dumps(calls), "object": calls[0]}[shape]
        made = made[:1] if shape == "object" else made
    results = []
    for i, _ in made:
        body = draw(words | st.just({"temperature": 21}))
        if kind == "legacy":
            results.append({"role": "function", "name": "get_weather", "content": body})
        else:
            results.append({"role": "tool", "content": body, **({"tool_call_id": i} if i is not None else {})})
    if all("tool_call_id" in r for r in results):
        results = draw(st.permutations(results))
    return [message], results


@st.composite
def openai_chats(draw):
    messages = [said("system", draw(words), None)] if draw(st.booleans()) else []
    for turn in range(draw(st.integers(1, 3))):
        if turn and draw(st.integers(0, 4)) == 0:
            messages.append(said("system", draw(words), None))  # a system message in the middle
        messages.append(said("user", draw(content()), draw(names)))
        assistant, results = draw(assistant_turn(turn))
        messages += assistant + results
        if results and draw(st.booleans()):
            messages.append({"role": "assistant", "content": draw(words)})
    return {"id": "c", "tools": [{"type": "function", "function": WEATHER}], "messages": messages}


# --- what a chat means ----------------------------------------------------------------------------


def text_of(value):
    if isinstance(value, list):
        return "\n".join(
            p if isinstance(p, str) else p.get("text") or p.get("refusal") or ""
            for p in value
            if isinstance(p, str) or p.get("type") in ("text", "refusal")
        )
    return value or ""


def calls_of(message):
    calls = message.get("tool_calls")
    if message.get("function_call") is not None:
        calls = [{"function": message["function_call"]}]
    calls = json.loads(calls) if isinstance(calls, str) else calls
    return [calls] if isinstance(calls, dict) else calls


def assistant_meaning(message, with_ids):
    text = text_of(message.get("content"))
    match = THINK.match(text)
    cot = message.get("reasoning_content") or (match.group(1) if match else None)
    rest = (text[match.end() :] if match else text).strip()
    parts = message.get("content") if isinstance(message.get("content"), list) else None
    if parts and THINK.fullmatch(text_of(parts[:1])) and not THINK.match(text_of(parts[1:])):
        parts = parts[1:]  # the think part an export writes before parts that lacked the CoT
    meaning = {"cot": (cot or "").strip() or None, "name": message.get("name"), "parts": parts}
    if message.get("refusal"):
        return {**meaning, "refusal": message["refusal"]}
    calls = calls_of(message)
    if not calls:
        return {**meaning, "text": rest}
    found = [(c["function"]["name"], json.loads(c["function"]["arguments"])) for c in calls]
    call_ids = [c.get("id", None) if with_ids and c.get("id") is not None else ANY for c in calls]
    return {**meaning, "calls": found, "ids": call_ids, "beside": rest or None}


def meaning(chat, with_ids=True):
    out = []
    for message in chat["messages"]:
        role = "tool" if message["role"] == "function" else message["role"]
        if role == "assistant":
            out.append({"role": role, **assistant_meaning(message, with_ids)})
            continue
        body = message.get("content")
        item = {"role": role, "content": json.dumps(body, ensure_ascii=False) if isinstance(body, dict) else body}
        item["name"] = message.get("name")
        if role == "tool":
            given = message.get("tool_call_id")
            item["id"] = given if given is not None else ANY
        out.append(item)
    return out


def same(a, b):
    if a is ANY or b is ANY:
        return True
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def unreadable(chat):
    """The fields a reader must quarantine: call ids that are no text nor number, text parts without text."""
    found = set()
    for i, message in enumerate(chat["messages"]):
        for j, part in enumerate(message.get("content") if isinstance(message.get("content"), list) else []):
            if isinstance(part, dict) and part.get("type") == "text" and part.get("text") is None:
                found.add(f"messages[{i}].content[{j}].text")
        for j, c in enumerate((calls_of(message) if message["role"] == "assistant" else None) or []):
            if isinstance(c.get("id"), (bool, dict, list)):
                found.add(f"messages[{i}].tool_calls[{j}].id")
        if isinstance(message.get("tool_call_id"), (bool, dict, list)):
            found.add(f"messages[{i}].tool_call_id")
    return found


def read(obj, fmt):
    """One input object through the reader, as a pipeline reads it (the stream's own conversion)."""
    stream = InputStream(Path(__file__), fmt)  # any file: only convert() is used
    parsed = json.loads(json.dumps(obj))  # what a JSONL line gives back
    return stream.convert((0, 1, parsed, ""))


def round_trip(chat, fmt):
    """(read item, exported row or None)."""
    item = read(chat, fmt)
    if isinstance(item, Quarantined):
        return item, None
    return item, to_row(json.loads(to_json_line(item)), fmt)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(chat=openai_chats())
def test_openai_chats_come_back_as_they_were_or_are_quarantined_naming_the_field(chat):
    item, row = round_trip(chat, "openai")
    bad = unreadable(chat)
    if isinstance(item, Quarantined):
        event(f"quarantined: {item.field.split('.', 1)[-1]}")
        assert item.field in bad, (item.field, item.error, bad)
        assert item.error.startswith(item.field)
        return
    assert not bad, bad
    single = not item.messages
    # a single-turn record keeps no call ids: no result refers to them
    event("single-turn record" if single else "conversation")
    expected, got = meaning(chat, with_ids=not single), meaning(row)
    assert same(expected, got), json.dumps([expected, got], default=lambda _: "ANY", indent=1)
    assert row["tools"] == chat["tools"]
    results = [m for m in row["messages"] if m["role"] == "tool"]
    for result in results:  # each result answers a call that was made before it
        made = [i for m in row["messages"] for i in (c["id"] for c in m.get("tool_calls") or [])]
        assert any(same(result["tool_call_id"], i) for i in made)


# --- ShareGPT -----------------------------------------------------------------------------------


def call_json(city):
    return {"name": "get_weather", "arguments": {"city": city}}


def glaive(calls):
    """Calls as Glaive's data writes them: the arguments' JSON text in single quotes, then its end marker."""
    return "".join(
        f'<functioncall> {{"name": "{c["name"]}", "arguments": \'{json.dumps(c["arguments"])}\'}} <|endoftext|>'
        for c in calls
    )


GLAIVE_CALL = re.compile(r"<functioncall> \{\"name\": \"(\w+)\", \"arguments\": '(.*?)'\} <\|endoftext\|>", re.DOTALL)


@st.composite
def sharegpt_answer(draw):
    """An assistant turn's turns (gpt, function_call, or gpt with <tool_call> blocks or Glaive's
    <functioncall> calls, then the observation(s)), and its CoT as cots holds it."""
    kind = draw(st.sampled_from(["text", "function_call", "tool_call blocks", "glaive"]))
    cot = draw(st.none() | words)
    think = f"<think>{cot}</think>" if cot is not None and draw(st.booleans()) else ""
    if kind == "text":
        return [{"from": draw(st.sampled_from(["gpt", "assistant"])), "value": think + draw(words)}], cot
    made = [call_json(draw(words)) for _ in range(draw(st.integers(1, 3)))]
    if kind == "function_call":
        value = made[0] if len(made) == 1 and draw(st.booleans()) else made
        thought = f"<think>\n{cot}\n</think>\n\n" if think else ""  # LLaMA-Factory's thought words
        turns = [{"from": "function_call", "value": thought + json.dumps(value)}]
    elif kind == "glaive":
        turns = [{"from": "gpt", "value": think + draw(st.just("") | words.map(lambda t: t + "\n")) + glaive(made)}]
    else:
        blocks = "".join(f"<tool_call>\n{json.dumps(c)}\n</tool_call>" for c in made)
        turns = [{"from": "gpt", "value": think + draw(st.just("") | words.map(lambda t: t + "\n")) + blocks}]
    results = [draw(words | st.just({"temperature": 21})) for _ in made]
    results = [r if isinstance(r, str) else json.dumps(r) for r in results]
    tag = draw(st.sampled_from(["observation", "tool"]))
    if len(made) > 1 and draw(st.booleans()):
        items = [json.loads(r) if r.startswith("{") else r for r in results]
        turns.append({"from": tag, "value": json.dumps(items)})
    else:
        turns += [{"from": tag, "value": r} for r in results]
    return turns, cot


@st.composite
def sharegpt_chats(draw):
    row = {"id": "s", "tools": json.dumps([WEATHER]), "conversations": []}
    if draw(st.booleans()):
        row["system"] = draw(words)
    if draw(st.booleans()):
        row["conversations"].append({"from": "system", "value": draw(words)})
    cots = []
    for turn in range(draw(st.integers(1, 3))):
        if turn and draw(st.integers(0, 4)) == 0:
            row["conversations"].append({"from": "system", "value": draw(words)})
        human = draw(words | st.lists(words, min_size=1, max_size=2))
        row["conversations"].append({"from": draw(st.sampled_from(["human", "user"])), "value": human})
        turns, cot = draw(sharegpt_answer())
        row["conversations"] += turns
        cots.append(cot)
    if any(cots):
        row["cots"] = [c or "" for c in cots]
    return row


def sharegpt_meaning(row):
    """Turns with their tags by meaning, observations as lists of results, CoTs with their turns."""
    turns = list(row["conversations"])
    system = row.get("system")
    if not system and turns and turns[0]["from"] == "system":
        system = turns.pop(0)["value"]  # a leading system turn is the record's own system prompt
    cots = list(row.get("cots") or ([row["cot"]] if row.get("cot") else []))
    out: list = [{"system": system or None}]
    for turn in turns:
        tag = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "tool": "tool"}
        role = tag.get(turn["from"], turn["from"].replace("observation", "tool").replace("function_call", "assistant"))
        if role == "tool":
            last = out[-1]
            results = [turn["value"]]
            if last.get("calls") and len(last["calls"]) > 1 and last.get("results") is None:
                try:
                    items = json.loads(turn["value"])
                except ValueError:
                    items = None
                if isinstance(items, list) and len(items) == len(last["calls"]):
                    results = items  # one observation answering several calls: its items, of any JSON type
            if out[-1].get("results") is not None or out[-1].get("role") == "assistant":
                out[-1]["results"] = (out[-1].get("results") or []) + results
            continue
        if role != "assistant":
            out.append({"role": role, "value": turn["value"]})
            continue
        out.append({"role": role, "cot": (cots.pop(0) if cots else "") or None, **sharegpt_answer_meaning(turn)})
    return out


def sharegpt_answer_meaning(turn):
    value = turn["value"]
    match = THINK.match(value)
    rest = value[match.end() :] if match else value
    if turn["from"] == "function_call":
        made = json.loads(rest)
        return {"calls": made if isinstance(made, list) else [made], "beside": None, "think": match and match.group(1)}
    blocks = re.findall(r"<tool_call>\s*(.*?)\s*</tool_call>", rest, re.DOTALL)
    glaive_calls = GLAIVE_CALL.findall(rest)
    if glaive_calls:
        beside = GLAIVE_CALL.sub("", rest).strip()
        calls = [{"name": name, "arguments": json.loads(arguments)} for name, arguments in glaive_calls]
        return {"calls": calls, "beside": beside or None, "think": match and match.group(1)}
    if blocks:
        beside = re.sub(r"<tool_call>.*?</tool_call>", "", rest, flags=re.DOTALL).strip()
        return {"calls": [json.loads(b) for b in blocks], "beside": beside or None, "think": match and match.group(1)}
    return {"text": rest.strip(), "think": match and match.group(1)}


def same_cots(meanings):
    """A CoT given both in cots and as a think block is one CoT (they must agree to be read)."""
    for m in meanings:
        if m.get("role") == "assistant":
            think = m.pop("think", None)
            m["cot"] = (m["cot"] or think or "").strip() or None  # CoTs are trimmed (docs/reading.md)
    return meanings


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(row=sharegpt_chats())
def test_sharegpt_chats_come_back_as_they_were_or_are_quarantined_naming_the_field(row):
    item, out = round_trip(row, "sharegpt")
    assert not isinstance(item, Quarantined), item
    event("single-turn record" if not item.messages else "conversation")
    expected, got = same_cots(sharegpt_meaning(row)), same_cots(sharegpt_meaning(out))
    assert expected == got, json.dumps([row, out, expected, got], indent=1)
    assert json.loads(out["tools"]) == [WEATHER]
    assert "<functioncall>" not in json.dumps(out)  # read as calls, written in the export's own form
