"""Calls sent as provider batch jobs through LiteLLM's files and batches API: in waves, journaled, collected.

A wave is the calls that arrive while the run has nothing else to do (the records waiting at their
stages): it closes when no call has joined it for ``SETTLE_SECONDS``, or at ``batch_max_requests``.
Each wave is written to the run folder, uploaded and submitted as a batch, polled, and collected:
every answer goes into the answer cache under its call's cache key (the batch line's ``custom_id``)
before the call it answers goes on, so the protocol, cache and verdict path are the ones of ordinary
calls. A line that failed in its batch is made again as an ordinary call; lines of an expired batch
go into a new one; a batch that ended failed or cancelled stops the run (resumable: its calls go into a
new batch when the run is made again), rather than paying the full price for all of its calls. Output
lines of a call the batch does not hold are ignored, and a call answered twice, differently, counts as
failed. Each line is one paid call: calls that waited on the same line (the same prompt) count it as
answered from the cache. On resume the batches the journal has not collected are collected (found by
their metadata when their id was never written, resubmitted when the provider has none): a call
already submitted waits for its batch and is never paid for twice. Written by hand: LiteLLM has the
files and batches calls, not the scheduling, journal or recovery around them.
"""

from __future__ import annotations

import asyncio
import gc
import json
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

from funreason_refine.errors import RefineError
from funreason_refine.judge.batch_journal import BATCH_KEY, RUN_KEY, BatchJournal
from funreason_refine.judge.cache import AnswerCache, Cached
from funreason_refine.judge.prices import price_of
from funreason_refine.judge.settings import ModelSettings, Prices
from funreason_refine.judge.tokens import filled_in

SETTLE_SECONDS = 0.5
SUBMIT_ATTEMPTS = 4
LIST_PAGES = 20  # pages of 100 batches looked through for one whose id was never written
# Providers whose batch output LiteLLM hands back in the OpenAI format this module reads. Not bedrock: LiteLLM
# uploads to Bedrock's format but returns its output as Bedrock wrote it (recordId, modelOutput), so every line
# would read as failed and be paid again at the full price.
PROVIDERS = ("openai", "azure", "vertex_ai", "hosted_vllm", "litellm_proxy")
DONE = ("completed", "expired", "cancelled", "failed")
T = TypeVar("T")


class Taken(NamedTuple):
    """A call's answer from a batch; ``paid``: this call counts the batch line as paid for (the first call to take
    it), where the others that waited on the same line count it as answered from the cache."""

    answer: Cached
    paid: bool


class BatchLineFailed(Exception):
    """The call failed inside its batch: it is made again as an ordinary call."""


class BatchError(RefineError):
    """Batches cannot be submitted or followed as configured: the run stops, resumable."""


@dataclass(frozen=True)
class Group:
    """Where a wave's calls go: one model at one server (calls of any sampling parameters share a batch)."""

    model: str
    provider: str
    api_base: str | None
    prices: tuple[float, float] | None = None

    @classmethod
    def of(cls, litellm: Any, settings: ModelSettings) -> Group:
        _, provider, _, _ = litellm.get_llm_provider(settings.model)
        if provider not in PROVIDERS:
            why = (
                "LiteLLM returns Bedrock's batch output in Bedrock's own format, which the run cannot read back"
                if provider == "bedrock"
                else "LiteLLM has no batch API for it"
            )
            raise BatchError(
                f"{settings.model}: batch = true, but provider {provider!r} cannot take batches here ({why}; "
                f"batches go to {', '.join(PROVIDERS)}); set batch = false in its table"
            )
        first = settings.endpoint_list()[0]
        prices = (settings.prices.input_per_million, settings.prices.output_per_million) if settings.prices else None
        return cls(settings.model, provider, first.api_base if first is not None else None, prices)

    @classmethod
    def journaled(cls, entry: dict[str, Any]) -> Group:
        prices = entry.get("prices")
        return cls(entry["model"], entry["provider"], entry.get("api_base"), (prices[0], prices[1]) if prices else None)

    def as_dict(self) -> dict[str, Any]:
        return {"model": self.model, "provider": self.provider, "api_base": self.api_base, "prices": self.prices}

    def where(self) -> dict[str, Any]:
        return {"custom_llm_provider": self.provider, **({"api_base": self.api_base} if self.api_base else {})}

    def pricing(self) -> ModelSettings:
        prices = Prices(input_per_million=self.prices[0], output_per_million=self.prices[1]) if self.prices else None
        return ModelSettings(model=self.model, prices=prices, batch=True)


