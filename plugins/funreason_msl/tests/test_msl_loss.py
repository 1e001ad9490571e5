import math

import pytest
import torch
import torch.nn.functional as F
from funreason_msl import msl_loss, segment_counts, segments_from_labels
from funreason_msl.loss import IGNORE_INDEX, RESULT, THINK

V = 11


SINGLE_TURN = [[0, 0, 1, 1, 1, 1, 2, 2, 2], [0, 0, 0, 1, 1, 2, 2, 0, 0], [0, 0, 0, 0, 2, 2, 2, 2, 2]]
# Conversations: row 0 two turns (think, result, a tool result, think, result), row 1 a turn
# without CoT after one with it, row 2 single-turn.
CONVERSATIONS = [
    [0, 1, 1, 2, 0, 0, 1, 2, 2, 2, 0],
    [0, 1, 2, 2, 0, 0, 0, 2, 2, 0, 0],
    [0, 0, 0, 1, 1, 1, 2, 2, 0, 0, 0],
]


def batch(seed=0, layout=SINGLE_TURN):
    # SINGLE_TURN: row 0: prompt 2, think 4, result 3; row 1: prompt 3, think 2, result 2, padding 2; row 2: no think
    segments = torch.tensor(layout)
    b, t = segments.shape
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(b, t, V, generator=g, dtype=torch.float64)
    labels = torch.randint(0, V, (b, t), generator=g)
    labels = torch.where(segments == 0, IGNORE_INDEX, labels)
    return logits, labels, segments


def reference(logits, labels, segments, alpha, reduction):
    """Straightforward: loop over samples and positions, causal shift by hand."""
    per_sample, think_all, result_all = [], [], []
    for i in range(labels.shape[0]):
        think, result = [], []
        for t in range(labels.shape[1] - 1):
            target = int(labels[i, t + 1])
            if target == IGNORE_INDEX:
                continue
            loss = -float(torch.log_softmax(logits[i, t], -1)[target])
            (think if int(segments[i, t + 1]) == THINK else result).append(loss)
        think_all += think
        result_all += result
        if think or result:
            a = alpha if think and result else (1.0 if think else 0.0)
            mean = lambda xs: sum(xs) / len(xs) if xs else 0.0  # noqa: E731
            per_sample.append(a * mean(think) + (1 - a) * mean(result))
    if reduction == "per_sample":
        return sum(per_sample) / len(per_sample)
    a = alpha if think_all and result_all else (1.0 if think_all else 0.0)
    return a * sum(think_all) / max(len(think_all), 1) + (1 - a) * sum(result_all) / max(len(result_all), 1)


@pytest.mark.parametrize("layout", [SINGLE_TURN, CONVERSATIONS], ids=["single-turn", "conversations"])
@pytest.mark.parametrize("reduction", ["pooled", "per_sample"])
@pytest.mark.parametrize("alpha", [0.5, 0.7, 0.0, 1.0])
def test_matches_a_straightforward_reference(reduction, alpha, layout):
    # per_sample: all think tokens of a conversation's turns make its L_think, so a sample of five
    # turns weighs as much as one of one turn; pooled: every target token of the batch weighs the same.
    logits, labels, segments = batch(layout=layout)
    got = msl_loss(logits, labels, segments, alpha=alpha, reduction=reduction)
    assert got.item() == pytest.approx(reference(logits, labels, segments, alpha, reduction), rel=1e-9)


def test_equals_plain_cross_entropy_when_alpha_is_the_think_share():
    logits, labels, segments = batch()
    n_think, n_result = (int(x) for x in segment_counts(labels, segments))
    plain = F.cross_entropy(logits[:, :-1].reshape(-1, V), labels[:, 1:].reshape(-1), ignore_index=IGNORE_INDEX)
    msl = msl_loss(logits, labels, segments, alpha=n_think / (n_think + n_result))
    assert float(msl) == pytest.approx(float(plain), rel=1e-12)


