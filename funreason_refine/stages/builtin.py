"""The built-in plugin: registers the five stages through the same hook third parties use."""

from __future__ import annotations

from funreason_refine.hookspecs import hookimpl
from funreason_refine.stages.classification import Classification
from funreason_refine.stages.cot import Cot
from funreason_refine.stages.format import Format
from funreason_refine.stages.function_params import FunctionParams
from funreason_refine.stages.query_tool import QueryTool


@hookimpl
def register_stages(register):
    for stage in (Classification, QueryTool, Cot, FunctionParams, Format):
        register(stage)