@dataclass
class _Wave:
    lines: list[dict[str, Any]] = field(default_factory=list)
    timer: asyncio.TimerHandle | None = None


class Batcher:
    """The batch jobs of one run folder: waves per group, their journal, polling and collection."""

    def __init__(
        self,
        run_dir: Path,
        cache: AnswerCache,
        litellm: Any,
        notes: set[str],
        on_change: Callable[[], None] | None = None,
    ):
        self.journal = BatchJournal(run_dir)
        self.cache = cache
        self.notes = notes
        self.counts = {"submitted": 0, "in_progress": 0, "done": 0}
        self.owed = 0.0  # cost of answers collected for waiting calls that have not yet taken them
        self._waiting: Counter[str] = Counter()
        self._unpaid: set[str] = set()  # lines collected for waiting calls, that none of them has counted yet
        self._on_change = on_change
        self._litellm = litellm
        self._futures: dict[str, asyncio.Future[Cached]] = {}
        self._waves: dict[Group, _Wave] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._poll = 60.0
        self._max_requests = 10_000
        self._recovered: asyncio.Lock | None = None
        self._recovery_done = False

    async def ask(self, settings: ModelSettings, messages: list[dict[str, str]], key: str) -> Taken | None:
        """The answer to one call, by way of a batch (one submitted before, else a new one when the model's
        ``batch`` is on; None when it is off); :class:`BatchLineFailed` when its line failed."""
        self._poll, self._max_requests = settings.batch_poll_interval, settings.batch_max_requests
        await self._recover()
        future = self._futures.get(key)
        if future is None:
            if not settings.batch:
                return None
            future = self._futures[key] = asyncio.get_running_loop().create_future()
            self._join(Group.of(self._litellm, settings), {"custom_id": key, **_request(settings, messages)})
        self._waiting[key] += 1
        try:
            answer = await asyncio.shield(future)
        finally:
            self._waiting[key] -= 1
            if not self._waiting[key]:
                del self._waiting[key]
        if key not in self._unpaid:
            return Taken(answer, paid=False)
        self._unpaid.discard(key)
        self.owed -= answer.cost  # the caller counts it now, before anything else runs
        return Taken(answer, paid=True)

    async def aclose(self) -> None:
        """Stop following batches (a later run collects them) and close LiteLLM's clients while the loop runs."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        # LiteLLM builds an AsyncOpenAI client for every files and batches call and leaves it to the garbage
        # collector, whose finalizer schedules the client's close on the running loop: collected after the
        # loop has ended, each would log "Event loop is closed".
        gc.collect()
        for _ in range(3):
            await asyncio.sleep(0)

    def _join(self, group: Group, line: dict[str, Any]) -> None:
        wave = self._waves.setdefault(group, _Wave())
        wave.lines.append(line)
        if wave.timer is not None:
            wave.timer.cancel()
        if len(wave.lines) >= self._max_requests:
            self._close(group)
        else:
            wave.timer = asyncio.get_running_loop().call_later(SETTLE_SECONDS, self._close, group)

    def _close(self, group: Group) -> None:
        wave = self._waves.pop(group, None)
        if wave is not None and wave.lines:
            if wave.timer is not None:
                wave.timer.cancel()
            self._start(self._submit(group, wave.lines))

    def _start(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self._fail_all(task.exception())  # type: ignore[arg-type]

    def _fail_all(self, error: BaseException) -> None:
        """A batch that cannot be submitted or followed stops every call waiting on batches."""
        for future in self._futures.values():
            if not future.done():
                future.set_exception(error)
        self._futures.clear()

    # --- submit, follow, collect -----------------------------------------------------------

    async def _submit(self, group: Group, lines: list[dict[str, Any]], batch: str | None = None) -> None:
        batch = batch or uuid.uuid4().hex[:16]
        data = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines).encode()
        if not (self.journal.folder / f"{batch}.jsonl").exists():
            self.journal.write_input(batch, data, group.as_dict(), [line["custom_id"] for line in lines])
        uploaded = await self._retry(
            group,
            lambda: self._litellm.acreate_file(
                file=(f"{batch}.jsonl", data, "application/jsonl"), purpose="batch", **group.where()
            ),  # fmt: skip
        )
        self.journal.note({"event": "uploaded", "batch": batch, "file_id": uploaded.id})
        created = await self._retry(
            group,
            lambda: self._litellm.acreate_batch(
                completion_window="24h",
                endpoint="/v1/chat/completions",
                input_file_id=uploaded.id,
                metadata=self.journal.metadata(batch),
                **group.where(),
            ),
        )
        self.journal.note({"event": "submitted", "batch": batch, "id": created.id})
        self._count("submitted", 1)
        await self._follow(group, batch, created.id, lines)

    def _count(self, what: str, change: int) -> None:
        self.counts[what] += change
        if self._on_change is not None:
            self._on_change()

    async def _follow(self, group: Group, batch: str, batch_id: str, lines: list[dict[str, Any]]) -> None:
        # Without this flag LiteLLM downloads a finished batch's whole output again, on every retrieve, for
        # cost logging of its own: we read the output once, and price it ourselves.
        quiet = {**group.where(), "litellm_metadata": {"batch_ignore_default_logging": True}}
        self._count("in_progress", 1)
        try:
            while True:
                status = await self._retry(group, lambda: self._litellm.aretrieve_batch(batch_id=batch_id, **quiet))
                if status.status in DONE:
                    break
                await asyncio.sleep(self._poll)
            await self._collect(group, batch, status, lines)
        finally:
            self.counts["in_progress"] -= 1
        self._count("done", 1)

    async def _collect(self, group: Group, batch: str, status: Any, lines: list[dict[str, Any]]) -> None:
        """Answers into the cache (then to their calls); failed lines to ordinary calls; expired ones to a new batch;
        a batch that ended failed or cancelled stops the run."""
        rows = [
            row
            for file_id in (status.output_file_id, status.error_file_id)
            for row in await self._download(group, file_id)
        ]
        answered, failed = self._read(group, f"batch {batch} ({status.id})", rows, lines)
        for key, answer in answered.items():
            self.cache.put(key, answer)
        self.cache.write()  # on disk before the journal says collected: a crash between them must not lose them
        missing = [line for line in lines if line["custom_id"] not in answered and line["custom_id"] not in failed]
        if status.status != "expired":
            failed.update({line["custom_id"]: _ended(status) for line in missing})
        counts = {"answered": len(answered), "failed": len(failed)}
        self.journal.note({"event": "collected", "batch": batch, "status": status.status, **counts})
        if missing and status.status == "expired":
            self.notes.add("a batch expired before it finished: its unanswered calls went into a new batch")
            for line in missing:
                self._join(group, line)
        elif missing and status.status in ("failed", "cancelled"):
            self._settle(answered, {})
            raise BatchError(_stopped(group, batch, status, len(missing)))
        if failed:
            self.notes.add(
                f"batch {batch} ({status.id}): {len(failed)} of its {len(lines)} calls failed inside it "
                f"({next(iter(failed.values()))}); they were made again as ordinary calls, at the full price"
            )
        self._settle(answered, failed)

    def _read(
        self, group: Group, name: str, rows: list[dict[str, Any]], lines: list[dict[str, Any]]
    ) -> tuple[dict[str, Cached], dict[str, str]]:
        """(answers, why lines failed) of a batch's output ``rows``: a row for a call the batch does not hold is
        ignored; a call answered twice, differently, is not trusted (it fails, to be asked again)."""
        sent = {line["custom_id"]: line for line in lines}
        got: dict[str, Cached | str] = {}
        unknown, twice = 0, set()
        for row in rows:
            key = str(row.get("custom_id"))
            if key not in sent:
                unknown += 1
                continue
            answer = self._answer(group, row, sent[key])
            if got.setdefault(key, answer) != answer:
                twice.add(key)
        if unknown:
            self.notes.add(
                f"{name}: {unknown} of its output lines answer a custom_id that none of its calls has: ignored "
                "(neither kept nor counted)"
            )
        for key in twice:
            got[key] = "the batch's output answers it twice, differently: neither answer is trusted"
        answered = {key: answer for key, answer in got.items() if isinstance(answer, Cached)}
        return answered, {key: why for key, why in got.items() if isinstance(why, str)}

    def _settle(self, answered: dict[str, Cached], failed: dict[str, str]) -> None:
        """Hand the collected answers to the calls waiting for them; failed lines become ordinary calls."""
        for key, answer in answered.items():
            future = self._futures.pop(key, None)
            if future is not None and not future.done():
                # Counted for max_cost at once: the calls of a batch resume one after another, and the first
                # would otherwise join the next batch before the cost of the others is seen. Once a line: the
                # calls waiting on it (the same prompt) share one paid answer.
                if self._waiting[key]:
                    self.owed += answer.cost
                    self._unpaid.add(key)
                future.set_result(answer)
        for key, why in failed.items():
            future = self._futures.pop(key, None)
            if future is not None and not future.done():
                future.set_exception(BatchLineFailed(why))

    async def _download(self, group: Group, file_id: str | None) -> list[dict[str, Any]]:
        if not file_id:
            return []

        async def content() -> Any:
            return await self._litellm.afile_content(file_id=file_id, **group.where())

        return _rows((await self._retry(group, content)).content)

    def _answer(self, group: Group, row: dict[str, Any], line: dict[str, Any] | None) -> Cached | str:
        """A collected line: its answer, or why it failed. ``line``: the request it answers, whose tokens are
        counted here when the provider's answer says nothing of its usage."""
        response = row.get("response") or {}
        body = response.get("body") or {}
        if response.get("status_code") != 200 or not body.get("choices"):
            error = row.get("error") or body.get("error") or {}
            return f"status {response.get('status_code')}: {error.get('message') or error or 'no answer'}"
        choice = body["choices"][0]
        message = choice.get("message") or {}
        reasoning = message.get("reasoning_content") or message.get("reasoning")
        reasoning = reasoning if isinstance(reasoning, str) else None
        text = message.get("content")
        text = text if isinstance(text, str) else ""
        prompt, completion, local = self._tokens(group, body.get("usage"), line, text, reasoning)
        price = price_of(self._litellm, group.pricing())
        if price is None:
            self.notes.add(f"{group.model} is not in LiteLLM's price list: its batch cost counts as 0; set prices")
        cost = price.cost(prompt, completion) if price is not None else 0.0
        return Cached(text, prompt, completion, cost, 0.0, reasoning, choice.get("finish_reason"), local)

    def _tokens(
        self, group: Group, usage: Any, line: dict[str, Any] | None, text: str, reasoning: str | None
    ) -> tuple[int, int, bool]:
        """(prompt, completion, counted here) of a collected answer: the provider's usage or, as for an ordinary
        call, where it left usage out, the tokens of the line's messages and of the answer counted here."""
        usage = usage if isinstance(usage, dict) else {}
        prompt, completion = int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
        messages = ((line or {}).get("body") or {}).get("messages") or []
        return filled_in(self._litellm, group.model, messages, text, reasoning, (prompt, completion))

    async def _retry(self, group: Group, call: Callable[[], Awaitable[T]]) -> T:
        """A files or batches call, retried on connection errors and 5xx; a refusal stops the run."""
        litellm = self._litellm
        for attempt in range(SUBMIT_ATTEMPTS):
            try:
                return await call()
            except (litellm.AuthenticationError, litellm.NotFoundError, litellm.BadRequestError) as exc:
                raise BatchError(_refused(group, exc)) from None
            except Exception as exc:  # connection errors, timeouts, 5xx: the provider may answer on a later try
                if attempt + 1 == SUBMIT_ATTEMPTS:
                    raise BatchError(_refused(group, exc)) from None
                await asyncio.sleep(2.0**attempt)
        raise AssertionError("unreachable")

    # --- resume ----------------------------------------------------------------------------

    async def _recover(self) -> None:
        """Once per run: the batches the journal holds but never collected are followed (or found, or resubmitted)."""
        if self._recovery_done:
            return
        if self._recovered is None:
            self._recovered = asyncio.Lock()
        async with self._recovered:
            if self._recovery_done:
                return
            for entry in self.journal.open_batches():
                await self._resume(entry)
            self._recovery_done = True

    async def _resume(self, entry: dict[str, Any]) -> None:
        group, lines = Group.journaled(entry), self.journal.read_input(entry)
        pending = [line for line in lines if self.cache.get(line["custom_id"]) is None]
        if not pending:  # collected before the process stopped, but not yet journaled as such
            self.journal.note({"event": "collected", "batch": entry["batch"], "status": "already in the cache"})
            return
        for line in pending:
            self._futures.setdefault(line["custom_id"], asyncio.get_running_loop().create_future())
        batch_id = entry.get("id") or await self._find(group, entry)
        if batch_id is not None:
            self.journal.note({"event": "submitted", "batch": entry["batch"], "id": batch_id})
            self._count("submitted", 1)
            self._start(self._follow(group, entry["batch"], batch_id, pending))
        else:  # never created at the provider: nothing was paid, submit it now
            self._start(self._submit(group, pending, entry["batch"]))

    async def _find(self, group: Group, entry: dict[str, Any]) -> str | None:
        """The id of a journaled batch whose id was never written, from its metadata; None if it does not exist."""
        after: str | None = None
        for _ in range(LIST_PAGES):
            page = await self._retry(group, self._lister(group, after))
            for batch in page.data:
                metadata = batch.metadata or {}
                if metadata.get(RUN_KEY) == self.journal.run_key and metadata.get(BATCH_KEY) == entry["batch"]:
                    return str(batch.id)
                if batch.created_at < entry["at"] - 3600:
                    return None  # older than the input: listed newest first, it is not further on
            if not page.has_more or not page.data:
                return None
            after = page.data[-1].id
        return None

    def _lister(self, group: Group, after: str | None) -> Callable[[], Awaitable[Any]]:
        async def page() -> Any:
            return await self._litellm.alist_batches(limit=100, after=after, **group.where())

        return page


