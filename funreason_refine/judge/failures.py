"""What went wrong with a judge call, in words a user can act on, and what follows: try again, fail the
record, or stop the run.

LiteLLM reports a refused connection, a dropped one, a body it could not read and a server's HTTP 500
all as an ``InternalServerError`` with status 500, and an HTTP status it has no class for (413 from a
proxy's body size limit; 403 from its openai provider) as a bare ``APIError``. Only a real response brings
headers, so the status is believed only with them; without them the exception's chain (``__cause__``,
``__context__``) says what happened on the wire.
"""

from __future__ import annotations

import email.utils
import errno
import re
import socket
import time
from typing import Any, Literal

from funreason_refine.errors import RefineError
from funreason_refine.judge.endpoints import Outcome, Server
from funreason_refine.judge.limits import CONTEXT_WINDOW, mentions_context
from funreason_refine.judge.providers import HOW, unknown_provider


class JudgeCallError(RefineError):
    """A call failed after its retries (the record goes to errors.jsonl; it can be retried). ``reason`` codes a
    failure that no retry alone fixes (:data:`~funreason_refine.judge.limits.CONTEXT_WINDOW`), else None."""

    def __init__(self, message: str, reason: str | None = None):
        super().__init__(message)
        self.reason = reason


class JudgeSetupError(RefineError):
    """A call can never succeed as configured (bad key, unknown model, not a URL): the run stops."""


class BudgetStop(Exception):
    """max_cost is reached: no new call is made; the record is left for the next run."""


Action = Literal["retry", "record", "setup"]
"""After a failed attempt: try again (``max_retries``), fail the record now (no retry can help), stop the run."""

RETRIED_STATUSES = (408, 409, 425, 429)
"""4xx statuses that say "later" rather than "never"; every 5xx is retried too."""
NO_RESPONSE_BODY = ("Disconnected", "RemoteProtocolError", "ReadError", "IncompleteRead")
NOT_A_URL = ("NonHttpUrl", "InvalidURL", "InvalidUrl", "UnsupportedProtocol")
NO_CREDENTIALS = re.compile(
    r"Missing credentials|api_key client option must be set|Missing [\w ]*API key|_API_KEY is not set", re.IGNORECASE
)
"""What the OpenAI client (and LiteLLM for Gemini, Fireworks and others) says, before sending anything, when no API
key is set."""
CONNECT_TIMEOUT = ("ConnectTimeout", "ConnectionTimeout", "PoolTimeout")
"""Timeouts before the request reached the server (httpx, aiohttp): it is not known to be up."""
CHECK_SETUP = "Check the model name, api_base and the API key in the environment"
"""What to do about a key, model or server the provider refused (401, 403, 404): no retry can change it."""
_PREFIX = re.compile(r"^(?:litellm\.\w+:\s*)?(?:[\w ]*?(?:Error|Exception):\s*)*(?:\w+Exception - )?")
_ADVICE = re.compile(r"\.?\s*Handle with `litellm\.\w+`\.?$")
"""LiteLLM's advice to its callers after what the server said ("Handle with `litellm.InternalServerError`.")."""


class Failure(Exception):
    """One attempt that gave no answer: ``message`` says what happened and what to change, ``outcome`` what it
    shows of the server (:data:`~funreason_refine.judge.endpoints.Outcome`), ``action`` what follows; ``server``
    is where it happened (set by the caller)."""

    def __init__(
        self,
        message: str,
        outcome: Outcome,
        action: Action = "retry",
        retry_after: float | None = None,
        status: int | None = None,
        reason: str | None = None,
        server_said: str = "",
    ):
        super().__init__(message)
        self.server_said = server_said  # the server's own words (no URL, no advice): what a 5xx says of itself
        self.message, self.outcome, self.action, self.retry_after = message, outcome, action, retry_after
        self.status = status  # the HTTP status a server answered with (None: no response, or a prompt too long)
        self.reason = reason
        self.server: Server | None = None
        self.paid: Any = None  # a Reply holding the tokens of an HTTP 200 without a usable answer, when it said them


