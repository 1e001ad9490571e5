"""Training examples from a run folder: every record export writes (the kept records, a review's decisions
applied; a conversation too) as one labelled example."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from funreason_msl.labels import Example, encode_chat
from funreason_msl.loss import IGNORE_INDEX, NOT_TARGET
from funreason_refine.export import ExportResult, reviewed_lines
from funreason_refine.export.formats import to_row
from funreason_refine.record import Outcome
from funreason_refine.run_folder import FILES


def read_records(path: str | Path) -> list[dict[str, Any]]:
    """The records `refine export --format funreason` writes of a run folder (``RUN_DIR`` or
    ``RUN_DIR/kept.jsonl``), each assistant turn with its ``target``; see :func:`read_run`."""
    return read_run(path)[0]


def read_run(path: str | Path) -> tuple[list[dict[str, Any]], ExportResult]:
    """The records `refine export --format funreason` writes of a run folder (``RUN_DIR`` or ``RUN_DIR/kept.jsonl``):
    its kept records, without those a person marked wrongly kept in its review (overrides.jsonl), with those
    marked wrongly discarded; and what the review changed (its ``describe()`` is the line export prints).

    Read and refused as export does: a folder that is not a finished run (being written, interrupted, a line
    cut short) is a PartialRun saying what to do; a line `refine run` did not write, an UnreadableLine naming
    its file and line. A kept record without its ``target`` is a ValueError (the format stage writes it).
    """
    run_dir = Path(path)
    if run_dir.name == FILES[Outcome.KEPT] and run_dir.is_file():
        run_dir = run_dir.parent
    lines, review = reviewed_lines(run_dir, "funreason", doing="read", offer_partial=False)
    records = list(lines)
    for record in records:
        # A record a person restored from discarded.jsonl (it names the stage that discarded it) may have been
        # discarded before the format stage: export renders its target, and so does messages().
        missing = None if record.get("stage") else _missing_target(record)
        if missing is not None:
            raise ValueError(
                f"{run_dir / FILES[Outcome.KEPT]}: record {record.get('index')} (id {record.get('id')!r}) has no "
                f"training target{missing}; run the format stage so kept records carry one"
            )
    return records, review


def _missing_target(record: dict[str, Any]) -> str | None:
    """Where a kept record lacks its target: "" for the record, " in assistant turn N", or None."""
    if not isinstance(record.get("target"), str):
        return ""
    turns = [m for m in record.get("messages") or [] if m.get("role") == "assistant"]
    return next((f" in assistant turn {n}" for n, m in enumerate(turns) if not isinstance(m.get("target"), str)), None)


def messages(record: dict[str, Any], system_prompt: str | None = None) -> list[dict[str, str]]:
    """The chat FunReason trains on, exactly what `refine export --format funreason` writes (every
    assistant turn of a conversation as its target); ``system_prompt`` replaces the paper's, with
    ``{tools}`` where the tools go."""
    chat: list[dict[str, str]] = to_row(record, "funreason")["messages"]
    if system_prompt is not None:
        chat[0]["content"] = system_prompt.replace("{tools}", json.dumps(record["tools"], ensure_ascii=False))
    return chat


@dataclass
class BuildReport:
    """What building the dataset did, so nothing vanishes silently."""

    examples: int = 0
    truncated: int = 0
    dropped: list[str] = field(default_factory=list)
    turns_dropped: int = 0  # assistant turns that truncation left out of conversations
    review: ExportResult | None = None  # from_run: what the run's review (overrides.jsonl) changed, as export says


def encode(
    record: dict[str, Any], tokenizer: Any, max_length: int | None = None, system_prompt: str | None = None
) -> Example:
    """Render a kept record with the tokenizer's chat template and label each target token from its
    character offsets (a fast tokenizer is needed for them).

    The targets are every assistant turn's own tokens: think up to the end of its ``</think>``,
    result after it, the end-of-turn tokens the template writes after it included; the system
    prompt, user turns, tool results and role headers are not targets. Too long: the chat is cut
    after the last assistant turn that fits, that turn losing CoT tokens from its end (keeping
    ``</think>``), never its call; a ValueError when the first turn's prompt and call alone do not
    fit. A single-turn record is its one turn: its CoT is cut, never its prompt or call.
    """
    return encode_chat(messages(record, system_prompt), tokenizer, max_length)


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
            self.report.turns_dropped += example.turns_dropped
        self.report.examples = len(self.examples)

    @classmethod
    def from_run(cls, run_dir: str | Path, tokenizer: Any, **kwargs: Any) -> MSLDataset:
        """The records `refine export --format funreason` writes of a finished run folder, its review applied
        (see :func:`read_run`); ``report.review`` says what the review changed."""
        records, review = read_run(run_dir)
        dataset = cls(records, tokenizer, **kwargs)
        dataset.report.review = review
        return dataset

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i: int) -> dict[str, list[int]]:
        e = self.examples[i]
        return {"input_ids": e.input_ids, "labels": e.labels, "segments": e.segments}


@dataclass
class MSLCollator:
    """Pads a batch to its longest example; labels with -100, segments (when present) with 0."""

    pad_token_id: int

    def __post_init__(self) -> None:
        if not isinstance(self.pad_token_id, int):
            raise ValueError(
                f"MSLCollator needs a token id to pad with, got {self.pad_token_id!r} (a tokenizer without a pad "
                "token, as Llama 3's, has pad_token_id None): pass MSLCollator(tokenizer.eos_token_id); padding is "
                "masked out of attention and loss, so any id does"
            )

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
