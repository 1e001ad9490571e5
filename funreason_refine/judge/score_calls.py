"""A scorer's requests and what its replies say: the score, kept as ``{"score": ...}``.

- ``yes_no``: LiteLLM's chat completion with ``logprobs``; the score is the probability of the good
  answer ("yes", or "no" for a guard model whose "Yes" names a risk) against the other, at the
  first answer token that is one of the two (Granite Guardian 3.3 writes ``<score> yes </score>``),
  from that token's top alternatives (LiteLLM: ``choices[0].logprobs.content[i].top_logprobs``).
- ``classify`` and ``reward``: vLLM's ``/classify`` and ``/pooling``, served at the server's root
  (``http://host:8000/classify`` for ``api_base = "http://host:8000/v1"``). LiteLLM has no call for
  them (it wraps vLLM's chat, embeddings and rerank only), so they go over httpx, through the same
  call slots, servers, rate limits, retries and outage watch as every model call
  (:mod:`~funreason_refine.judge.calls`). ``/classify`` answers ``data[0].probs`` (softmax over
  the labels, a sigmoid for a one-label model); its ``label`` names only the winner, so the score
  is ``probs[positive_label]``. ``/pooling`` answers ``data[0].data``: one value per output (a
  list per token for a per-token pooler, whose last row is read).
"""

from __future__ import annotations

import json
import math
import os
import time
from typing import Any

from funreason_refine.jsonl import escaped_surrogates
from funreason_refine.judge.calls import Send
from funreason_refine.judge.failures import Failure, JudgeCallError, JudgeSetupError, on_the_wire, retry_after
from funreason_refine.judge.reply import Reply
from funreason_refine.judge.score_input import ScoreInput
from funreason_refine.judge.scorer_settings import ScorerSettings
from funreason_refine.judge.tokens import prompt_tokens

RETRIED = (408, 409, 425)
NO_ENDPOINT = (404, 405, 501)


def kept(score: float) -> str:
    """The text the answer cache keeps for a score."""
    return json.dumps({"score": score})


def score_of(text: str) -> float:
    """The score in a kept text (JudgeCallError when it holds none: a cache entry from elsewhere)."""
    try:
        value = json.loads(text)["score"]
    except (ValueError, KeyError, TypeError):
        raise JudgeCallError(f"the answer cache holds {text[:80]!r} where a score was kept; run with --fresh") from None
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        raise JudgeCallError(f"the answer cache holds the score {value!r}, not a number; run with --fresh")
    return float(value)


# --- yes_no: the good answer's probability from logprobs ------------------------------------------------


def _word(token: Any) -> str:
    return str(token or "").strip().strip(".,:;!\"'<>").lower()


def read_yes_no(settings: ScorerSettings, reply: Reply) -> str:
    """The score of a chat answer with logprobs, kept as text (the errors name the server and what to change)."""
    yes, no = settings.yes_token.strip().lower(), settings.no_token.strip().lower()
    choices = getattr(reply.response, "choices", None) or [None]
    content = getattr(getattr(choices[0], "logprobs", None), "content", None)
    if not content:
        raise JudgeSetupError(
            f"{settings.model}: the answer from {reply.server} has no logprobs: a yes_no scorer reads the "
            "probability of 'yes' from them; serve the model with vLLM (it returns logprobs when asked) or use "
            "a provider that returns them"
        )
    for position in content:
        if _word(getattr(position, "token", None)) in (yes, no):
            p_yes, p_no = _at_answer(settings, reply, position)
            if p_yes + p_no <= 0:
                break  # the server gave the token no usable logprob
            good = p_yes if settings.good_answer == "yes" else p_no
            return kept(round(good / (p_yes + p_no), 6))
    raise JudgeCallError(
        f"{settings.model} answered {reply.text[:120]!r} from {reply.server}, with no {settings.yes_token!r} or "
        f"{settings.no_token!r} token that has a probability: check the scorer's template (or set yes_token and "
        "no_token to the words the model answers with)"
    )


def _at_answer(settings: ScorerSettings, reply: Reply, position: Any) -> tuple[float, float]:
    """The probabilities of 'yes' and 'no' at the answer token ``position`` (errors: none can be read there)."""
    said = f"{settings.model} answered {reply.text[:120]!r} from {reply.server}"
    if settings.top_logprobs > 1 and len(getattr(position, "top_logprobs", None) or []) < 2:
        raise JudgeSetupError(
            f"{said} with no top_logprobs at {position.token!r}: a yes_no scorer weighs 'yes' against 'no' among "
            "the token's alternatives, and without them every score would be 0 or 1; use a server that returns "
            "top_logprobs (vLLM does)"
        )
    p_yes, p_no = _probabilities(position, settings.yes_token.strip().lower(), settings.no_token.strip().lower())
    if math.isnan(p_yes + p_no):
        raise JudgeCallError(
            f"{said} with a logprob that is not a number (NaN) at {position.token!r}: no score can be read from it; "
            "check the server (its dtype, a model that overflows)"
        )
    return p_yes, p_no


