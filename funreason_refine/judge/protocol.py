"""Reading a judge's answer as a verdict: the paper's tags (<judge>True|False</judge>, an optional <reason>, and
for correcting stages an optional <NewFC>[calls]</NewFC>), or the same verdict as a JSON object.

Only the answer is read (its reasoning is taken apart first: :mod:`~funreason_refine.judge.answer`), and in
the tags only a ``<judge>`` tag where a verdict stands counts: at the start of a line (after at most a short
label such as ``Verdict:``), with nothing after it on its line but ``<reason>`` or ``<NewFC>``. An echo of
the instructions ("Answer with <judge>False</judge> if ...") is not a verdict, nor is an answer cut off by
the token limit. What is not a verdict raises :class:`ProtocolError`, which says what was wrong in words the
model is told when it is asked again.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, StrictBool, ValidationError

from funreason_refine.calls import parse_calls
from funreason_refine.errors import CallSyntaxError
from funreason_refine.jsonl import KEYS_ONCE
from funreason_refine.judge.answer import Answer, separate
from funreason_refine.judge.structured import VerdictFormat
from funreason_refine.record import FunctionCall

_JUDGE = re.compile(r"<judge>\s*(true|false)\s*</judge>", re.IGNORECASE)
_REASON = re.compile(r"<reason>(.*?)</reason>", re.DOTALL | re.IGNORECASE)
_NEWFC = re.compile(r"<newfc>(.*?)</newfc>", re.DOTALL | re.IGNORECASE)
# Before a verdict on its line: nothing, markdown, or a short label ending in a colon ("**Verdict:**").
_LEAD = re.compile(r"[\s*_#>`~-]*(?:[A-Za-z][\w ]{0,30}:[\s*_`]*)?")
# After it on its line: nothing (markdown, a full stop) but the protocol's next tags.
_TRAIL = re.compile(r"[\s*_`.]*(?:<(?:reason|newfc)\b.*)?", re.IGNORECASE)
_FENCE = re.compile(r"^```[\w-]*\s*\n?(.*?)\n?```$", re.DOTALL)

TAGS = "<judge>True</judge> or <judge>False</judge> on a line of its own, then <reason>...</reason>"
JSON = 'one JSON object with "reason" and "judge" (true or false)'


class ProtocolError(ValueError):
    """The answer is not a verdict: asked again (``correction`` tells the model what was wrong), then an
    infrastructure error. ``problem`` names what was wrong (summary.json counts answers by it)."""

    def __init__(self, message: str, problem: str, correction: str):
        super().__init__(message)
        self.problem = problem
        self.correction = correction


@dataclass(frozen=True)
class JudgeAnswer:
    ok: bool
    reason: str
    new_calls: list[FunctionCall] | None = None


def read_verdict(answer: Answer, allow_newfc: bool, verdict_format: VerdictFormat = "tags") -> JudgeAnswer:
    """The verdict in a judge's answer (its text alone, never its reasoning); ProtocolError when there is none."""
    wanted = JSON if verdict_format == "json" else TAGS
    if answer.cut_off:
        raise ProtocolError(
            "the answer was cut off by the token limit (finish_reason length): raise the judge's max_tokens",
            "cut_off",
            f"Your answer was cut off by the token limit before it ended. Answer again, shorter: {wanted}, "
            "with a reason of one sentence.",
        )
    if not answer.text:
        said = "only reasoning, no answer after it" if answer.reasoning else "an empty answer"
        raise ProtocolError(said, "no_answer", f"Your answer held {said}. Give your verdict now: {wanted}.")
    if verdict_format == "json":
        return parse_json(answer.text, allow_newfc)
    return parse_answer(answer.text, allow_newfc)


def parse_answer(text: str, allow_newfc: bool) -> JudgeAnswer:
    """The verdict in the tags of an answer's text (a think block in it is taken apart first)."""
    _, body = separate(text)
    verdict = _verdict(body)
    ok = verdict.group(1).lower() == "true"
    after = body[verdict.end() :]
    reason_match = _REASON.search(after) or _reason_before(body[: verdict.start()])
    reason = " ".join(reason_match.group(1).split())[:500] if reason_match else ""
    match = _NEWFC.search(after) if allow_newfc and not ok else None
    return JudgeAnswer(ok=ok, reason=reason, new_calls=_new_calls(match.group(1)) if match else None)


