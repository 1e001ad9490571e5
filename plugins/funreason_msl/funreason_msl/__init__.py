"""funreason-msl: FunReason's multiscale loss (MSL) for training on funreason-refine's kept records.

``from funreason_msl import msl_loss`` needs only torch; the Trainer pieces and the loaders need transformers.
Nothing is imported until asked for: the ``refine`` command loads this plugin on every start.
"""

from importlib import import_module

__version__ = "0.1.0"
_WHERE = {
    "msl_loss": "loss",
    "segment_counts": "loss",
    "segments_from_labels": "loss",
    "IGNORE_INDEX": "loss",
    "NOT_TARGET": "loss",
    "THINK": "loss",
    "RESULT": "loss",
    "MSLDataset": "data",
    "MSLCollator": "data",
    "MSLLoss": "trainer",
    "MSLTrainer": "trainer",
    "MSLMixin": "trainer",
    "LearnableAlpha": "trainer",
    "load_model": "loading",
    "load_tokenizer": "loading",
}
__all__ = sorted(_WHERE) + ["__version__"]


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(import_module(f"funreason_msl.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'funreason_msl' has no attribute {name!r}")
