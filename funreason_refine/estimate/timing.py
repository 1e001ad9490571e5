"""The time side of an estimate: how many calls each model's servers answer at once, a call's own seconds, and
its wait in the server's queue when the run keeps more calls in flight than the server answers at once (a
single-slot server sent 16 calls answers one, the others wait: their wait would count against ``timeout``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from funreason_refine.estimate.figures import Tally
from funreason_refine.estimate.findings import Findings

SINGLE_SLOT_DOCS = "docs/judges.md, a local single-slot server"


@dataclass
class ServerTime:
    """One model in a steady run: calls its servers answer at once (None: not known) and where that comes from,
    the calls the run keeps in flight to them, a call's own seconds, its wait in the server's queue."""

    at_once: float | None
    source: str
    in_flight: int
    call_seconds: float
    queue_seconds: float

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["call_seconds"], out["queue_seconds"] = round(self.call_seconds, 2), round(self.queue_seconds, 1)
        return out


def server_times(tally: Tally, concurrency: int, findings: Findings | None) -> dict[str, ServerTime]:
    """Per model with calls of its own (not batch jobs): its :class:`ServerTime`."""
    out = {}
    for model, settings in tally.settings.items():
        spans = tally.per_model.get(model)
        if spans is None or not spans["timed"].high:
            continue
        declared = settings.endpoint_capacity()
        in_flight = min(concurrency, declared or concurrency)
        at_once, source = _at_once(declared, findings, model)
        call = spans["work"].high / spans["timed"].high
        queue = call * (in_flight / at_once - 1) if at_once and in_flight > at_once else 0.0
        out[model] = ServerTime(at_once, source, in_flight, call, queue)
    return out


def _at_once(declared: int | None, findings: Findings | None, model: str) -> tuple[float | None, str]:
    """The calls the model's servers answer at once, and where that comes from."""
    if declared:  # the run sends no server more than it takes: nothing waits in a server's queue
        return float(declared), "its servers' max_concurrency"
    server = findings.servers.get(model) if findings is not None else None
    if server is None or server.concurrency is None:
        return None, "not measured: refine estimate --probe 3 (or more) measures it"
    assert findings is not None
    if server.kept_up:
        largest = max(w.calls for w in server.waves)
        return None, (
            f"it kept up with {largest} calls at once, the most refine estimate --probe sent together "
            f"({findings.written}): no limit seen"
        )
    return server.concurrency, f"measured by refine estimate --probe, {findings.written}"


def time_lines(times: dict[str, ServerTime], tally: Tally) -> tuple[list[str], list[str]]:
    """What to say of each model's time (lines), and the warnings: calls whose wait and own time outlast the
    model's timeout (a run would time them out and send them again while the server still works on them)."""
    lines, warnings = [], []
    for model, t in times.items():
        settings = tally.settings[model]
        served = f"its server answers {t.at_once:g} call(s) at once ({t.source})" if t.at_once else t.source
        line = f"{model}: {served}; a call takes {t.call_seconds:.1f} s of its own"
        if t.queue_seconds:
            line += f"; with {t.in_flight} in flight, each waits about {t.queue_seconds:.0f} s in the server's queue"
        lines.append(line)
        counted = t.call_seconds + (t.queue_seconds if settings.first_token_timeout is None else 0.0)
        if counted > settings.timeout:
            fix = (
                f"set max_concurrency = {max(round(t.at_once or 1), 1)} and first_token_timeout ({SINGLE_SLOT_DOCS})"
                if t.queue_seconds
                else "raise timeout, or set max_tokens"
            )
            warnings.append(
                f"{model}: a call would take {counted:.0f} s from its request (its queue included) but timeout = "
                f"{settings.timeout:g} s: the run would time calls out and send them again; {fix}"
            )
    return lines, warnings


def probe_lines(findings: Findings | None) -> list[str]:
    """What the probe found of the answers: protocol failures, re-asks, verdicts given up, failed calls."""
    if findings is None:
        return []
    lines = []
    total = findings.protocol_total()
    if total.answers:
        lines.append(
            f"probe ({findings.written}): {total.answers} judge answer(s), {total.failures} outside the answer "
            f"protocol, {total.reasks} asked again, {total.given_up} verdict(s) given up (a run puts such records "
            "in errors.jsonl); the calls above count the re-asks at the probe's rate"
        )
    if findings.failed:
        lines.append(f"probe: {findings.failed} call(s) failed; the first: {findings.errors[0]}")
    return lines


def reask_rates(findings: Findings | None) -> dict[str, float]:
    """Per stage, the calls a judge's verdict takes, re-asks included, as the probe saw them (1.0: none)."""
    if findings is None:
        return {}
    return {
        stage: p.answers / (p.answers - p.reasks)
        for stage, p in findings.protocol.items()
        if p.answers > p.reasks and p.reasks
    }