def classify(exc: Exception, litellm: Any, url: str, timeout: float) -> Failure:
    """The failure a LiteLLM call on the server at ``url`` raised (any exception: none escapes as a traceback)."""
    if isinstance(exc, litellm.AuthenticationError | litellm.PermissionDeniedError | litellm.NotFoundError):
        return Failure(f"{type(exc).__name__}: {said(exc)}. {CHECK_SETUP}", "alive", "setup")
    if _no_credentials(exc):
        return Failure(
            f"no API key: {said(exc).rstrip('.')}. Nothing was sent to {url}: set the key variable of the model's "
            "provider (OPENAI_API_KEY for openai/ models; a local OpenAI-compatible server that checks no key takes "
            "any value)",
            "alive",
            "setup",
        )
    if unknown_provider(exc):  # LiteLLM's own BadRequestError (400), raised before any request: not the record's
        told = f"LiteLLM cannot tell the model's provider from its name: {HOW}. Nothing was sent to {url}"
        return Failure(told, "alive", "setup")
    missing = next((link for link in chain(exc) if isinstance(link, ModuleNotFoundError)), None)
    if missing is not None:
        return Failure(
            f"the model's provider needs a package that is not installed ({said(missing)}): install the package "
            f"that provides {missing.name or 'it'} in this environment (LiteLLM's docs for the provider name it). "
            f"Nothing was sent to {url}",
            "alive",
            "setup",
        )
    if isinstance(exc, litellm.RateLimitError):
        return Failure(
            f"HTTP 429 from {url} (rate limited): {said(exc)}", "rate_limited", retry_after=_retry_after(exc)
        )
    if _over_context(exc, litellm):
        return Failure(f"HTTP {_status(exc) or 400} from {url}: {said(exc)}", "alive", "record", reason=CONTEXT_WINDOW)
    if isinstance(exc, litellm.BadRequestError):  # 400 and 422
        status = _status(exc)
        return Failure(
            f"the request was refused: HTTP {status} from {url}: {said(exc)}", "alive", "record", status=status
        )
    if getattr(exc, "litellm_response_headers", None) is not None:
        return _http_status(exc, _status(exc), url)
    if isinstance(exc, litellm.Timeout) or any(isinstance(e, TimeoutError) for e in chain(exc)):
        return timed_out(url, timeout, connected=not any(_named(e, CONNECT_TIMEOUT) for e in chain(exc)))
    return on_the_wire(exc, url)


def _no_credentials(exc: Exception) -> bool:
    """The OpenAI client refused to send a request it has no key for (LiteLLM raises it as a 500 of its own,
    with no response: a retry, or an outage wait, cannot change it)."""
    if getattr(exc, "litellm_response_headers", None) is not None:
        return False
    return NO_CREDENTIALS.search(str(exc)) is not None


def timed_out(url: str, timeout: float, connected: bool, what: str = "timeout") -> Failure:
    """No answer within ``what`` (a setting) seconds: ``connected``, the server took the request and is up (slow,
    or busy with others), else it could not even be reached."""
    if not connected:
        return Failure(
            f"no connection to {url} within {what} = {timeout:g} s: check api_base and that the server is up", "down"
        )
    return Failure(
        f"no answer from {url} within {what} = {timeout:g} s: raise the model's {what} if its answers take "
        "longer (the server took the request: it is up); a server that answers one request at a time queues the "
        "others (max_concurrency = 1, first_token_timeout: docs/judges.md)",
        "slow",
    )


def _over_context(exc: Exception, litellm: Any) -> bool:
    """A refusal of a prompt over the model's context window: LiteLLM's class for it, or a 4xx (a 5xx with
    headers) whose text says so in words LiteLLM does not map."""
    if isinstance(exc, litellm.ContextWindowExceededError):
        return True
    refused = isinstance(exc, litellm.BadRequestError) or (
        getattr(exc, "litellm_response_headers", None) is not None and _status(exc) >= 400 and _status(exc) != 429
    )
    return refused and mentions_context(said(exc))


def _http_status(exc: Exception, status: int, url: str) -> Failure:
    """A response with an error status: 5xx and "later" statuses are retried, a refused key (401, 403) stops the
    run, other 4xx fail the record."""
    if status in (401, 403):  # as LiteLLM's openai provider raises them: a bare APIError, not PermissionDeniedError
        return Failure(f"HTTP {status} from {url}: {said(exc)}. {CHECK_SETUP}", "alive", "setup", status=status)
    if status == 413:
        return Failure(
            f"HTTP 413 from {url}: the request body is too large for the server or a proxy in front of it; raise "
            "its limit on request bodies (nginx: client_max_body_size) or shorten the prompt",
            "alive",
            "record",
        )
    if status >= 500 or status in RETRIED_STATUSES:
        text = said(exc)
        return Failure(
            f"HTTP {status} from {url}: {text}",
            "failing",
            retry_after=_retry_after(exc),
            status=status,
            server_said=text,
        )
    return Failure(f"HTTP {status} from {url}: {said(exc)}", "alive", "record", status=status)