def test_gradient_accumulation_with_step_counts_equals_one_big_batch():
    logits, labels, segments = batch()
    logits.requires_grad_(True)
    whole = msl_loss(logits, labels, segments, alpha=0.7)
    whole.backward()
    grad_whole = logits.grad.clone()
    logits.grad = None
    n_think, n_result = (int(x) for x in segment_counts(labels, segments))
    micro = [slice(0, 1), slice(1, 3)]
    total = sum(
        msl_loss(logits[s], labels[s], segments[s], alpha=0.7, num_think=n_think, num_result=n_result) for s in micro
    )
    total.backward()
    assert total.item() == pytest.approx(whole.item(), rel=1e-12)
    assert torch.allclose(logits.grad, grad_whole)
    # The pitfall: averaging each segment per micro-batch, then over the micro-batches, weights
    # tokens differently (here by up to 2x), so the gradient is off although the values look close.
    logits.grad = None
    naive = sum(msl_loss(logits[s], labels[s], segments[s], alpha=0.7) for s in micro) / len(micro)
    naive.backward()
    assert (logits.grad - grad_whole).norm() / grad_whole.norm() > 0.2


def test_per_sample_accumulation_with_step_sample_count():
    logits, labels, segments = batch()
    whole = msl_loss(logits, labels, segments, reduction="per_sample")
    parts = sum(
        msl_loss(logits[s], labels[s], segments[s], reduction="per_sample", num_samples=3)
        for s in (slice(0, 2), slice(2, 3))
    )
    assert float(parts) == pytest.approx(float(whole), rel=1e-12)


def test_logged_parts_are_this_batchs_own_means_also_under_gradient_accumulation():
    logits, labels, segments = batch()
    n_think, n_result = (int(x) for x in segment_counts(labels, segments))
    think_only = torch.where(segments == RESULT, 0, segments)
    l_think = float(msl_loss(logits, torch.where(think_only == 0, IGNORE_INDEX, labels), think_only))
    _, alone = msl_loss(logits, labels, segments, return_parts=True)
    # one micro-batch of a step with twice its tokens: the loss is half, the logged parts are not
    loss, parts = msl_loss(logits, labels, segments, num_think=2 * n_think, num_result=2 * n_result, return_parts=True)
    assert [float(p) for p in parts] == pytest.approx([float(p) for p in alone])
    assert float(parts[0]) == pytest.approx(l_think) and float(loss) == pytest.approx(
        float(msl_loss(logits, labels, segments)) / 2
    )


def test_a_batch_without_think_tokens_is_the_mean_result_loss():
    logits, labels, segments = batch()
    segments = torch.where(segments == THINK, RESULT, segments)
    plain = F.cross_entropy(logits[:, :-1].reshape(-1, V), labels[:, 1:].reshape(-1), ignore_index=IGNORE_INDEX)
    assert float(msl_loss(logits, labels, segments, alpha=0.7)) == pytest.approx(float(plain), rel=1e-12)


def test_segments_are_read_off_the_labels_at_the_think_end_token():
    END = 7
    labels = torch.tensor([[IGNORE_INDEX, IGNORE_INDEX, 3, 4, END, 5, 6], [IGNORE_INDEX, 2, 3, 4, 5, 6, IGNORE_INDEX]])
    assert segments_from_labels(labels, END).tolist() == [[0, 0, 1, 1, 1, 2, 2], [0, 2, 2, 2, 2, 2, 0]]


def test_segments_are_read_off_the_labels_in_every_assistant_turn():
    END, NO = 7, IGNORE_INDEX
    # a turn with a CoT, a tool result, a turn with two </think> (the second is result), a user
    # turn, a turn without CoT
    labels = torch.tensor([[NO, 3, END, 5, NO, NO, 4, END, 5, END, 6, NO, 8, 9, NO]])
    assert segments_from_labels(labels, END).tolist() == [[0, 1, 1, 2, 0, 0, 1, 1, 2, 2, 2, 0, 2, 2, 0]]


def test_learnable_alpha_gets_a_gradient_and_stays_in_bounds():
    from funreason_msl.trainer import LearnableAlpha

    alpha = LearnableAlpha(init=0.7, lo=0.5, hi=0.9)
    assert alpha().item() == pytest.approx(0.7)
    logits, labels, segments = batch()
    optimizer = torch.optim.SGD(alpha.parameters(), lr=50.0)
    for _ in range(200):
        optimizer.zero_grad()
        msl_loss(logits, labels, segments, alpha=alpha()).backward()
        optimizer.step()
    value = alpha().item()
    assert 0.5 < value < 0.9 and not math.isclose(value, 0.7, abs_tol=0.05)


def test_unknown_reduction_is_an_error():
    with pytest.raises(ValueError, match="pooled"):
        msl_loss(*batch(), reduction="mean")


def test_loading_the_plugin_imports_neither_torch_nor_transformers():
    import subprocess
    import sys

    code = "import sys, funreason_msl.plugin; print('torch' in sys.modules, 'transformers' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split() == [
        "False",
        "False",
    ]
