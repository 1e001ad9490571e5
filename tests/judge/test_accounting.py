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


def test_two_runs_usage_adds_up_per_stage_and_per_model_through_the_summarys_judge_section():
    a, b = shard(3, 1, {"openai/x": 3}), shard(2, 0, {"openai/x": 1, "openai/y": 2})
    both = JudgeSection.model_validate(a.as_dict()) + JudgeSection.model_validate(b.as_dict())
    assert both.per_stage["cot"] == Usage(calls=5, prompt_tokens=500, cost_usd=0.5, retries=2)
    assert both.per_stage["format"].cached == 4 and both.per_stage["format"].reusable_prefix_tokens == 60
    assert both.calls == 6 and both.retries == 2
    assert both.tokens_counted_locally == {"openai/x": 4, "openai/y": 2}
    assert (a.total.calls, b.total.calls) == (4, 2), "adding makes a new value, the parts stay as they were"


def test_the_total_sums_the_stages_and_costs_are_written_to_the_microunit():
    run = RunUsage(per_stage={"a": Usage(cost_usd=0.1), "b": Usage(cost_usd=0.2)})
    assert run.total.cost_usd == pytest.approx(0.3) and run.total.model_dump()["cost_usd"] == 0.3


def test_the_summary_keys_are_todays_and_tokens_counted_locally_appears_only_when_a_server_left_usage_out():
    plain = shard(3, 1, {}).as_dict()
    assert list(plain) == [*Usage().model_dump(), "per_stage"]
    section = JudgeSection.model_validate({"model": "openai/x", **plain})
    assert "tokens_counted_locally" not in section.model_dump()
    counted = JudgeSection.model_validate({"model": "openai/x", **shard(3, 1, {"openai/x": 3}).as_dict()})
    assert counted.model_dump()["tokens_counted_locally"] == {"openai/x": 3}
    merged = counted + JudgeSection.model_validate({"model": "openai/x", **shard(1, 1, {"openai/y": 1}).as_dict()})
    assert merged.tokens_counted_locally == {"openai/x": 3, "openai/y": 1} and merged.calls == 6
