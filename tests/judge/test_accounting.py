"""What a run's calls used, as typed values that add up and read back as summary.json's judge section."""

from collections import Counter

import pytest

from funreason_refine.judge.accounting import RunUsage, Usage
from funreason_refine.summary import JudgeSection


def shard(cot_calls: int, format_calls: int, counted: dict[str, int]) -> RunUsage:
    return RunUsage(
        per_stage={
            "cot": Usage(calls=cot_calls, prompt_tokens=100 * cot_calls, cost_usd=0.1 * cot_calls, retries=1),
            "format": Usage(calls=format_calls, cached=2, cached_cost_usd=0.05, reusable_prefix_tokens=30),
        },
        tokens_counted_locally=Counter(counted),
    )


def test_two_runs_usage_adds_up_per_stage_and_per_model():
    a, b = shard(3, 1, {"openai/x": 3}), shard(2, 0, {"openai/x": 1, "openai/y": 2})
    both = a + b
    assert both.per_stage["cot"] == Usage(calls=5, prompt_tokens=500, cost_usd=pytest.approx(0.5), retries=2)
    assert both.per_stage["format"].cached == 4 and both.per_stage["format"].reusable_prefix_tokens == 60
    assert both.total.calls == 6 and both.total.retries == 2
    assert both.tokens_counted_locally == {"openai/x": 4, "openai/y": 2}
    assert (a.total.calls, b.total.calls) == (4, 2), "adding makes a new value, the parts stay as they were"


def test_the_summary_keys_are_todays_and_tokens_counted_locally_appears_only_when_a_server_left_usage_out():
    plain = shard(3, 1, {}).as_dict()
    assert list(plain) == [*Usage().as_dict(), "per_stage"]
    section = JudgeSection.model_validate({"model": "openai/x", **plain})
    assert "tokens_counted_locally" not in section.model_dump()
    counted = JudgeSection.model_validate({"model": "openai/x", **shard(3, 1, {"openai/x": 3}).as_dict()})
    assert counted.model_dump()["tokens_counted_locally"] == {"openai/x": 3}
    merged = counted + JudgeSection.model_validate({"model": "openai/x", **shard(1, 1, {"openai/y": 1}).as_dict()})
    assert merged.tokens_counted_locally == {"openai/x": 3, "openai/y": 1} and merged.calls == 6
