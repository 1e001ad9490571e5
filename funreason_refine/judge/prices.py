"""What a model's tokens cost: the pipeline's ``prices``, else LiteLLM's cost map (its batch prices for batch calls);
what each answer of a run cost (a model LiteLLM cannot price costs 0, with a note)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from funreason_refine.judge.settings import ModelSettings

if TYPE_CHECKING:
    from funreason_refine.judge.reply import Reply


@dataclass(frozen=True)
class Price:
    """USD per token, and where the figures come from."""

    input: float
    output: float
    source: str

    def cost(self, prompt_tokens: float, completion_tokens: float) -> float:
        return prompt_tokens * self.input + completion_tokens * self.output


def price_of(litellm: Any, settings: ModelSettings) -> Price | None:
    """The price of one of the model's calls as configured (a batch call at the batch price); None when
    neither the pipeline nor LiteLLM's cost map (the copy shipped with LiteLLM) has one."""
    if settings.prices is not None:
        kind = "batch prices" if settings.batch else "prices"
        return Price(
            settings.prices.input_per_million / 1e6, settings.prices.output_per_million / 1e6, f"{kind} in the pipeline"
        )
    try:
        info = litellm.get_model_info(settings.model)
    except Exception:  # not in the cost map
        return None
    if settings.batch:
        batch_in, batch_out = info.get("input_cost_per_token_batches"), info.get("output_cost_per_token_batches")
        if batch_in is not None and batch_out is not None:
            return Price(float(batch_in), float(batch_out), "LiteLLM's cost map, batch prices")
    regular_in, regular_out = info.get("input_cost_per_token"), info.get("output_cost_per_token")
    if regular_in is None or regular_out is None:
        return None
    if settings.batch:
        return Price(
            float(regular_in) / 2, float(regular_out) / 2, "LiteLLM's cost map has no batch price: half its price"
        )
    return Price(float(regular_in), float(regular_out), "LiteLLM's cost map")


class Pricing:
    """Prices the answers of a client's calls; ``notes`` gets a line for each model it cannot price."""

    def __init__(self, litellm: Any, notes: set[str]):
        self._litellm = litellm
        self._notes = notes
        self._unpriced: set[str] = set()

    def params(self, settings: ModelSettings) -> dict[str, float]:
        """Per-token prices passed with each call of a model LiteLLM cannot price (the pipeline's
        ``prices``, or 0 once its first call found it missing from LiteLLM's price list): LiteLLM prices
        every answer as it arrives, and without them it searches its price list again for each one
        (about 0.7 ms of CPU a call, docs/benchmarks.md). A model LiteLLM knows gets none."""
        if settings.prices is not None:
            return {
                "input_cost_per_token": settings.prices.input_per_million / 1e6,
                "output_cost_per_token": settings.prices.output_per_million / 1e6,
            }
        if settings.model in self._unpriced:
            return {"input_cost_per_token": 0.0, "output_cost_per_token": 0.0}
        return {}

    def cost(self, settings: ModelSettings, reply: Reply) -> float:
        if settings.prices is not None:
            return (
                reply.prompt_tokens * settings.prices.input_per_million
                + reply.completion_tokens * settings.prices.output_per_million
            ) / 1e6
        if settings.model in self._unpriced:
            return 0.0
        if not reply.counted_locally:
            priced = _priced_by_litellm(reply.response)
            if priced is not None:
                return priced  # LiteLLM priced the answer as it arrived: not worked out a second time
        try:
            return self._litellm_cost(settings, reply)
        except Exception:  # any model missing from LiteLLM's price list: cost 0 and a note, never a crash
            self._unpriced.add(settings.model)  # asked once: the failed look-up costs CPU on every call
            self._notes.add(
                f"{settings.model} is not in LiteLLM's price list: its cost counts as 0; "
                "set prices = {input_per_million = ..., output_per_million = ...} in its table"
            )
            return 0.0

    def _litellm_cost(self, settings: ModelSettings, reply: Reply) -> float:
        if reply.counted_locally:  # the response's usage is empty: its tokens as counted here, at the list price
            prompt, completion = self._litellm.cost_per_token(
                model=settings.model, prompt_tokens=reply.prompt_tokens, completion_tokens=reply.completion_tokens
            )
            return float(prompt + completion)
        return float(self._litellm.completion_cost(completion_response=reply.response) or 0.0)


def _priced_by_litellm(response: Any) -> float | None:
    """The cost LiteLLM worked out for a response when it arrived (what ``completion_cost`` would
    say again), or None when it could not price it."""
    hidden = getattr(response, "_hidden_params", None) or {}
    cost = hidden.get("response_cost") if isinstance(hidden, dict) else getattr(hidden, "response_cost", None)
    return float(cost) if isinstance(cost, int | float) and not isinstance(cost, bool) else None
