"""funreason-refine: refine function-calling training data the FunReason way."""

from funreason_refine.hookspecs import hookimpl
from funreason_refine.record import FunctionCall, Record, Verdict
from funreason_refine.stages.base import Stage, StageConfig

__version__ = "0.1.0"
__all__ = ["FunctionCall", "Record", "Stage", "StageConfig", "Verdict", "__version__", "hookimpl"]