def _request(settings: ModelSettings, messages: list[dict[str, str]]) -> dict[str, Any]:
    """A batch line's request: the chat call an ordinary call would make."""
    body: dict[str, Any] = {"model": settings.model.split("/", 1)[-1], "messages": messages}
    body["temperature"] = settings.temperature
    if settings.max_tokens is not None:
        body["max_tokens"] = settings.max_tokens
    body.update(settings.call_params())
    return {"method": "POST", "url": "/v1/chat/completions", "body": body}


def _rows(content: bytes) -> list[dict[str, Any]]:
    rows = []
    for line in content.decode("utf-8", "replace").split("\n"):
        try:
            rows.append(json.loads(line)) if line.strip() else None
        except ValueError:
            continue  # a garbled line: its call counts as missing
    return rows


def _ended(status: Any) -> str:
    """Why a batch left calls unanswered: its status and the errors it reports."""
    if status.status == "completed":
        return f"batch {status.id} completed without an answer for it"
    errors = _errors(status)
    return f"batch {status.id} ended {status.status}" + (f": {errors}" if errors else "")


def _errors(status: Any) -> str:
    """The errors a batch reports (OpenAI's ``errors.data``: code and message each), as one line."""
    errors = getattr(status, "errors", None)
    data = (errors.get("data") if isinstance(errors, dict) else getattr(errors, "data", None)) or []
    said = [": ".join(str(part) for part in (_field(e, "code"), _field(e, "message")) if part) or str(e) for e in data]
    return " ".join("; ".join(said).split())[:300]


