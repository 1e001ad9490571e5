"""How much of each prompt a server's prefix cache could reuse, modelled as vLLM's automatic prefix caching.

vLLM keeps the KV cache of a prompt in blocks of 16 tokens, each block known by a hash of its
tokens and of the block before it; a new prompt reuses the leading blocks whose hashes it holds,
and blocks not used lately are evicted first. Counting tokens here would cost a tokenizer pass per
call, so the model works on characters: blocks of ``BLOCK_CHARS`` characters (about 16 tokens of
English or JSON), the hash chain and an LRU of ``CAPACITY_BLOCKS`` blocks per server; the share of
a prompt's characters in reused blocks, times its prompt tokens, is its ``reusable_prefix_tokens``.
Written by hand: no library models a server's prefix cache; it costs about 30 us a call.
"""

from __future__ import annotations

from collections import OrderedDict

BLOCK_CHARS = 64
CAPACITY_BLOCKS = 16_384
"""Blocks one server keeps (about 256k tokens: what vLLM holds for a 32B model on two 80 GB GPUs)."""


def prompt_text(messages: list[dict[str, str]]) -> str:
    """The messages as one string, as a chat template lays them out (role, then content, in order)."""
    return "".join(f"\x1e{m.get('role', '')}\x1f{m.get('content') or ''}" for m in messages)


class PrefixCache:
    """The prompt blocks one server has seen, least recently used first."""

    def __init__(self, capacity: int = CAPACITY_BLOCKS, block: int = BLOCK_CHARS):
        self.capacity = capacity
        self.block = block
        self._blocks: OrderedDict[int, None] = OrderedDict()

    def reuse(self, text: str) -> float:
        """The share of ``text`` in leading blocks seen before (0.0 to 1.0); its blocks are then kept."""
        if not text:
            return 0.0
        blocks, size = self._blocks, self.block
        parent, reused, hit = 0, 0, True
        for start in range(0, len(text) - size + 1, size):  # a partial last block is never cached
            parent = hash((parent, text[start : start + size]))
            if hit and parent in blocks:
                reused += size
                blocks.move_to_end(parent)
            else:
                hit = False
                blocks[parent] = None
        while len(blocks) > self.capacity:
            blocks.popitem(last=False)
        return reused / len(text)


class PrefixCaches:
    """One :class:`PrefixCache` per server (a prefix cached on one server does not help another)."""

    def __init__(self, capacity: int = CAPACITY_BLOCKS):
        self.capacity = capacity
        self._servers: dict[tuple[str, str], PrefixCache] = {}

    def reusable_tokens(self, model: str, server: str, messages: list[dict[str, str]], prompt_tokens: int) -> int:
        """Of a call's ``prompt_tokens``, those a prefix cache on ``server`` could have reused."""
        cache = self._servers.get((model, server))
        if cache is None:
            cache = self._servers[(model, server)] = PrefixCache(self.capacity)
        return round(prompt_tokens * cache.reuse(prompt_text(messages)))
