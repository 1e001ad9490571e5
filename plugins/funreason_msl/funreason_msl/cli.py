"""``refine msl-stats``: added to the ``refine`` command by this plugin."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click


@click.command("msl-stats")
@click.argument("run_dir", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--tokenizer",
    "tokenizer_path",
    required=True,
    help="A local tokenizer folder (or a name already in the local Hugging Face cache), or a .gguf file.",
)
@click.option(
    "--gguf-file",
    help="Read the tokenizer stored in this GGUF file of the --tokenizer folder (as load_tokenizer does).",
)
@click.option("--max-length", type=click.IntRange(min=16), help="Truncate as training would.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def msl_stats(run_dir: Path, tokenizer_path: str, gguf_file: str | None, max_length: int | None, as_json: bool) -> None:
    """Think and result token counts of RUN_DIR's kept records (the paper's Table 1), also per assistant turn.

    The records `refine export` writes: a review's decisions (overrides.jsonl) applied, and said how."""
    from rich.console import Console

    from funreason_msl.data import MSLDataset
    from funreason_msl.loading import load_tokenizer
    from funreason_msl.stats import segment_stats
    from funreason_refine.errors import RefineError

    try:
        tokenizer = load_tokenizer(tokenizer_path, gguf_file)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        dataset = MSLDataset.from_run(run_dir, tokenizer, max_length=max_length)
    except (RefineError, ValueError, TypeError) as exc:
        raise click.ClickException(str(exc)) from None
    stats = segment_stats(dataset)
    review = dataset.report.review
    if as_json:
        click.echo(json.dumps(stats, indent=2))
    else:
        console = Console()
        console.print(segment_table(stats))
        console.print(turn_table(stats))
    if review is not None:  # as export says it: on stderr, so that --json stays JSON
        for line in filter(None, [review.describe(), *review.warnings]):
            click.echo(line, err=True)
    for line in dropped_lines(dataset.report.dropped):
        click.echo(line, err=True)


def dropped_lines(dropped: list[str], shown: int = 10) -> list[str]:
    """Which records training would leave out and why (the first ``shown``; --json lists them all)."""
    if not dropped:
        return []
    more = len(dropped) - shown
    tail = [f"  ... and {more} more (--json lists them all, under dropped_records)"] if more > 0 else []
    return [f"{len(dropped)} record(s) dropped, left out of training:", *(f"  {d}" for d in dropped[:shown]), *tail]


def segment_table(stats: dict[str, Any]) -> Any:
    """The paper's Table 1: think and result tokens per example."""
    from rich.table import Table

    table = Table(
        title=(
            f"{stats['examples']} examples ({stats['without_cot']} without a CoT, "
            f"{stats['truncated']} truncated, {stats['dropped']} dropped)"
        ),
        show_edge=False,
    )
    for col in ("segment", "mean tokens", "median", "max", "share of plain-SFT loss"):
        table.add_column(col, justify="left" if col == "segment" else "right")
    for name in ("think", "result"):
        s = stats[name]
        table.add_row(name, f"{s['mean']:.2f}", str(s["median"]), str(s["max"]), f"{s['sft_loss_share']:.1%}")
    return table


def turn_table(stats: dict[str, Any]) -> Any:
    """Think and result tokens per assistant turn position, and how many examples have that many turns."""
    from rich.table import Table

    turns = stats["turns"]
    mix = ", ".join(f"{count} with {n}" for n, count in turns["examples_with"].items())
    left_out = f"; {turns['dropped_by_truncation']} left out by truncation" if turns["dropped_by_truncation"] else ""
    table = Table(title=f"per assistant turn ({turns['mean']:.2f} per example: {mix}{left_out})", show_edge=False)
    for col in ("turn", "examples", "without a CoT", "think mean", "median", "max", "result mean", "median", "max"):
        table.add_column(col, justify="right")
    for row in stats["per_turn"]:
        think, result = row["think"], row["result"]
        table.add_row(
            str(row["turn"]),
            str(row["examples"]),
            str(row["without_cot"]),
            *(
                f"{s['mean']:.2f}" if key == "mean" else str(s[key])
                for s in (think, result)
                for key in ("mean", "median", "max")
            ),
        )
    return table