def _probabilities(position: Any, yes: str, no: str) -> tuple[float, float]:
    """The probabilities of 'yes' and of 'no' at one answer token (variants of case and spacing added up)."""
    found = {yes: 0.0, no: 0.0}
    alternatives = list(getattr(position, "top_logprobs", None) or [])
    if not any(getattr(a, "token", None) == position.token for a in alternatives):
        alternatives.append(position)  # the token sampled, when the server left it out of its alternatives
    for alternative in alternatives:
        word = _word(getattr(alternative, "token", None))
        logprob = getattr(alternative, "logprob", None)
        if word in found and isinstance(logprob, int | float):
            found[word] += math.exp(logprob)
    return found[yes], found[no]


# --- classify and reward: vLLM's pooling endpoints --------------------------------------------------------


def pooling_url(api_base: str | None, kind: str) -> str:
    """``/classify`` or ``/pooling`` at the root of the server ``api_base`` names (its ``/v1`` dropped)."""
    if api_base is None:  # the settings refuse it; a Failure all the same, never a traceback
        raise Failure(f"a {kind} scorer calls a vLLM server: give its api_base (http://HOST:8000/v1)", "alive", "setup")
    base = api_base.rstrip("/")
    if base.endswith("/v1"):
        base = base[: -len("/v1")]
    return f"{base}/{'classify' if kind == 'classify' else 'pooling'}"


def _served_name(litellm: Any, model: str) -> tuple[str, str | None]:
    """The model's name on the server (without LiteLLM's provider prefix), and its API key from the environment."""
    try:
        name, provider, key, _ = litellm.get_llm_provider(model)
    except Exception:  # no provider prefix: the name as written, no key
        return model, None
    return name, key or os.environ.get(f"{str(provider).upper()}_API_KEY")


REWARD_DEFAULTS = {"task": "classify", "use_activation": False}
"""A reward scorer's /pooling request: vLLM serves a sequence reward model as a one-label classifier; without
its activation (a sigmoid) the value is the raw reward. ``extra`` overrides them (a per-token reward model:
``task = "token_classify"``, whose last token's value is read)."""


def pooling_body(settings: ScorerSettings, shown: ScoreInput, name: str) -> dict[str, Any]:
    """The request body: the messages for the server's chat template (with the tools), or the text as ``input``."""
    body: dict[str, Any] = {"model": name, **(REWARD_DEFAULTS if settings.kind == "reward" else {})}
    if shown.messages is None:
        body["input"] = shown.text or ""
    else:
        body["messages"] = shown.messages
        kwargs = dict(settings.template_kwargs() or {})
        if shown.tools:
            kwargs.setdefault("tools", shown.tools)
        if kwargs:
            body["chat_template_kwargs"] = kwargs
    return {**body, **settings.extra}


def pooling_sender(client: Any, settings: ScorerSettings, shown: ScoreInput) -> Send:
    """The request of a classify or reward scorer for one record (for ``LLMClient.complete``)."""
    name, key = _served_name(client.litellm, settings.model)
    body = _escaped(pooling_body(settings, shown, name))
    headers = {"authorization": f"Bearer {key}"} if key else {}

    async def send(api_base: str | None, started: float) -> Reply:
        url = pooling_url(api_base, settings.kind)
        try:
            response = await client.http().post(url, json=body, headers=headers, timeout=settings.timeout)
        except Exception as exc:
            raise _unanswered(exc, url, settings.timeout) from None
        payload = _payload(response, url, settings.kind)
        score = _pooled_score(settings, payload, url)
        return _reply(client.litellm, settings, shown, payload, score, url, time.monotonic() - started)

    return send


