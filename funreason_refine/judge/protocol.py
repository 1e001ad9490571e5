"""The judge answer protocol of the paper: optional <think>, then <judge>True|False</judge>,
optional <reason>, and for correcting stages an optional <NewFC>[calls]</NewFC>."""

from __future__ import annotations

import re
from dataclasses import dataclass

from funreason_refine.calls import parse_calls
from funreason_refine.errors import CallSyntaxError
from funreason_refine.record import FunctionCall
from funreason_refine.targets import split_think

_JUDGE = re.compile(r"<judge>\s*(true|false)\s*</judge>", re.IGNORECASE)
_REASON = re.compile(r"<reason>(.*?)</reason>", re.DOTALL | re.IGNORECASE)
_NEWFC = re.compile(r"<newfc>(.*?)</newfc>", re.DOTALL | re.IGNORECASE)


class ProtocolError(ValueError):
    """The answer does not follow the protocol (asked again, then an infrastructure error)."""


@dataclass(frozen=True)
class JudgeAnswer:
    ok: bool
    reason: str
    new_calls: list[FunctionCall] | None = None


def parse_answer(text: str, allow_newfc: bool) -> JudgeAnswer:
    """Read one judge answer; raise ProtocolError when it does not follow the protocol."""
    _, body = split_think(text)
    verdicts = _JUDGE.findall(body)
    if len(verdicts) != 1:
        raise ProtocolError(f"expected exactly one <judge>True</judge> or <judge>False</judge>, found {len(verdicts)}")
    ok = verdicts[0].lower() == "true"
    reason_match = _REASON.search(body)
    reason = " ".join(reason_match.group(1).split())[:500] if reason_match else ""
    new_calls = None
    if allow_newfc and not ok:
        match = _NEWFC.search(body)
        if match:
            try:
                new_calls = parse_calls(match.group(1))
            except CallSyntaxError as exc:
                raise ProtocolError(f"<NewFC> is not a call list: {exc}") from None
    return JudgeAnswer(ok=ok, reason=reason, new_calls=new_calls)