def on_the_wire(exc: Exception, url: str) -> Failure:
    """No response to believe: a connection that failed or dropped, or a body that is not a chat completion."""
    links = chain(exc)
    for link in links:
        if isinstance(link, ConnectionRefusedError) or getattr(link, "errno", None) == errno.ECONNREFUSED:
            return Failure(f"connection refused at {url}: check api_base (is a server listening on that port?)", "down")
        if isinstance(link, socket.gaierror):
            return Failure(f"the host of {url} was not found: check api_base (a typo in the host name?)", "down")
        if _named(link, NOT_A_URL):
            return Failure(
                f"{url} is not a URL a client can call: write api_base as http://HOST:PORT/v1", "down", "setup"
            )
        if isinstance(link, ConnectionResetError | BrokenPipeError) or _named(link, NO_RESPONSE_BODY):
            return Failure(
                f"{url} closed the connection before it answered (crashed, restarted or overloaded?)", "down"
            )
    told = _error_in_body(links[-1])
    if told:
        return Failure(f"{url} answered with an error in place of a chat completion: {told}", "failing")
    if any(_named(link, ("APIConnectionError",)) or isinstance(link, OSError) for link in links):
        return Failure(f"cannot connect to {url}: {_deepest(links)}: check api_base and that the server is up", "down")
    return Failure(
        f"the answer from {url} is not a chat completion LiteLLM can read ({_deepest(links)}): a body cut short, or "
        "a server or proxy at api_base that does not speak the OpenAI chat API",
        "failing",
    )


def chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and the exceptions it was raised from or while handling, outermost first."""
    links: list[BaseException] = []
    link: BaseException | None = exc
    while link is not None and link not in links and len(links) < 20:
        links.append(link)
        link = link.__cause__ or link.__context__
    return links


def said(exc: BaseException) -> str:
    """What the server or client said, without LiteLLM's prefixes ("litellm.APIError: APIError: OpenAIException - ")
    and its advice after it ("Handle with `litellm.InternalServerError`.")."""
    text = _ADVICE.sub("", _PREFIX.sub("", " ".join(str(exc).split()), count=1)) or type(exc).__name__
    return text if len(text) <= 300 else text[:300] + "..."


def _error_in_body(link: BaseException) -> str | None:
    """What an error object in a response's body said (``{"error": {"message": ..., "code": ...}}``, which
    OpenRouter and proxies send with HTTP 200), or None. LiteLLM raises it as an exception without text, its
    ``message`` and ``status_code`` taken from the object."""
    message = getattr(link, "message", None)
    if str(link) or not isinstance(message, str) or not message.strip():
        return None
    code = getattr(link, "status_code", None)
    told = " ".join(message.split())[:300]
    return f"{told} (code {code})" if code not in (None, "") else told


def _deepest(links: list[BaseException]) -> str:
    """The innermost cause, named: where the trouble started."""
    link = links[-1]
    if isinstance(link, KeyError):
        return f"no {link.args[0]!r} in it" if link.args else "a key missing from it"
    return f"{type(link).__name__}: {said(link)}"


def _named(exc: BaseException, parts: tuple[str, ...]) -> bool:
    """True when a class in ``exc``'s ancestry has one of ``parts`` in its name (transports differ: aiohttp, httpx)."""
    return any(part in cls.__name__ for cls in type(exc).__mro__ for part in parts)


def _status(exc: Exception) -> int:
    """The HTTP status the server answered with. LiteLLM raises some 5xx as an InternalServerError of 500
    (Anthropic's 529 "overloaded"): the status it kept (``provider_status_code``, or in a LiteLLM without it
    the status of the provider's error it was raised from) is the server's."""
    status = getattr(exc, "status_code", None)
    if status == 500:
        kept = [
            getattr(exc, "provider_status_code", None),
            *(getattr(link, "status_code", None) for link in chain(exc)),
        ]
        status = next((code for code in kept if isinstance(code, int) and code > 500), 500)
    return status if isinstance(status, int) else 0


def _retry_after(exc: Exception) -> float | None:
    """The server's Retry-After in seconds, when it sent one (at most 300)."""
    return retry_after(getattr(exc, "litellm_response_headers", None) or {})


def retry_after(headers: Any) -> float | None:
    """The seconds a response's headers say to wait (at most 300), or None when they say none: Retry-After in
    seconds or as an HTTP date (both are HTTP's), or OpenAI's and Azure's retry-after-ms."""
    waits = []
    try:
        waits.append(float(headers.get("retry-after-ms") or "") / 1000)
    except (TypeError, ValueError):
        pass
    value = headers.get("retry-after")
    try:
        waits.append(float(value or ""))
    except (TypeError, ValueError):
        when = _http_date(value)
        if when is not None:
            waits.append(when - time.time())
    return min(max(waits[0], 0.0), 300.0) if waits else None


def _http_date(value: Any) -> float | None:
    """The POSIX time of an HTTP date ("Wed, 21 Oct 2015 07:28:00 GMT"), or None."""
    try:
        return email.utils.parsedate_to_datetime(value).timestamp() if isinstance(value, str) else None
    except (TypeError, ValueError, IndexError):
        return None


def empty_answer(url: str, what: str, finish_reason: Any) -> Failure:
    """An HTTP 200 without an answer in it (no choices, no message, no content): the server is up.
    Cut off by max_tokens before any text, no retry can help."""
    if finish_reason == "length":
        return Failure(
            f"HTTP 200 from {url}, {what}: cut off by max_tokens before any text; raise max_tokens", "alive", "record"
        )
    return Failure(f"HTTP 200 from {url}, {what} (finish_reason {finish_reason!r})", "alive")
