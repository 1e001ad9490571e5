"""One training example: a chat rendered by the chat template, each assistant turn's tokens labelled think or result."""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field
from typing import Any

from funreason_msl.loss import IGNORE_INDEX, NOT_TARGET, RESULT, THINK

THINK_START, THINK_END = "<think>", "</think>"


@dataclass
class Example:
    """Token ids, labels (``IGNORE_INDEX`` where no target) and segments of one chat.

    ``turns`` holds the token range ``(start, end)`` of each assistant turn kept; ``turns_dropped``
    how many later turns truncation left out.
    """

    input_ids: list[int]
    labels: list[int]
    segments: list[int]
    truncated: bool = False
    turns: list[tuple[int, int]] = field(default_factory=list)
    turns_dropped: int = 0


@dataclass
class Span:
    """Where one assistant turn's own text lies in the rendered chat (character offsets)."""

    start: int
    end: int
    close: int  # where its </think> starts; -1 without one
    think_end: int  # the end of its </think>; -1 without one (all its tokens are result, a straddling first one too)
    cot_start: int  # where the CoT after <think> starts: truncation may cut from here to ``close``

    @classmethod
    def of(cls, text: str, start: int, end: int) -> Span:
        """The turn at ``text[start:end]``. Its CoT is a leading ``<think>...</think>`` block, or, where the
        template's generation prompt opens the block (it ends with ``<think>``), the text up to ``</think>``.
        A turn without either has no CoT, whatever it says: a call or reply that mentions ``</think>`` is result."""
        own = text[start:end]
        first = start + len(own) - len(own.lstrip())  # where the turn's own text begins, after whitespace
        if text.startswith(THINK_START, first):
            opened = first + len(THINK_START)
        elif text[:start].rstrip().endswith(THINK_START):
            opened = start
        else:
            return cls(start, end, -1, -1, start)
        close = text.find(THINK_END, opened, end)
        if close == -1:
            return cls(start, end, -1, -1, start)
        return cls(start, end, close, close + len(THINK_END), opened)


def _render(tokenizer: Any, chat: list[dict[str, str]], generation_prompt: bool = False) -> str:
    from jinja2 import TemplateError

    try:
        return tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=generation_prompt)
    except TemplateError as exc:  # e.g. a template that refuses tool messages or a system prompt
        raise ValueError(f"the chat template refuses this chat: {exc}") from None


def end_of_turn(text: str, start: int, end: int, markers: tuple[str, ...]) -> int:
    """Where a turn's target ends: before the whitespace the template writes after its end-of-turn token.

    ChatML ends a turn with ``<|im_end|>\\n``: generation stops at ``<|im_end|>``, and the newline
    is the template's separator, never generated, so it is no target (as the next role header is
    not). Whitespace is kept only where no added token (``markers``) precedes it: a template
    without an end-of-turn token ends the turn with that whitespace alone.
    """
    core = text[start:end].rstrip()
    return start + len(core) if core.endswith(markers) else end


def render(tokenizer: Any, chat: list[dict[str, str]]) -> tuple[str, list[Span]]:
    """The chat as the template renders it, and each assistant turn's span in that text.

    A turn's span runs from the end of the chat before it rendered with the generation prompt to
    the end of the chat through it: its own text and the end-of-turn token the template writes
    after it (not the whitespace after that token, see :func:`end_of_turn`), not the role header.
    Rendering growing prefixes works with templates as they are;
    ``apply_chat_template(return_assistant_tokens_mask=True)`` needs ``{% generation %}`` markers,
    which common templates (Qwen, Llama) lack, and returns an all-zero mask without them. It holds
    when the template renders each message independently of later ones (ChatML, Qwen2.5, Llama 3);
    a template that rewrites earlier turns as the chat grows (Qwen3 drops the CoTs of turns before
    the last user message) is refused with a ValueError rather than labelled wrongly.
    """
    full = _render(tokenizer, chat)
    markers = tuple(token.content for token in getattr(tokenizer, "added_tokens_decoder", {}).values())
    spans = []
    assistant = [at for at, message in enumerate(chat) if message["role"] == "assistant"]
    for turn, at in enumerate(assistant):
        where = f" (assistant turn {turn})" if len(assistant) > 1 else ""
        before = _render(tokenizer, chat[:at], generation_prompt=True)
        through = full if at == len(chat) - 1 else _render(tokenizer, chat[: at + 1])
        if not through.startswith(before):
            raise ValueError(
                f"the chat template renders the prompt differently with and without the answer{where}; "
                "cannot tell the target apart"
            )
        if not full.startswith(through):
            raise ValueError(
                f"the chat template renders assistant turn {turn} differently once later messages follow "
                "(it rewrites earlier turns: Qwen3's drops their CoT before a later user message), so one example "
                "cannot label every turn; train with a template that renders each message as it is (ChatML, Qwen2.5)"
            )
        spans.append(Span.of(full, len(before), end_of_turn(full, len(before), len(through), markers)))
    return full, spans


