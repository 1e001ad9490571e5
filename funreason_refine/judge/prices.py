"""What a model's tokens cost: the pipeline's ``prices``, else LiteLLM's cost map (its batch prices for batch calls)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from funreason_refine.judge.settings import ModelSettings


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
