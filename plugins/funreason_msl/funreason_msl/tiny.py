"""A tiny tokenizer and causal LM built locally (nothing downloaded), for tests, examples and benchmarks."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

SPECIAL = ["<pad>", "<eos>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"]
# Qwen-style ChatML; deliberately without {% generation %} markers, which MSLDataset does not need.
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def tiny_tokenizer(texts: Iterable[str], vocab_size: int = 600, think_tokens: bool = True) -> Any:
    """A byte-level BPE tokenizer trained on ``texts``, with ChatML and think tokens as special tokens.

    ``think_tokens=False`` leaves ``<think>`` and ``</think>`` to BPE, as most released models'
    tokenizers do (SmolLM2's: ``</think>`` is three tokens there).
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    special = SPECIAL if think_tokens else [t for t in SPECIAL if t not in ("<think>", "</think>")]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=special, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(list(texts), trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<pad>",
        eos_token="<eos>",
        additional_special_tokens=special[2:],
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def tiny_model(vocab_size: int, seed: int = 0) -> Any:
    """A randomly initialised two-layer Llama with a 64-wide hidden state."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=2048,
    )
    return LlamaForCausalLM(config)
