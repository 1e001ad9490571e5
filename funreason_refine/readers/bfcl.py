"""BFCL question files (``id``, ``question``, ``function``) with ground truth from ``possible_answer/``.

The reference call is built from the possible answers as BFCL's checker reads them (see
possible_answers.py). The answer file is indexed by id in memory: BFCL answer files are small.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from funreason_refine.errors import InputError
from funreason_refine.jsonl import loads
from funreason_refine.readers.answers import FieldError, parse_tools, record_id
from funreason_refine.readers.content import is_empty, unread_fields
from funreason_refine.readers.possible_answers import reference_calls
from funreason_refine.record import Problem, Record, Source, read_record


def default_answers_path(question_path: Path) -> Path:
    return question_path.parent / "possible_answer" / question_path.name


def missing_answers(path: Path) -> str | None:
    """Why the BFCL answer file ``path`` cannot be read (it is not there), and what to do; None when it is there.
    `refine validate` says it as the run does."""
    if path.is_file():
        return None
    if "relevance" in path.name:
        return (
            f"BFCL ground truth not found: {path}. BFCL's irrelevance and relevance categories have no possible "
            "answers (a model is to call no function, or any): they test a model, and hold no answer to refine. "
            "Refine the categories that have one (simple, multiple, parallel, live_simple, ...)"
        )
    return (
        f"BFCL ground truth not found: {path}. Put the possible_answer file there "
        f'(BFCL\'s layout) or name it with [input] answers = "...".'
    )


def load_answers(path: Path) -> dict[str, Any]:
    problem = missing_answers(path)
    if problem is not None:
        raise InputError(problem)
    with path.open("rb") as fh:
        return read_answers(fh, str(path))


def read_answers(lines: Iterable[bytes], name: str) -> dict[str, Any]:
    """The ground truth of a possible_answer file, by id, from its lines (``name`` for messages)."""
    answers: dict[str, Any] = {}
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = loads(line.decode("utf-8-sig"))  # a byte-order mark may open the file
            answers[str(obj["id"])] = obj["ground_truth"]
        except (ValueError, KeyError, TypeError) as exc:
            raise InputError(f"{name}:{lineno}: not a BFCL answer line with 'id' and 'ground_truth' ({exc})") from None
    return answers


def query_of(question: Any) -> str:
    """The user turns of the first conversation turn, joined (what the audit compares; records:
    read_question)."""
    turns = question
    if isinstance(turns, list) and turns and isinstance(turns[0], list):
        turns = turns[0]
    if not isinstance(turns, list):
        raise FieldError("question", "field 'question' must be a list of chat messages")
    texts = [m.get("content") for m in turns if isinstance(m, dict) and m.get("role") == "user"]
    if not texts or not all(isinstance(t, str) for t in texts):
        raise FieldError("question", "field 'question' has no user message with text content")
    return "\n".join(str(t) for t in texts)


def read_question(question: Any) -> tuple[str | None, str]:
    """(system prompt, query) of a BFCL question: one turn of messages (or a list holding it), its
    leading system message the record's system prompt, its user messages the query, joined.

    FieldError naming what a record cannot hold: a second turn (BFCL's multi-turn categories),
    an assistant or tool message, a system message after a user message.
    """
    turn, at = _one_turn(question)
    system: str | None = None
    texts: list[str] = []
    for n, message in enumerate(turn):
        where = f"{at}[{n}]"
        role, text = _message(message, where)
        if role == "user":
            texts.append(text)
        elif texts or system is not None:
            raise FieldError(
                f"{where}.role",
                f"{where}: a system message after the first message; a record has one system prompt, first",
            )
        else:
            system = text or None
    if not texts:
        raise FieldError("question", "field 'question' has no user message with text content")
    return system, "\n".join(texts)


def _one_turn(question: Any) -> tuple[list[Any], str]:
    """The messages of the question's one turn, and where they are."""
    if not isinstance(question, list):
        raise FieldError("question", "field 'question' must be a list of chat messages")
    if not question or not isinstance(question[0], list):
        return question, "question"
    for n, turn in enumerate(question[1:], 1):
        if not is_empty(turn):
            raise FieldError(
                f"question[{n}]",
                f"question[{n}]: a second turn (BFCL multi-turn); a record holds one turn, and the results "
                "of the calls before this turn are not in the file",
            )
    return question[0], "question[0]"


def _message(message: Any, where: str) -> tuple[str, str]:
    """(role, text) of a question message: a system or user message with text content."""
    if not isinstance(message, dict):
        raise FieldError(where, f"{where}: a message must be an object with a role and content")
    unread_fields(message, ("role", "content"), where)
    role, text = message.get("role"), message.get("content")
    if role not in ("system", "user"):
        raise FieldError(
            f"{where}.role", f"{where}: role {role!r} cannot be read; a BFCL question has system and user messages"
        )
    if not isinstance(text, str):
        raise FieldError(f"{where}.content", f"{where}.content: must be a text, got {type(text).__name__}")
    return role, text


def to_record(obj: dict[str, Any], source: Source, index: int, answers: dict[str, Any]) -> Record:
    rid = record_id(obj, f"{index}")
    if "question" not in obj:
        raise FieldError("question", "missing field 'question'")
    if "function" not in obj:
        raise FieldError("function", "missing field 'function'")
    system, query = read_question(obj["question"])
    problems: list[Problem] = []
    tools = parse_tools(obj["function"], problems)
    if rid not in answers:
        raise FieldError("id", f"no ground truth for id {rid!r} in the possible_answer file")
    calls = reference_calls(answers[rid], rid, tools, problems)
    record = read_record(index, rid, source, query, tools, calls, None, problems, {})
    return record.model_copy(update={"system": system}) if system else record
