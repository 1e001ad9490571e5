"""LiteLLM, imported once where a call needs it: offline, quiet, never downloading a tokenizer."""

from __future__ import annotations

import logging
import os
import warnings
from typing import Any


def load_litellm() -> Any:
    """The ``litellm`` module, set up for this project (an import of a few seconds: call it where it is used)."""
    # Never fetch the price list from the network; never print LiteLLM's help banner.
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    litellm.suppress_debug_info = True
    # Prompts are counted for token rate limits and answers without usage; never download a tokenizer for
    # that (tiktoken ships inside LiteLLM).
    litellm.disable_hf_tokenizer_download = True
    logging.getLogger("LiteLLM").setLevel(logging.CRITICAL)
    # A call cancelled by Ctrl-C, or refused before it was sent (no API key), leaves the coroutine of LiteLLM's
    # provider handler unawaited in its thread: Python's warning about it says nothing a user can act on.
    warnings.filterwarnings(
        "ignore", message=r"coroutine '\w*(Completion|Handler)\.[\w.<>]+' was never awaited", category=RuntimeWarning
    )
    return litellm
