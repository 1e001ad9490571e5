"""Tokenizer and model for training, from a Hugging Face folder or name, or from a GGUF file.

transformers reads a GGUF file (with the ``gguf`` package) and dequantizes every tensor on load,
but keeps the GGUF quantization config on the model: ``Trainer`` then refuses it as "purely
quantized" and ``save_pretrained`` fails. :func:`load_model` removes that config, nothing else.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def split_gguf(path: str | Path, gguf_file: str | None = None) -> tuple[str, str | None]:
    """(folder or name, GGUF file name or None): a path to a ``.gguf`` file is split into its folder and name."""
    path = str(path)
    if gguf_file is None and path.endswith(".gguf") and Path(path).is_file():
        return str(Path(path).parent), Path(path).name
    return path, gguf_file


def load_tokenizer(path: str | Path, gguf_file: str | None = None) -> Any:
    """``AutoTokenizer.from_pretrained`` of a folder or name, or of the tokenizer stored in a GGUF file.

    ``path`` may be the ``.gguf`` file itself, or its folder with ``gguf_file`` naming it. A
    folder that holds GGUF files but no tokenizer files raises a ValueError naming them (rather
    than transformers' advice to install sentencepiece or tiktoken).
    """
    from transformers import AutoTokenizer

    where, name = split_gguf(path, gguf_file)
    try:
        return AutoTokenizer.from_pretrained(where, gguf_file=name) if name else AutoTokenizer.from_pretrained(where)
    except (OSError, ValueError) as exc:
        ggufs = sorted(p.name for p in Path(where).glob("*.gguf")) if name is None and Path(where).is_dir() else []
        if ggufs:
            raise ValueError(
                f"{where} has no tokenizer files but holds {', '.join(ggufs)}: name the GGUF file "
                f"(--gguf-file {ggufs[0]}, or gguf_file={ggufs[0]!r}), or give its path"
            ) from None
        raise ValueError(f"cannot load a tokenizer from {str(path)!r}: {exc}") from None


def load_model(path: str | Path, gguf_file: str | None = None, dtype: Any = None) -> Any:
    """``AutoModelForCausalLM.from_pretrained``, ready for ``Trainer`` and ``save_pretrained``.

    From a GGUF file (``path`` the file, or its folder with ``gguf_file``) the weights come
    dequantized (float32 unless ``dtype`` says otherwise) and the GGUF quantization config is
    removed, so the model trains as a plain one and saves as safetensors. Other quantized
    checkpoints (bitsandbytes, ...) are left as they are.
    """
    from transformers import AutoModelForCausalLM

    where, name = split_gguf(path, gguf_file)
    kwargs: dict[str, Any] = {} if dtype is None else {"dtype": dtype}
    if name is not None:
        kwargs["gguf_file"] = name
    model = AutoModelForCausalLM.from_pretrained(where, **kwargs)
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is not None and getattr(quantizer.quantization_config, "quant_method", None) == "gguf":
        quantizer.remove_quantization_config(model)  # the tensors are already dequantized: only the label goes
    return model
