"""The dataset audits in the report: the ``dataset`` section of summary.json, with the records that
duplicates duplicate, and its terminal tables (shown by `refine run` and `refine report`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.markup import escape
from rich.table import Table

if TYPE_CHECKING:
    from funreason_refine.summary import CallMix, DatasetSection, Summary

KINDS = {
    "text": "text reply",
    "no_call": "no call",
    "one_call": "one call",
    "parallel": "parallel calls",
    "several_functions": "several functions",
}


def dataset_section(summary: Summary, records: Any) -> dict[str, Any] | None:
    """summary.json's ``dataset``, each duplicate example with the id and query of the record it
    duplicates (from ``records``, the report's polars frame); None for a run made before the audits."""
    import polars as pl

    if summary.dataset is None:
        return None
    dataset = summary.dataset.model_dump()
    wanted = [e["of"] for e in dataset["duplicates"]["examples"]]
    found = records.filter(pl.col("index").is_in(wanted)).select("index", "id", "query").rows()
    firsts = {index: {"id": rid, "query": query} for index, rid, query in found}
    missing = {"id": None, "query": ""}
    examples = [{**e, "first": firsts.get(e["of"], missing)} for e in dataset["duplicates"]["examples"]]
    return {**dataset, "duplicates": {**dataset["duplicates"], "examples": examples}}


def dataset_tables(dataset: DatasetSection | None) -> list[Table]:
    """What the audits found and the call mix; the warnings, when the kept set lacks a kind of answer."""
    if dataset is None:
        return []
    tables = [_found_table(dataset), _mix_table(dataset.call_mix)]
    if dataset.warnings:
        warnings = Table(show_edge=False, show_header=False)
        warnings.add_column(style="yellow", overflow="fold")
        for warning in dataset.warnings:
            warnings.add_row(f"warning: {escape(warning)}")
        tables.append(warnings)
    return tables


def _found_table(dataset: DatasetSection) -> Table:
    dups, cont, dropped = dataset.duplicates, dataset.contamination, dataset.dropped
    found = Table(title=f"Dataset audits ({dataset.audited} records the stages kept)", show_edge=False)
    for col, justify in (("audit", "left"), ("found", "right"), ("dropped", "right"), ("how", "left")):
        found.add_column(col, justify=justify)  # type: ignore[arg-type]
    found.add_row(
        "exact duplicates", str(dups.exact), str(dropped.get("duplicate", 0)), "same normalised query and answer"
    )
    checked = dups.near is not None
    found.add_row(
        "near-duplicate queries",
        str(dups.near) if checked else "-",
        str(dropped.get("near_duplicate", 0)),
        f"word-pair Jaccard similarity >= {dups.near_threshold:g}"
        if checked
        else escape("not looked for ([audit] near_duplicates = true)"),
    )
    sets = len(cont.eval_sets)
    found.add_row(
        "contaminated",
        str(cont.records) if sets else "-",
        str(dropped.get("contaminated", 0)),
        f">= {cont.threshold:.0%} of {cont.ngram}-word sequences in {sets} eval set(s)"
        if sets
        else escape("no [audit] eval_sets"),
    )
    return found


def _mix_table(mix: CallMix) -> Table:
    """The kept records by kind of answer; with conversations, their assistant turns too."""
    turns = mix.turns or {}
    by_turn = bool(turns) and turns.get("assistant_turns", 0) != mix.records
    calls = Table(title=f"Call mix of the kept set ({mix.records} records)", show_edge=False)
    if by_turn:
        calls.add_column("counted by", justify="left")
    for label in KINDS.values():
        calls.add_column(label, justify="right")
    per_record = [_share(getattr(mix, kind), mix.records) for kind in KINDS]
    if not by_turn:
        calls.add_row(*per_record)
        return calls
    calls.add_row("record (its last turn)", *per_record)
    total = turns["assistant_turns"]
    calls.add_row(f"assistant turn ({total})", *(_share(turns.get(kind, 0), total) for kind in KINDS))
    return calls


def example_table(dataset: dict[str, Any] | None, limit: int = 5) -> list[Table]:
    """The first duplicates and contaminated records (`refine report`)."""
    if dataset is None:
        return []
    rows = [
        (e["index"], e["id"], e["kind"], f"record {e['of']} (similarity {e['similarity']:.2f})", e["dropped"])
        for e in dataset["duplicates"]["examples"][:limit]
    ] + [
        (e["index"], e["id"], "contaminated", f"{e.get('eval_id')} ({e['overlap']:.0%} overlap)", e["dropped"])
        for e in dataset["contamination"]["examples"][:limit]
    ]
    if not rows:
        return []
    table = Table(title="Dataset audits: first examples (more in report.html)", show_edge=False)
    for col in ("record", "id", "found", "of", "dropped"):
        table.add_column(col, overflow="fold")
    for index, rid, kind, of, dropped in rows:
        table.add_row(str(index), escape(str(rid)), kind, escape(of), "yes" if dropped else "no")
    return [table]


def _share(n: int, total: int) -> str:
    return f"{n} ({n / total:.0%})" if total else "0"
