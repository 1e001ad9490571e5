"""LLaMA-Factory's ShareGPT: ``conversations`` of human, gpt, function_call and observation turns."""

from __future__ import annotations

import json

from funreason_refine.export.messages import Line, assistant_content, calls, chat, content, in_call_order
from funreason_refine.targets import hermes_calls


def sharegpt(record: Line, tools_json: str) -> Line:
    """Turns alternate, so one observation answers a function_call turn (a JSON list of results when it
    made several calls). Each turn's value holds its CoT (a function_call turn's as LLaMA-Factory's
    thought before the JSON); ``cot`` (one turn) or ``cots`` (one per assistant turn) holds them too."""
    read = chat(record)
    messages = in_call_order(read)
    turns: list[Line] = []
    for at, message in enumerate(messages):
        if message["role"] in ("user", "system"):
            value = content(message)
            turns.append({"from": "human" if message["role"] == "user" else "system", "value": value or ""})
        elif message["role"] == "assistant":
            turns.append(_answer(message))
        elif at == 0 or messages[at - 1]["role"] != "tool":  # the first result after a call turn
            turns.append({"from": "observation", "value": _observation(messages, read, at)})
    row: Line = {
        "conversations": turns,
        "tools": tools_json,
        **({"system": record["system"]} if record.get("system") else {}),
    }
    if not record.get("messages"):
        return {**row, "cot": record.get("cot") or ""}
    return {**row, "cots": [m.get("cot") or "" for m in messages if m["role"] == "assistant"]}


def _answer(message: Line) -> Line:
    """A gpt turn for a text answer; a function_call turn for calls, but calls with text beside them
    are a gpt turn that writes them as <tool_call> blocks after the text (a function_call turn holds
    no text)."""
    found = calls(message)
    if found is None:
        return {"from": "gpt", "value": assistant_content(message, message["answer"], _thought)}
    if message.get("content"):
        return {"from": "gpt", "value": _thought(message) + f"{message['content']}\n" + hermes_calls(found)}
    items = [{"name": c.name, "arguments": c.arguments} for c in found]
    made = json.dumps(items if len(items) != 1 else items[0], ensure_ascii=False)
    return {"from": "function_call", "value": _thought(message) + made}


def _thought(message: Line) -> str:
    """An assistant turn's CoT in LLaMA-Factory's thought words, ``<think>\n`` and ``\n</think>\n\n``, exactly,
    as its reasoning templates (and Qwen3's chat template) write it: a function_call turn's before the JSON,
    where its FunctionFormatter (0.9.2 on) finds and takes it off (without the newlines the JSON does not
    parse); a gpt turn's before its text, where ``enable_thinking: false`` finds it to take out."""
    cot = (message.get("cot") or "").strip()
    return f"<think>\n{cot}\n</think>\n\n" if cot else ""


def _observation(messages: list[Line], read: list[Line], at: int) -> str:
    """The results after a call turn: the observation they were read from when they were one and are
    still in the order of the calls (``read``: the messages before the results were put in call order;
    a repair may have reordered the calls), else the one result, or a JSON list of them."""
    results = []
    for message in messages[at:]:
        if message["role"] != "tool":
            break
        results.append(message)
    as_read = all(m is r for m, r in zip(results, read[at:], strict=False))
    if messages[at].get("observation") is not None and len(results) > 1 and as_read:
        return str(messages[at]["observation"])
    texts = [m.get("content") or "" for m in results]
    return texts[0] if len(texts) == 1 else json.dumps(texts, ensure_ascii=False)


_ASKS = ("human", "observation")  # LLaMA-Factory's "odd" tags: the turns at even places after a system turn
_ANSWERS = ("gpt", "function_call")


def llamafactory_problem(row: Line) -> str | None:
    """How LLaMA-Factory's SharegptDatasetConverter would mistrain a row, or None. It takes a leading
    system turn as the system prompt (the row's ``system`` field is then not read); after it, turns must
    alternate human or observation, then gpt or function_call, ending with the latter, or it skips the
    whole conversation as "abnormal" (a warning in its log, nothing trained). A value must be a text."""
    turns = row["conversations"]
    start = 1 if turns and turns[0]["from"] == "system" else 0
    for at in range(start, len(turns)):
        expected = _ASKS if (at - start) % 2 == 0 else _ANSWERS
        if turns[at]["from"] not in expected:
            return (
                f"its conversations[{at}] is a {turns[at]['from']} turn where LLaMA-Factory expects "
                f"{' or '.join(expected)}, so it skips the record as abnormal"
            )
    if (len(turns) - start) % 2:
        return f"it ends with its {turns[-1]['from']} turn, so LLaMA-Factory skips it as abnormal"
    if start and row.get("system"):
        return "its first turn is a system turn, which LLaMA-Factory reads in place of the row's system field"
    parts = next((at for at, turn in enumerate(turns) if not isinstance(turn["value"], str)), None)
    if parts is not None:
        return (
            f"its conversations[{parts}] value is a list of content parts (as read), which LLaMA-Factory takes only "
            "as a text (its images go in an images column), so the dataset fails to load"
        )
    return None


class LlamaFactoryCheck:
    """Watches the rows of a sharegpt export: whether any carries a ``system`` field (the dataset_info
    entry then maps that column), and which LLaMA-Factory would skip or misread, so that the export says so."""

    def __init__(self) -> None:
        self.system = False
        self.records = 0
        self.first = ""

    def see(self, line: Line, row: Line) -> None:
        self.system = self.system or bool(row.get("system"))
        problem = llamafactory_problem(row)
        if problem is not None:
            self.records += 1
            self.first = self.first or f"record {line.get('index')} (id {line.get('id')}): {problem}"

    def warning(self) -> str | None:
        if not self.records:
            return None
        return (
            f"{self.records} record(s) of this sharegpt export will not train as written in LLaMA-Factory (the first: "
            f"{self.first}). Leave them out (a review can mark them wrongly kept) or edit them in the input, then run "
            "again"
        )