def label(
    ids: list[int], offsets: list[tuple[int, int]], spans: list[Span]
) -> tuple[list[int], list[int], list[tuple[int, int]]]:
    """(labels, segments, the token range of each turn).

    A token overlapping a turn's span is a target of that turn (a token straddling the span's
    edge holds target text); it is think when it starts before the end of the turn's
    ``</think>``, result after it (so the end-of-turn tokens are result targets). Offsets are in
    order (as transformers' own assistant mask assumes), so each edge is a binary search.
    """
    starts = [start for start, _ in offsets]
    ends = [end for _, end in offsets]
    labels, segments = [IGNORE_INDEX] * len(ids), [NOT_TARGET] * len(ids)
    ranges = []
    for span in spans:
        first = bisect_right(ends, span.start)  # the first token that ends after the span starts
        last = max(first, bisect_left(starts, span.end))  # the first token that starts at or after its end
        split = bisect_left(starts, span.think_end, first, last)  # the first result token
        labels[first:last] = ids[first:last]
        segments[first:split] = [THINK] * (split - first)
        segments[split:last] = [RESULT] * (last - split)
        ranges.append((first, last))
    return labels, segments, ranges


def cuttable(segments: list[int], offsets: list[tuple[int, int]], span: Span, rng: tuple[int, int]) -> list[int]:
    """Positions of a turn's CoT tokens that truncation may drop: inside ``<think>...</think>``, not the tags."""
    if span.close == -1:
        return []
    return [
        i
        for i in range(*rng)
        if segments[i] == THINK and offsets[i][0] >= span.cot_start and offsets[i][1] <= span.close
    ]


def whole_characters(cut: list[int], offsets: list[tuple[int, int]], keep: int) -> int:
    """How many of the CoT tokens ``cut`` to keep, at most ``keep``, so that the kept ones end on a character.

    A byte-level tokenizer splits a character it has no token for (an emoji, a rare CJK one) into
    tokens that share its offsets: keeping the first of them would train the CoT on a broken character.
    """
    while 0 < keep < len(cut) and offsets[cut[keep - 1]][1] > offsets[cut[keep]][0]:
        keep -= 1
    return keep


def truncate(example: Example, offsets: list[tuple[int, int]], spans: list[Span], max_length: int) -> Example:
    """``example`` within ``max_length`` tokens, never a turn's call without everything before it.

    The chat is cut after the last assistant turn that fits, that turn's CoT losing tokens from
    its end (keeping ``</think>``, and never part of a character) when it alone is over; earlier
    turns stay whole. A single-turn record thus loses CoT tokens from the end, never its prompt or
    call. ValueError when the first turn's prompt and call alone do not fit.
    """
    ranges = example.turns
    for turn in reversed(range(len(ranges))):
        end = ranges[turn][1]
        cut = cuttable(example.segments, offsets, spans[turn], ranges[turn])
        if end - len(cut) > max_length:
            continue
        keep = whole_characters(cut, offsets, len(cut) - max(end - max_length, 0))
        drop = set(cut[keep:])  # all inside this turn's tokens
        return Example(
            [v for i, v in enumerate(example.input_ids[:end]) if i not in drop],
            [v for i, v in enumerate(example.labels[:end]) if i not in drop],
            [v for i, v in enumerate(example.segments[:end]) if i not in drop],
            truncated=True,
            turns=[*ranges[:turn], (ranges[turn][0], end - len(drop))],
            turns_dropped=len(ranges) - 1 - turn,
        )
    first = ranges[0][1] - len(cuttable(example.segments, offsets, spans[0], ranges[0])) if ranges else 0
    of = f" (the first of {len(ranges)} assistant turns)" if len(ranges) > 1 else ""
    raise ValueError(f"prompt and call alone take {first} tokens{of}, over max_length={max_length}")


def encode_chat(chat: list[dict[str, str]], tokenizer: Any, max_length: int | None = None) -> Example:
    """Render ``chat`` with the tokenizer's chat template and label every assistant turn's tokens."""
    if not getattr(tokenizer, "is_fast", False):
        raise TypeError("a fast tokenizer is needed: segment labels come from its offset mapping")
    full, spans = render(tokenizer, chat)
    encoded = tokenizer(full, add_special_tokens=False, return_offsets_mapping=True)
    offsets = encoded.get("offset_mapping")
    if offsets is None:
        raise TypeError("the tokenizer returned no offset mapping")
    ids = list(encoded["input_ids"])
    labels, segments, turns = label(ids, offsets, spans)
    example = Example(ids, labels, segments, turns=turns)
    if max_length is not None and len(ids) > max_length:
        return truncate(example, offsets, spans, max_length)
    return example