def _verdict(body: str) -> re.Match[str]:
    """The one <judge> tag where a verdict stands."""
    found = list(_JUDGE.finditer(body))
    placed = [m for m in found if _in_place(body, m.start(), m.end())]
    if len(placed) == 1:
        return placed[0]
    if placed:
        raise ProtocolError(
            f"expected exactly one <judge>True</judge> or <judge>False</judge>, found {len(placed)}",
            "several_verdicts",
            f"Your answer had {len(placed)} <judge> verdicts; answer with exactly one: {TAGS}.",
        )
    echoed = f" ({len(found)} inside sentences: an echo of the instructions is not a verdict)" if found else ""
    raise ProtocolError(
        f"expected exactly one <judge>True</judge> or <judge>False</judge> where a verdict stands, found none{echoed}",
        "no_verdict",
        f"Your answer had no verdict of its own{' (a <judge> tag inside a sentence is not one)' if found else ''}. "
        f"Answer with {TAGS}.",
    )


def _in_place(text: str, start: int, end: int) -> bool:
    """True when text[start:end] stands where a verdict stands: alone on its line but for a label before it
    and the protocol's next tags after it."""
    line_start = text.rfind("\n", 0, start) + 1
    line_end = text.find("\n", end)
    line_end = len(text) if line_end == -1 else line_end
    return bool(_LEAD.fullmatch(text[line_start:start]) and _TRAIL.fullmatch(text[end:line_end]))


def _reason_before(text: str) -> re.Match[str] | None:
    """A <reason> written before the verdict, at the start of a line (not one an instruction mentions)."""
    placed = [
        m for m in _REASON.finditer(text) if _LEAD.fullmatch(text[text.rfind("\n", 0, m.start()) + 1 : m.start()])
    ]
    return placed[-1] if placed else None


def _new_calls(text: str) -> list[FunctionCall]:
    try:
        return parse_calls(text)
    except CallSyntaxError as exc:
        raise ProtocolError(
            f"<NewFC> is not a call list: {exc}",
            "bad_newfc",
            f"The corrected calls in your answer are not a call list ({exc}). Write them as "
            "[func_name(param=value, ...)], or leave them out.",
        ) from None


class _JsonVerdict(BaseModel):
    """A verdict as a JSON object (the schema structured.py asks for; keys it does not name are ignored)."""

    model_config = ConfigDict(extra="ignore")

    judge: StrictBool
    reason: str = ""
    new_fc: str | None = None


def parse_json(text: str, allow_newfc: bool) -> JudgeAnswer:
    """The verdict in an answer that is one JSON object (a code fence around it is taken off)."""
    fenced = _FENCE.match(text.strip())
    body = fenced.group(1) if fenced else text
    try:
        # strict=False: a line break inside a string is read as one. llama.cpp's grammars (llama-cpp-python,
        # Ollama) let a model write them raw, which strict JSON refuses.
        # A key given twice is refused ({"judge": false, ..., "judge": true}): json.loads took the last one.
        verdict = _JsonVerdict.model_validate(KEYS_ONCE.decode(body))
    except ValueError as exc:  # JSONDecodeError, a key given twice, or pydantic's ValidationError (a ValueError)
        raise _not_the_object(exc) from None
    reason = " ".join(verdict.reason.split())[:500]
    new_fc = (verdict.new_fc or "").strip() if allow_newfc and not verdict.judge else ""
    return JudgeAnswer(ok=verdict.judge, reason=reason, new_calls=_new_calls(new_fc) if new_fc else None)


def _not_the_object(exc: ValueError) -> ProtocolError:
    if not isinstance(exc, json.JSONDecodeError | ValidationError):  # read, but refused: a key given twice
        return ProtocolError(
            f"the answer's JSON object cannot be read as one verdict ({exc})",
            "bad_json",
            f"Your JSON object could not be read as one verdict ({exc}). Answer with {JSON}, each key once.",
        )
    first = exc.errors()[0] if isinstance(exc, ValidationError) else None
    if first is None or not first["loc"]:
        what = f"not one JSON object ({first['msg'] if first else exc})"
        return ProtocolError(f"the answer is {what}", "not_json", f"Your answer was {what}. Answer with {JSON}.")
    field = ".".join(map(str, first["loc"]))
    return ProtocolError(
        f"the answer's JSON object: field {field!r}: {first['msg']}",
        "bad_json",
        f"In your JSON object, field {field!r}: {first['msg']}. Answer with {JSON}.",
    )
