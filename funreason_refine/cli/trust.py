"""refine calibrate, refine review: measuring the judge against people, and overruling it."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
from rich.markup import escape

from funreason_refine.cli.app import err, main, out, warn
from funreason_refine.errors import RefineError


@main.command()
@click.argument("golden", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("pipeline", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--judge-model",
    "judge_models",
    multiple=True,
    help="A candidate judge (any LiteLLM model) at its provider's own endpoint, MODEL@URL at URL, in place of "
    "the pipeline's [judge] and [generate]; repeat for more.",
)
@click.option(
    "--prompts",
    "prompt_dirs",
    multiple=True,
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="A prompt variant: a folder of stage spec TOML files laid over the pipeline's; repeat for more.",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("calibration"),
    show_default=True,
    help="Folder for calibration.json, calibration.html and one run folder per candidate.",
)
@click.option(
    "--run",
    "run_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Say what this finished run's kept set is worth under the measured error of the candidate that is its "
    "judge (default: the pipeline's own run folder, when it holds a finished run).",
)
@click.option(
    "--golden-from",
    "golden_from",
    type=click.Path(file_okay=False, path_type=Path),
    help="First write GOLDEN from the decisions made with `refine review` in this run folder.",
)
@click.option(
    "--min-scored",
    type=click.FloatRange(0, 1),
    default=0.9,
    show_default=True,
    help="The share of the (readable) golden records a candidate must end kept or discarded to be ranked; one "
    "whose other records ended in errors.jsonl (no verdict) or were not reached is shown, not ranked. Exit status "
    "1 when no candidate judge can be ranked.",
)
@click.option(
    "--target-precision",
    type=click.FloatRange(0, 1),
    help="Also propose each scorer's threshold that discards the most while the precision of its discards stays "
    "at or above this (default: only the threshold with the best F1).",
)
def calibrate(
    golden: Path,
    pipeline: Path | None,
    judge_models: tuple[str, ...],
    prompt_dirs: tuple[Path, ...],
    out_dir: Path,
    run_dir: Path | None,
    golden_from: Path | None,
    min_scored: float,
    target_precision: float | None,
) -> None:
    """Score candidate judges against the labels of GOLDEN, running PIPELINE once per candidate, and rank them by
    Cohen's kappa (then F1, then cost)."""
    from funreason_refine.calibrate.run import calibrate as run_calibration

    if golden_from is not None:
        from funreason_refine.calibrate.from_review import golden_from_review

        written = golden_from_review(golden_from, golden)
        out.print(
            f"wrote {written.records} labelled records to {golden} from the review of {golden_from}",
            markup=False,
            highlight=False,
        )
        for note in written.notes:
            err.print(f"[yellow]note:[/] {escape(note)}", highlight=False)
        if pipeline is None:
            return
    if pipeline is None:
        raise RefineError("give the PIPELINE to calibrate (or --golden-from RUN_DIR to only write GOLDEN)")

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bars = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        disable=not err.is_terminal,
    )

    def on_candidate(name: str, number: int, total: int, records: int) -> None:
        bars.add_task(f"candidate {number}/{total}: {escape(name)}", total=records)
        if not err.is_terminal:
            err.print(f"candidate {number}/{total}: {escape(name)}", highlight=False)

    with bars:
        report = run_calibration(
            golden,
            pipeline,
            out_dir,
            list(judge_models),
            list(prompt_dirs),
            on_candidate,
            lambda kind: bars.advance(bars.task_ids[-1]),
            run_dir,
            min_scored,
            target_precision,
        )
    _show_calibration(report, out_dir, min_scored)


def _show_calibration(report: dict[str, Any], out_dir: Path, min_scored: float) -> None:
    """The calibration's tables, ranking and worth; exit 1 when no candidate judge could be ranked or one failed."""
    from funreason_refine.calibrate.run import HTML_NAME, JSON_NAME
    from funreason_refine.calibrate.tables import calibration_tables, threshold_lines

    for table in calibration_tables(report):
        out.print(table)
    for line in threshold_lines(report):
        out.print(line, markup=False, highlight=False)
    for note in report["golden"].get("notes", []):
        warn(note)
    _print_ranking(report)
    if report["worth"] is not None:
        show_worth(report["worth"])
    else:
        out.print(
            "no finished run to apply the measured error to: after a run, `refine report RUN_DIR --calibration "
            f"{out_dir}` says what its kept set is worth",
            markup=False,
            highlight=False,
        )
    out.print(
        f"wrote {out_dir / JSON_NAME} and {out_dir / HTML_NAME}; each candidate's run folder is in {out_dir}",
        markup=False,
        highlight=False,
    )
    judges = [c for c in report["candidates"] if c["judge"]]
    if judges and not any(c["rank"] for c in judges):
        err.print(
            "[red]error:[/] no candidate judge can be ranked: none ended enough of the golden records kept or "
            f"discarded (--min-scored {min_scored:g}); each one's reason is above",
            highlight=False,
        )
        sys.exit(1)
    if any("error" in c for c in report["candidates"]):
        sys.exit(1)


def show_worth(section: dict[str, Any]) -> None:
    """The worth table of a run's kept set, its notes, and its warnings (a judge that is not the run's)."""
    from funreason_refine.calibrate.worth_view import notes, worth_table

    table = worth_table(section)
    if table is not None:
        out.print(table)
    for note in notes(section):
        err.print(f"[yellow]note:[/] {escape(note)}", highlight=False)
    for warning in section["warnings"]:
        warn(warning)


def _print_ranking(report: dict[str, Any]) -> None:
    """The ranking, and why each candidate left out of it is."""
    ranking = report["ranking"]
    if ranking["ranked"]:
        order = ", ".join(f"{n}. {name}" for n, name in enumerate(ranking["ranked"], 1))
        out.print(f"ranked by {', then '.join(ranking['by'])}: {order}", markup=False, highlight=False)
    for c in report["candidates"]:
        if c.get("not_ranked") and "error" not in c:
            warn(f"{c['name']} is not ranked: {c['not_ranked']}")


@main.command()
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--port", type=click.IntRange(0, 65535), default=0, help="Port on 127.0.0.1 (default: any free port).")
@click.option("--no-browser", is_flag=True, help="Only print the address; do not open a browser.")
@click.option(
    "--kept-sample",
    type=click.IntRange(min=0),
    default=50,
    show_default=True,
    help="Kept records to review, drawn at random (the same ones each time), to catch wrong keeps.",
)
@click.option(
    "--allow-partial",
    is_flag=True,
    help="Review a run that is not finished (interrupted, or still being written): the records it has finished. "
    "Without it such a folder is refused.",
)
def review(run_dir: Path, port: int, no_browser: bool, kept_sample: int, allow_partial: bool) -> None:
    """Review RUN_DIR's verdicts in the browser; decisions go to RUN_DIR/overrides.jsonl."""
    import webbrowser

    from funreason_refine.review.server import ReviewServer

    server = ReviewServer(run_dir, port, kept_sample, allow_partial)
    if not server.state.folder.complete:
        warn(server.state.folder.partial_note())
    items = server.state.index.items
    out.print(
        f"review of {run_dir}: {sum(i.kind == 'discarded' for i in items)} discarded and "
        f"{sum(i.kind == 'kept' for i in items)} kept records at {server.url} (Ctrl-C to stop); "
        f"decisions go to {run_dir / 'overrides.jsonl'}",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )
    sys.stdout.flush()
    if not no_browser:
        webbrowser.open(server.url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        out.print("review stopped; every decision acknowledged on the page is saved")
