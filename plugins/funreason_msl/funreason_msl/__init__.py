"""funreason-msl: FunReason's multiscale loss (MSL) for training on funreason-refine's kept records.

``from funreason_msl import msl_loss`` needs only torch; the Trainer pieces need transformers.
"""

from funreason_msl.loss import IGNORE_INDEX, NOT_TARGET, RESULT, THINK, msl_loss, segment_counts, segments_from_labels

__version__ = "0.1.0"
__all__ = ["IGNORE_INDEX", "LearnableAlpha", "MSLCollator", "MSLDataset", "MSLLoss", "MSLTrainer", "NOT_TARGET",
           "RESULT", "THINK", "__version__", "msl_loss", "segment_counts", "segments_from_labels"]


def __getattr__(name: str):
    # transformers is imported only when the Trainer pieces are asked for.
    if name in {"MSLLoss", "MSLTrainer", "LearnableAlpha"}:
        from funreason_msl import trainer

        return getattr(trainer, name)
    if name in {"MSLDataset", "MSLCollator"}:
        from funreason_msl import data

        return getattr(data, name)
    raise AttributeError(name)
