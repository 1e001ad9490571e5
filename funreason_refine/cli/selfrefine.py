"""refine selfrefine: the paper's self-refinement loop."""

from __future__ import annotations

from pathlib import Path

import click
from rich.table import Table

from funreason_refine.cli.app import JUDGE_MODEL_HELP, main, out


@main.command("selfrefine")
@click.argument("pipeline", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--rounds", type=click.IntRange(min=1), default=2, show_default=True)
@click.option("--judge-model", help=JUDGE_MODEL_HELP)
def selfrefine_command(pipeline: Path, rounds: int, judge_model: str | None) -> None:
    """Self-refinement: [source] sample_from writes answers, the stages keep the good ones, per round."""
    from funreason_refine.config import load_pipeline
    from funreason_refine.selfrefine import selfrefine

    loaded = load_pipeline(pipeline, judge_model=judge_model)
    summaries = selfrefine(loaded, rounds)  # a ConfigError, naming what to add, when [source] is missing
    model = loaded.source.model if loaded.source else "?"
    table = Table(title=f"Self-refinement of {loaded.input.path.name} with {model}", show_edge=False)
    for col in (
        "round",
        "queries sampled",
        "candidates",
        "kept",
        "queries with a survivor",
        "pool after",
        "pass rate per stage",
    ):
        table.add_column(col, justify="left" if col.startswith("pass") else "right", overflow="fold")
    for r in summaries:
        rates = ", ".join(f"{k} {v:.0%}" for k, v in r["pass_rate"].items() if v is not None)
        table.add_row(
            str(r["round"]),
            str(r["queries_sampled"]),
            str(r["candidates"]),
            str(r["kept"]),
            str(r["queries_with_a_survivor"]),
            str(r["pool_after"]),
            rates,
        )
    out.print(table)
    out.print(
        f"rounds in {loaded.output_dir}/round-N (kept.jsonl of each is its training set); "
        f"summary in {loaded.output_dir / 'selfrefine.json'}",
        markup=False,
        highlight=False,
    )
