"""The multiscale loss (MSL) of FunReason.

    L = alpha * L_think + (1 - alpha) * L_result

``L_think`` is the mean cross-entropy over the target tokens of ``<think>...</think>`` and
``L_result`` over the target tokens after it (the ``\\n\\n[call]`` and EOS), in every assistant
turn of a conversation. ``segments`` labels every position of ``labels``: 0 not a target (prompt,
user turns, tool results, padding), 1 think, 2 result.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

IGNORE_INDEX = -100
NOT_TARGET, THINK, RESULT = 0, 1, 2
Reduction = Literal["pooled", "per_sample"]


def token_losses(logits: torch.Tensor, labels: torch.Tensor, ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """Per-position cross-entropy of the next token, shaped like ``labels`` ([B, T]).

    Position t holds the loss of predicting ``labels[:, t + 1]`` from ``logits[:, t]`` (the causal
    shift of Hugging Face's own loss). The labels are shifted, not the logits: slicing
    ``logits[:, :-1]`` copies the largest tensor of the step.
    """
    shifted = F.pad(labels[..., 1:], (0, 1), value=ignore_index)
    vocab = logits.shape[-1]
    if logits.dtype in (torch.float16, torch.bfloat16):
        logits = logits.float()  # as Hugging Face's own loss: softmax in float32
    losses = F.cross_entropy(
        logits.reshape(-1, vocab), shifted.reshape(-1), ignore_index=ignore_index, reduction="none"
    )
    return losses.view(shifted.shape)


def shift_segments(segments: torch.Tensor) -> torch.Tensor:
    """Align segments with token_losses: position t gets the segment of ``labels[:, t + 1]``."""
    return F.pad(segments[..., 1:], (0, 1), value=NOT_TARGET)


def segment_counts(labels: torch.Tensor, segments: torch.Tensor, ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """[number of think targets, number of result targets] that the loss will see (after the shift)."""
    seg = shift_segments(segments) * (F.pad(labels[..., 1:], (0, 1), value=ignore_index) != ignore_index)
    return torch.stack([(seg == THINK).sum(), (seg == RESULT).sum()])


def _alpha(alpha: float | torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(alpha, dtype=like.dtype, device=like.device)


def segments_from_labels(labels: torch.Tensor, think_end_id: int, ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """Recover segments from the labels alone: in each run of target tokens (an assistant turn),
    tokens up to and including its first ``</think>`` token are think, the rest result (all result
    in a run without ``</think>``).

    For ``compute_loss_func``, which sees only outputs and labels. Needs ``</think>`` to be one
    token (a special token of the tokenizer), and assistant turns separated by a non-target token
    (a chat template's role header).
    """
    target = labels != ignore_index
    is_end = (labels == think_end_id) & target
    ends = is_end.long().cumsum(-1)  # </think> tokens up to and including each position
    starts = target & ~F.pad(target[..., :-1], (1, 0), value=False)
    last = target & ~F.pad(target[..., 1:], (0, 1), value=False)
    # cumsum never decreases along a row, so a running max carries each run's value at its first
    # position forward, and a running min from the right carries its value at its last position back.
    before_run = torch.cummax(torch.where(starts, ends - is_end.long(), 0), -1).values
    run_total = torch.where(last, ends, torch.iinfo(ends.dtype).max).flip(-1).cummin(-1).values.flip(-1)
    ends_before = ends - is_end.long() - before_run  # of this run, strictly before this position
    think = (ends_before == 0) & (run_total > before_run)
    return torch.where(target, torch.where(think, THINK, RESULT), NOT_TARGET)


def msl_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    segments: torch.Tensor,
    alpha: float | torch.Tensor = 0.7,
    reduction: Reduction = "pooled",
    num_think: int | torch.Tensor | None = None,
    num_result: int | torch.Tensor | None = None,
    num_samples: int | None = None,
    ignore_index: int = IGNORE_INDEX,
    return_parts: bool = False,
):
    """The multiscale loss.

    Args:
        logits: [B, T, V] as a causal LM returns them.
        labels: [B, T] as a causal LM receives them (unshifted; ``ignore_index`` where no target).
        segments: [B, T] integers aligned with ``labels``: 0 not a target, 1 think, 2 result.
        alpha: weight of the think segment (0.5-0.7 in the paper); a tensor for a learnable alpha.
        reduction: ``pooled`` averages each segment over all its tokens in the batch (long CoTs
            weigh more, as in plain SFT); ``per_sample`` averages each segment within each sample,
            combines them per sample, then averages the samples (every sample weighs the same).
        num_think, num_result: for ``pooled``, the token counts of each segment over the whole
            optimizer step (gradient accumulation); default: this batch's own counts.
        num_samples: for ``per_sample``, the samples of the whole optimizer step; default: B.
        return_parts: also return (L_think, L_result) of this batch, detached, for logging.

    A segment absent from the batch (no CoT anywhere) gives its weight to the other one, so the
    loss stays a mean cross-entropy. With ``pooled`` and alpha equal to the share of think tokens,
    the loss equals plain mean cross-entropy over all target tokens.
    """
    losses = token_losses(logits, labels, ignore_index)
    seg = shift_segments(segments)
    target = F.pad(labels[..., 1:], (0, 1), value=ignore_index) != ignore_index
    think = (seg == THINK) & target
    result = (seg == RESULT) & target
    if reduction == "pooled":
        n_think = think.sum() if num_think is None else torch.as_tensor(num_think, device=losses.device)
        n_result = result.sum() if num_result is None else torch.as_tensor(num_result, device=losses.device)
        sum_think = (losses * think).sum()
        sum_result = (losses * result).sum()
        l_think = sum_think / n_think.clamp(min=1)
        l_result = sum_result / n_result.clamp(min=1)
        a = torch.where(n_result == 0, 1.0, torch.where(n_think == 0, 0.0, _alpha(alpha, losses)))
        loss = a * l_think + (1 - a) * l_result
    elif reduction == "per_sample":
        n_think_s = think.sum(-1)
        n_result_s = result.sum(-1)
        l_think_s = (losses * think).sum(-1) / n_think_s.clamp(min=1)
        l_result_s = (losses * result).sum(-1) / n_result_s.clamp(min=1)
        a = torch.where(n_result_s == 0, 1.0, torch.where(n_think_s == 0, 0.0, _alpha(alpha, losses)))
        has_target = (n_think_s + n_result_s) > 0
        per_sample = (a * l_think_s + (1 - a) * l_result_s) * has_target
        loss = per_sample.sum() / (num_samples if num_samples is not None else max(int(has_target.sum()), 1))
    else:
        raise ValueError(f"reduction must be 'pooled' or 'per_sample', got {reduction!r}")
    if return_parts:
        # This batch's own means: with the step's counts, l_think above is only this micro-batch's share.
        with torch.no_grad():
            parts = (
                (losses * think).sum() / think.sum().clamp(min=1),
                (losses * result).sum() / result.sum().clamp(min=1),
            )
        return loss, parts
    return loss
