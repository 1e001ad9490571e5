"""Reference labels that contradict their own tool schema: what readers note and ``function_params`` rules on.

A reader that knows more than one acceptable value per argument (BFCL's possible answers) notes a
:class:`~funreason_refine.record.Problem` with this code for each argument no acceptable value can
satisfy; when ``function_params`` then finds that very argument invalid, it discards the record
with this reason instead of a generic one, so label bugs are counted, and found, apart.
"""

from __future__ import annotations

from funreason_refine.record import Problem, Record

LABEL_CONTRADICTS_SCHEMA = "label_contradicts_schema"


def label_field(call_index: int, function: str, parameter: str) -> str:
    """Where a label problem points: ``ground_truth[1].bank.calculate_balance.type``."""
    return f"ground_truth[{call_index}].{function}.{parameter}"


def label_problem(record: Record, call_index: int, function: str, parameter: str) -> Problem | None:
    """The reader's note that this argument of the label contradicts its schema, if there is one."""
    if not record.problems:
        return None
    field = label_field(call_index, function, parameter)
    return next((p for p in record.problems if p.code == LABEL_CONTRADICTS_SCHEMA and p.field == field), None)