def _field(error: Any, name: str) -> Any:
    return error.get(name) if isinstance(error, dict) else getattr(error, name, None)


def _stopped(group: Group, batch: str, status: Any, unanswered: int) -> str:
    """The run stops on a batch that ended failed or cancelled: which, why, and what to do."""
    errors = _errors(status) or "the provider gave no reason"
    return (
        f"{group.model}: batch {batch} (at the provider {status.id}) ended {status.status} ({errors}); its "
        f"{unanswered} unanswered calls were not made as ordinary calls, which cost the full price. Everything "
        "finished is saved and the batch is journaled in the run folder's batches/: fix the cause (a token limit: "
        "wait for the provider's other batches to finish, or lower batch_max_requests) and run the same command "
        "again to send them in a new batch, or set batch = false to make them as ordinary calls at the full price"
    )


def _refused(group: Group, exc: Exception) -> str:
    text = " ".join(str(exc).split())[:300]
    if type(exc).__name__ == "NotFoundError":
        text += " (the server has no Files or Batches endpoints: plain vLLM has none, see docs/cost.md)"
    return (
        f"{group.model}: the batch API at {group.api_base or group.provider} failed: {type(exc).__name__}: {text}. "
        "Everything finished is saved and submitted batches are journaled in the run folder's batches/: fix the "
        "cause (or set batch = false) and run the same command again"
    )
