"""The built-in plugin: registers the five stages through the same hook third parties use.

Each stage's ``order`` places it in the default pipeline (the paper's order)."""

from __future__ import annotations

from collections.abc import Callable

from funreason_refine.hookspecs import hookimpl
from funreason_refine.stages.classification import Classification
from funreason_refine.stages.conversation import ConversationStructure
from funreason_refine.stages.cot import Cot
from funreason_refine.stages.format import Format
from funreason_refine.stages.function_params import FunctionParams
from funreason_refine.stages.query_tool import QueryTool


@hookimpl
def register_stages(register: Callable[..., None]) -> None:
    for stage in (ConversationStructure, Classification, QueryTool, Cot, FunctionParams, Format):
        register(stage)