def _escaped(value: Any) -> Any:
    """``value`` with each text's lone surrogates (legal JSON escapes a record may keep, which UTF-8 cannot
    hold) written as their escape, ``\\ud800``, as the judges' requests write them (client.sendable): the
    server's tokenizer reads the escape as text."""
    if isinstance(value, str):
        return escaped_surrogates(value)
    if isinstance(value, dict):
        return {key: _escaped(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_escaped(item) for item in value]
    return value


def _unanswered(exc: Exception, url: str, timeout: float) -> Failure:
    if type(exc).__name__.endswith("Timeout") or isinstance(exc, TimeoutError):
        return Failure(
            f"no answer from {url} within timeout = {timeout:g} s: raise the scorer's timeout if its answers take "
            "longer, or check that the server is not stuck",
            "down",
        )
    return on_the_wire(exc, url)


def _payload(response: Any, url: str, kind: str) -> dict[str, Any]:
    """The JSON body of a 200 answer; a :class:`Failure` saying what the status means otherwise."""
    said = " ".join(response.text.split())[:300]
    if response.status_code != 200:
        raise _refused(response.status_code, said, url, kind, retry_after(response.headers))
    try:
        payload = response.json()
    except ValueError:
        payload = None
    if not isinstance(payload, dict):
        raise Failure(f"the answer from {url} is not a JSON object ({said[:80]!r}): is api_base vLLM?", "failing")
    return payload


def _refused(status: int, said: str, url: str, kind: str, retry_after: float | None) -> Failure:
    """What an error status means: try again (429, 5xx), stop the run (no such endpoint, a key), fail the record."""
    if status == 429:
        return Failure(f"HTTP 429 from {url} (rate limited): {said}", "rate_limited", retry_after=retry_after)
    if status in NO_ENDPOINT or (status == 400 and "does not support" in said):
        model = "classification" if kind == "classify" else "reward"
        return Failure(
            f"HTTP {status} from {url}: {said}. The server has no {url.rsplit('/', 1)[-1]} endpoint for this model: "
            f"serve a {model} model with vLLM (docs/scorers.md) and give its address as api_base",
            "alive",
            "setup",
        )
    if status in (401, 403):
        return Failure(f"HTTP {status} from {url}: {said}. Check the API key in the environment", "alive", "setup")
    if status >= 500 or status in RETRIED:
        return Failure(f"HTTP {status} from {url}: {said}", "failing", retry_after=retry_after)
    return Failure(f"the request was refused: HTTP {status} from {url}: {said}", "alive", "record")


def _pooled_score(settings: ScorerSettings, payload: dict[str, Any], url: str) -> float:
    """``probs[positive_label]`` of /classify, the value of /pooling (a per-token pooler: its last row)."""
    data = payload.get("data")
    row = data[0] if isinstance(data, list) and data and isinstance(data[0], dict) else None
    values = row.get("probs" if settings.kind == "classify" else "data") if row is not None else None
    if isinstance(values, list) and values and isinstance(values[-1], list):
        values = values[-1]
    what = "data[0].probs" if settings.kind == "classify" else "data[0].data"
    if not isinstance(values, list) or not values or not all(_number(v) for v in values):
        if isinstance(values, list) and any(isinstance(v, float) and not math.isfinite(v) for v in values):
            raise Failure(f"the answer from {url} has {what} = {values[:8]}: the model gave no finite score", "failing")
        raise Failure(f"the answer from {url} has no {what} with numbers in it: is api_base a vLLM server?", "failing")
    if settings.kind == "classify" and not all(0 <= v <= 1 for v in values):
        raise Failure(
            f"the answer from {url} has {what} = {values[:8]}, not probabilities between 0 and 1 (the server "
            "returns the classifier's logits: its activation is off); serve it with its activation, or score the "
            'raw values with kind = "reward"',
            "alive",
            "setup",
        )
    if len(values) == 1:
        return float(values[0])  # one output (a sigmoid classifier, a reward model): it is the score
    if settings.positive_label >= len(values):
        raise Failure(
            f"positive_label = {settings.positive_label}, but {url} answers {len(values)} outputs; give the index "
            f"(0 to {len(values) - 1}) of the output that says the record is good",
            "alive",
            "setup",
        )
    return float(values[settings.positive_label])


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _reply(
    litellm: Any,
    settings: ScorerSettings,
    shown: ScoreInput,
    payload: dict[str, Any],
    score: float,
    url: str,
    seconds: float,
) -> Reply:
    usage = payload.get("usage") if isinstance(payload.get("usage"), dict) else {}
    tokens = usage.get("prompt_tokens") if usage else None
    if isinstance(tokens, int) and tokens > 0:
        return Reply(kept(score), None, None, tokens, 0, url, seconds, False, None)
    counted = prompt_tokens(litellm, settings.model, shown.as_messages())
    return Reply(kept(score), None, None, counted, 0, url, seconds, True, None)
