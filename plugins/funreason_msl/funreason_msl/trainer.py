"""Hugging Face Trainer integration: a compute_loss_func, a Trainer subclass, a learnable alpha."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from transformers import Trainer

from funreason_msl.loss import IGNORE_INDEX, Reduction, msl_loss, segment_counts, segments_from_labels


def think_end_id(tokenizer: Any) -> int:
    """The id of ``</think>`` for reading segments off the labels: it must be a single token there.

    Only :class:`MSLLoss` reading segments off bare labels (as a plain ``Trainer``'s
    ``compute_loss_func``) needs it; :class:`MSLDataset` labels think and result from the text.
    """
    ids = tokenizer.encode("</think>", add_special_tokens=False)
    if len(ids) != 1:
        raise ValueError(
            f"'</think>' is {len(ids)} tokens for this tokenizer, so MSLLoss cannot find where a CoT ends in bare "
            "labels; give the loss its segments instead: train with MSLTrainer on MSLDataset and MSLCollator "
            "(they label think and result from the text, whatever the tokenization). Adding '</think>' as a new "
            "token only to make it one would give it an untrained embedding"
        )
    return ids[0]


class LearnableAlpha(nn.Module):
    """alpha = lo + (hi - lo) * sigmoid(theta), trained with the model by the MSL loss itself.

    What it does: dL/dalpha = L_think - L_result, so gradient descent moves alpha toward the
    segment whose loss is currently lower; unbounded, that collapses alpha to 0 or 1 (the
    paper's learnable alpha drifts this way). The sigmoid keeps it strictly inside [lo, hi]
    (default [0.5, 0.9]), so each segment always keeps at least min(lo, 1 - hi) of the weight.
    """

    def __init__(self, init: float = 0.7, lo: float = 0.5, hi: float = 0.9):
        super().__init__()
        if not lo < init < hi:
            raise ValueError(f"need lo < init < hi, got {lo} < {init} < {hi}")
        self.lo, self.hi = lo, hi
        p = (init - lo) / (hi - lo)
        self.theta = nn.Parameter(torch.tensor(float(torch.logit(torch.tensor(p)))))

    def forward(self) -> torch.Tensor:
        return self.lo + (self.hi - self.lo) * torch.sigmoid(self.theta)


class MSLLoss:
    """A ``compute_loss_func`` for ``transformers.Trainer``: ``Trainer(..., compute_loss_func=MSLLoss(tokenizer))``.

    A plain ``Trainer`` hands it only the labels, so it reads the segments off them at the
    ``</think>`` token: ``think_token_id`` (or the tokenizer's id for ``</think>``, which must then
    be one token) is used only there, when a batch brings no ``segments``; a ``</think>`` of several
    tokens is refused the first time it is needed. Exact without gradient accumulation; the
    Trainer does not rescale a custom loss for accumulation, so with
    ``gradient_accumulation_steps > 1`` use :class:`MSLTrainer`, which counts each segment over
    the whole optimizer step. Used alone under accumulation this raises rather than train on a
    loss that is off by the accumulation factor.
    """

    def __init__(
        self,
        tokenizer: Any = None,
        alpha: float | LearnableAlpha = 0.7,
        reduction: Reduction = "pooled",
        think_token_id: int | None = None,
    ):
        self.tokenizer = tokenizer
        self.think_token_id = think_token_id
        self.alpha = alpha
        self.reduction = reduction
        self.step_counts: torch.Tensor | None = None  # [think, result] tokens of the current optimizer step
        self.step_samples: int | None = None
        self.last: dict[str, float] = {}

    def segments(self, labels: torch.Tensor) -> torch.Tensor:
        """Segments read off bare labels at the ``</think>`` token (for batches without a ``segments`` column)."""
        if self.think_token_id is None:
            if self.tokenizer is None:
                raise ValueError(
                    "this batch has no 'segments' and MSLLoss has no tokenizer or think_token_id to read them off "
                    "the labels: pass MSLLoss(tokenizer), or train with MSLTrainer on MSLDataset and MSLCollator"
                )
            self.think_token_id = think_end_id(self.tokenizer)
        return segments_from_labels(labels, self.think_token_id)

    def prepare_step(self, batches: list[dict[str, torch.Tensor]]) -> None:
        """Count each segment over all micro-batches of one optimizer step (called by MSLTrainer)."""
        counts = torch.zeros(2, dtype=torch.long)
        samples = 0
        for batch in batches:
            labels = batch["labels"]
            segments = batch.get("segments")
            counts += segment_counts(labels, segments if segments is not None else self.segments(labels)).cpu()
            samples += int((labels != IGNORE_INDEX).any(-1).sum())
        self.step_counts, self.step_samples = counts, samples

    def __call__(
        self,
        outputs: Any,
        labels: torch.Tensor,
        num_items_in_batch: Any = None,
        segments: torch.Tensor | None = None,
        batch_only: bool = False,
    ) -> torch.Tensor:
        """The loss of ``outputs``; ``batch_only``: of this batch alone (evaluation), each segment averaged
        over this batch's tokens rather than the current optimizer step's (which ``prepare_step`` counted)."""
        logits = outputs["logits"] if isinstance(outputs, dict) else outputs[0]
        segments = segments if segments is not None else self.segments(labels)
        alpha = self.alpha() if isinstance(self.alpha, nn.Module) else self.alpha
        step_samples = None if batch_only else self.step_samples
        if self.step_counts is not None and not batch_only:
            n_think, n_result = (int(c) for c in self.step_counts)
        else:
            n_think, n_result = (int(c) for c in segment_counts(labels, segments))
            if num_items_in_batch is not None and int(num_items_in_batch) > n_think + n_result:
                raise RuntimeError(
                    "MSLLoss sees one micro-batch of a larger optimizer step (gradient accumulation or "
                    "several devices) but not the step's think/result token counts: use MSLTrainer"
                )
        loss, (l_think, l_result) = msl_loss(
            logits,
            labels,
            segments,
            alpha=alpha,
            reduction=self.reduction,
            num_think=n_think,
            num_result=n_result,
            num_samples=step_samples,
            return_parts=True,
        )
        alpha_value = float(alpha.detach()) if isinstance(alpha, torch.Tensor) else float(alpha)
        own = [int(c) for c in segment_counts(labels, segments)]  # this batch's tokens: what its means weigh
        self.last = {
            "loss_think": float(l_think),
            "loss_result": float(l_result),
            "alpha": alpha_value,
            "think_tokens": own[0],
            "result_tokens": own[1],
        }
        return loss


class MSLMixin:
    """The multiscale loss for a ``Trainer`` class: ``class MSLSFTTrainer(MSLMixin, SFTTrainer): pass``.

    Takes ``alpha``, ``reduction``, ``tokenizer_for_msl`` and ``think_token_id`` besides the
    trainer's own arguments (see :class:`MSLTrainer`), computes the loss itself from the batch's
    ``segments`` (the base class's ``compute_loss`` is not called) and adds ``loss_think``,
    ``loss_result`` and ``alpha`` to every log that has a loss.
    """

    msl: MSLLoss
    # The loss is already the step's (each segment counted over every micro-batch of the step), so
    # the Trainer must not divide it by the accumulation steps again (transformers >= 5.19).
    loss_is_scaled_for_ga: bool | None = True

    def __init__(
        self,
        *args: Any,
        tokenizer_for_msl: Any = None,
        alpha: float | str = 0.7,
        reduction: Reduction = "pooled",
        think_token_id: int | None = None,
        **kwargs: Any,
    ):
        model = kwargs.get("model")
        weight: float | LearnableAlpha
        if alpha == "learnable":
            if not isinstance(model, nn.Module):
                raise ValueError("alpha='learnable' needs model=... (a loaded model)")
            weight = model.msl_alpha = LearnableAlpha()  # a submodule: trained and saved with the model
        elif isinstance(alpha, str):
            raise ValueError(f"alpha must be a number or 'learnable', got {alpha!r}")
        else:
            weight = alpha
        self.msl = MSLLoss(tokenizer_for_msl, alpha=weight, reduction=reduction, think_token_id=think_token_id)
        if kwargs.get("args") is not None:
            kwargs["args"].remove_unused_columns = False  # keep the segments column for the loss
        if not hasattr(Trainer, "loss_is_scaled_for_ga"):  # before transformers 5.19, only a compute_loss_func did
            kwargs.setdefault("compute_loss_func", self.msl)
        super().__init__(*args, **kwargs)
        self._msl_logs: list[dict[str, float]] = []

    def get_batch_samples(self, epoch_iterator: Any, num_batches: int, device: Any) -> tuple[list, Any]:
        batch_samples, num_items = super().get_batch_samples(epoch_iterator, num_batches, device)  # type: ignore[misc]
        self.msl.prepare_step(batch_samples)
        return batch_samples, num_items

    def compute_loss(
        self, model: nn.Module, inputs: dict[str, Any], return_outputs: bool = False, num_items_in_batch: Any = None
    ) -> Any:
        segments = inputs.pop("segments", None)
        labels = inputs.pop("labels")
        outputs = model(**inputs)
        # Evaluation (the model in eval mode) has no optimizer step: its loss is its own batch's, and it is kept
        # out of the training logs.
        training = model.training
        loss = self.msl(
            outputs, labels, num_items_in_batch=num_items_in_batch, segments=segments, batch_only=not training
        )
        if training:
            self._msl_logs.append(self.msl.last)
        return (loss, outputs) if return_outputs else loss

    def log(self, logs: dict[str, float], *args: Any, **kwargs: Any) -> None:
        if self._msl_logs and "loss" in logs:
            entries = self._msl_logs
            # Each segment's mean over all its tokens since the last log: a micro-batch without a CoT has no think
            # loss to average in (its loss_think is 0 of 0 tokens), and a long one weighs by its tokens.
            for key, count in (("loss_think", "think_tokens"), ("loss_result", "result_tokens")):
                tokens = sum(entry[count] for entry in entries)
                logs[key] = round(sum(entry[key] * entry[count] for entry in entries) / max(tokens, 1), 4)
            logs["alpha"] = round(sum(entry["alpha"] for entry in entries) / len(entries), 4)
            self._msl_logs.clear()
        super().log(logs, *args, **kwargs)  # type: ignore[misc]


class MSLTrainer(MSLMixin, Trainer):
    """``Trainer`` with the multiscale loss; a one-line swap for plain SFT.

    ``MSLTrainer(model=..., args=..., train_dataset=MSLDataset(...), data_collator=MSLCollator(pad_id),
    alpha=0.7)``. The loss takes each example's think and result labels from the batch's
    ``segments`` (MSLDataset writes them, MSLCollator pads them), so the tokenizer's
    ``</think>`` may be any number of tokens. ``tokenizer_for_msl`` or ``think_token_id`` (the id
    of a single-token ``</think>``) is needed only for a dataset without ``segments``, whose
    segments are then read off the labels. Each segment is averaged over the whole optimizer
    step, so gradient accumulation gives the same loss as one large batch. ``alpha="learnable"``
    adds a :class:`LearnableAlpha` to the model (trained and saved with it). Logs
    ``loss_think``, ``loss_result`` and ``alpha`` with every loss.
    """
