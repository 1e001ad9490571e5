"""Training examples from a run folder: chat-rendered, tokenized, every target token labelled think or result."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from funreason_msl.loss import IGNORE_INDEX, NOT_TARGET, RESULT, THINK
from funreason_refine.export.formats import to_row
from funreason_refine.jsonl import read_lines

THINK_END = "</think>"


def read_records(path: str | Path) -> list[dict[str, Any]]:
    """Kept records of a run folder (``RUN_DIR`` or ``RUN_DIR/kept.jsonl``), each with its ``target``."""
    path = Path(path)
    if path.is_dir():
        path = path / "kept.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: give a run folder of `refine run` or its kept.jsonl")
    records = []
    for lineno, line in read_lines(path):
        if line.isspace():
            continue
        record = json.loads(line)
        if not isinstance(record.get("target"), str):
            raise ValueError(
                f"{path}:{lineno}: record {record.get('id')!r} has no training target; "
                "run the format stage so kept records carry one"
            )
        records.append(record)
    return records


def messages(record: dict[str, Any], system_prompt: str | None = None) -> list[dict[str, str]]:
    """The chat FunReason trains on, exactly what `refine export --format funreason` writes (every
    assistant turn of a conversation as its target); ``system_prompt`` replaces the paper's, with
    ``{tools}`` where the tools go."""
    chat: list[dict[str, str]] = to_row(record, "funreason")["messages"]
    if system_prompt is not None:
        chat[0]["content"] = system_prompt.replace("{tools}", json.dumps(record["tools"], ensure_ascii=False))
    return chat


@dataclass
class Example:
    input_ids: list[int]
    labels: list[int]
    segments: list[int]
    truncated: bool = False


@dataclass
class BuildReport:
    """What building the dataset did, so nothing vanishes silently."""

    examples: int = 0
    truncated: int = 0
    dropped: list[str] = field(default_factory=list)


def encode(
    record: dict[str, Any], tokenizer: Any, max_length: int | None = None, system_prompt: str | None = None
) -> Example:
    """Render with the tokenizer's chat template and label each target token from its character offsets.

    The prompt is the chat template applied to system + user with the generation prompt; every
    token starting at or after its end is a target. A target token starting before the end of
    ``</think>`` is think, later ones result (so the template's end-of-turn and EOS tokens after
    the answer are result targets); a token straddling the boundary is think. Needs a
    fast tokenizer (offset mapping). Too long: think tokens are cut from the end of the CoT,
    keeping ``</think>``; the prompt and the call are never cut (ValueError when they alone do
    not fit).
    """
    if not getattr(tokenizer, "is_fast", False):
        raise TypeError("a fast tokenizer is needed: segment labels come from its offset mapping")
    chat = messages(record, system_prompt)
    prompt = tokenizer.apply_chat_template(chat[:-1], tokenize=False, add_generation_prompt=True)
    full = tokenizer.apply_chat_template(chat, tokenize=False)
    if not full.startswith(prompt):
        raise ValueError(
            "the chat template renders the prompt differently with and without the answer; cannot tell the target apart"
        )
    target_start = len(prompt)
    end_at = full.find(THINK_END, target_start)
    think_end = end_at + len(THINK_END) if end_at != -1 else target_start
    encoded = tokenizer(full, add_special_tokens=False, return_offsets_mapping=True)
    offsets = encoded.get("offset_mapping")
    if offsets is None:
        raise TypeError("the tokenizer returned no offset mapping")
    ids = list(encoded["input_ids"])
    labels, segments = [], []
    for token_id, (start, end) in zip(ids, offsets, strict=False):
        if end > target_start:  # a token straddling the prompt's end holds target text: a target
            labels.append(token_id)
            segments.append(THINK if start < think_end else RESULT)
        else:
            labels.append(IGNORE_INDEX)
            segments.append(NOT_TARGET)
    truncated = False
    if max_length is not None and len(ids) > max_length:
        excess = len(ids) - max_length
        think_positions = [i for i, s in enumerate(segments) if s == THINK]
        # Keep </think>: its tokens are the think tokens overlapping the marker's characters.
        closing = [i for i in think_positions if offsets[i][1] > end_at] if end_at != -1 else []
        cuttable = [
            i for i in think_positions if i not in set(closing) and offsets[i][0] >= target_start + len("<think>")
        ]
        if len(cuttable) < excess:
            raise ValueError(
                f"prompt and call alone take {len(ids) - len(cuttable)} tokens, over max_length={max_length}"
            )
        drop = set(cuttable[-excess:])
        ids = [t for i, t in enumerate(ids) if i not in drop]
        labels = [t for i, t in enumerate(labels) if i not in drop]
        segments = [s for i, s in enumerate(segments) if i not in drop]
        truncated = True
    return Example(ids, labels, segments, truncated)


class MSLDataset(torch.utils.data.Dataset):
    """Tokenized examples with ``input_ids``, ``labels`` and ``segments`` (0 none, 1 think, 2 result)."""

    def __init__(
        self,
        records: list[dict[str, Any]],
        tokenizer: Any,
        max_length: int | None = None,
        system_prompt: str | None = None,
    ):
        self.report = BuildReport()
        self.examples: list[Example] = []
        for record in records:
            try:
                example = encode(record, tokenizer, max_length, system_prompt)
            except ValueError as exc:
                self.report.dropped.append(f"{record.get('id')}: {exc}")
                continue
            self.examples.append(example)
            self.report.truncated += example.truncated
        self.report.examples = len(self.examples)

    @classmethod
    def from_run(cls, run_dir: str | Path, tokenizer: Any, **kwargs: Any) -> MSLDataset:
        return cls(read_records(run_dir), tokenizer, **kwargs)

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i: int) -> dict[str, list[int]]:
        e = self.examples[i]
        return {"input_ids": e.input_ids, "labels": e.labels, "segments": e.segments}


@dataclass
class MSLCollator:
    """Pads a batch to its longest example; labels with -100, segments (when present) with 0."""

    pad_token_id: int

    def __call__(self, batch: list[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
        width = max(len(b["input_ids"]) for b in batch)

        def pad(key: str, value: int) -> torch.Tensor:
            return torch.tensor([b[key] + [value] * (width - len(b[key])) for b in batch], dtype=torch.long)

        mask = torch.tensor([[1] * len(b["input_ids"]) + [0] * (width - len(b["input_ids"])) for b in batch])
        out = {
            "input_ids": pad("input_ids", self.pad_token_id),
            "attention_mask": mask,
            "labels": pad("labels", IGNORE_INDEX),
        }
        if "segments" in batch[0]:
            out["segments"] = pad("segments", NOT_TARGET)
        return out
