"""refine estimate: what a judged run will cost, in calls, tokens, money and time, before it runs."""

from __future__ import annotations

import json
from pathlib import Path

import click

from funreason_refine.cli.app import JUDGE_MODEL_HELP, input_option, main, out, warn


@main.command()
@click.argument("pipeline", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--sample", type=click.IntRange(min=1), help="Estimate on N records drawn at random (seeded), scaled up.")
@click.option("--output-tokens", type=click.IntRange(min=1), help="Output tokens a call (default: measured or 200).")
@click.option(
    "--probe",
    type=click.IntRange(min=1),
    help="Measure the answers with P real calls per stage and model (paid; kept in the run folder's answer cache, "
    "so the run does not pay for them again): their tokens and seconds, how many calls the server answers at once "
    "(P >= 3), and how often answers miss the protocol; what it found is kept in the run folder's probe.json.",
)
@click.option("--judge-model", help=JUDGE_MODEL_HELP)
@input_option
@click.option("--json", "as_json", is_flag=True, help="The estimate as JSON, for scripts.")
def estimate(
    pipeline: Path,
    sample: int | None,
    output_tokens: int | None,
    probe: int | None,
    judge_model: str | None,
    input_path: str | None,
    as_json: bool,
) -> None:
    """Predict the calls, tokens, cost and time of a judged run of PIPELINE before it spends anything."""
    from funreason_refine.config import load_pipeline
    from funreason_refine.estimate import estimate as estimate_run

    if output_tokens is not None and probe is not None:
        raise click.UsageError("give --output-tokens or --probe, not both")
    loaded = load_pipeline(pipeline, judge_model=judge_model, input_path=input_path)
    if not as_json:
        from funreason_refine.cli.running import print_models

        print_models(loaded)
    result = estimate_run(loaded, sample, output_tokens, probe)
    if as_json:
        click.echo(json.dumps(result.as_dict(), indent=2))
        return
    from funreason_refine.estimate.table import estimate_lines, estimate_table

    out.print(estimate_table(result))
    for line in estimate_lines(result):
        out.print(line, highlight=False, markup=False)
    for warning in result.warnings:
        warn(warning)
