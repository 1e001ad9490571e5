"""refine report, audit, compare, export: reading a run folder back."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.markup import escape

from funreason_refine.cli.app import err, main, out, warn
from funreason_refine.cli.trust import show_worth
from funreason_refine.errors import RefineError
from funreason_refine.export.write import replace_text


@main.command()
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--calibration",
    type=click.Path(exists=True, path_type=Path),
    help="A `refine calibrate` folder: add what the kept set is worth (truly bad among the kept, truly good among "
    "the discarded), corrected for the measured error of the candidate that is this run's judge.",
)
@click.option(
    "--candidate",
    help="With --calibration: apply this candidate (its name or folder name) even when it is not the run's judge "
    "(warned).",
)
def report(run_dir: Path, calibration: Path | None, candidate: str | None) -> None:
    """Summarise RUN_DIR and write report.md and report.html (self-contained) into it."""
    from funreason_refine.console import report_tables
    from funreason_refine.report.build import build_report
    from funreason_refine.report.conversations import conversation_tables
    from funreason_refine.report.data import load_run
    from funreason_refine.report.html import render_html
    from funreason_refine.report.markdown import render_markdown
    from funreason_refine.report.review import review_tables
    from funreason_refine.run_state import folder_state

    if candidate is not None and calibration is None:
        raise click.UsageError("--candidate picks a candidate of --calibration DIR: give both")
    run = load_run(run_dir, "report")
    built = build_report(run)
    if calibration is not None:
        from funreason_refine.calibrate.worth import read_calibration, worth

        built["worth"] = worth(run_dir, run.summary, read_calibration(calibration), candidate)
    replace_text(run_dir / "report.md", render_markdown(built))
    replace_text(run_dir / "report.html", render_html(built))
    for table in report_tables(built):
        out.print(table)
    for table in review_tables(built):
        out.print(table)
    for table in conversation_tables(built):
        out.print(table)
    if "worth" in built:
        show_worth(built["worth"])
    out.print(f"wrote {run_dir / 'report.md'} and {run_dir / 'report.html'}", markup=False, highlight=False)
    for warning in (built.get("review") or {}).get("warnings", []):
        warn(warning)
    stopped = folder_state(run_dir).stop_note()
    if stopped is not None:
        warn(f"{stopped} (the figures above are of the records it finished)")


@main.command()
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--stage", help="Only records discarded by this stage.")
@click.option("--reason", help="Only records discarded with this reason code.")
@click.option(
    "--turn", type=click.IntRange(min=0), help="Only conversations discarded at this assistant turn (0 is the first)."
)
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=20,
    show_default=True,
    help="Show the first N matching records; how many more match is said on stderr.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON record per line, for scripts.")
@click.option(
    "--allow-partial",
    is_flag=True,
    help="Read a run that is not finished (interrupted, or still being written): the records it has finished, "
    "with a warning. Without it such a folder is refused.",
)
def audit(
    run_dir: Path,
    stage: str | None,
    reason: str | None,
    turn: int | None,
    limit: int,
    as_json: bool,
    allow_partial: bool,
) -> None:
    """Browse the discarded records of RUN_DIR (and its hard pool's) with the reasons and verdict trail."""
    from funreason_refine.console import audit_panels
    from funreason_refine.report.audit import discarded, filters_available, nothing_let_go
    from funreason_refine.report.data import load_run

    run = load_run(run_dir, "audit", allow_partial, offer_partial=True)
    if run.state is not None:
        warn(run.state.partial_note())
    found = 0
    for record in discarded(run, stage, reason, turn):
        found += 1
        if found > limit:
            continue  # counted, for the note below
        if as_json:
            click.echo(json.dumps(record, ensure_ascii=True))
        else:
            for part in audit_panels(record, boxed=out.is_terminal):
                out.print(part)
    nothing = None if found else nothing_let_go(run)
    if nothing is not None:
        err.print(nothing, markup=False, highlight=False)
    elif not found:
        raise RefineError(f"no discarded record in {run_dir} matches; there are: {filters_available(run, turn)}")
    if found > limit:
        left = found - limit
        err.print(f"{limit} of {found} matching records shown, {left} left out: --limit {found} shows them all")


@main.command()
@click.argument("run_a", type=click.Path(file_okay=False, path_type=Path))
@click.argument("run_b", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--html",
    "html_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("compare.html"),
    show_default=True,
    help="Where to write the HTML comparison.",
)
def compare(run_a: Path, run_b: Path, html_path: Path) -> None:
    """Compare two runs of the same input (e.g. two judges): agreement per stage, Cohen's kappa."""
    from funreason_refine.console import compare_tables
    from funreason_refine.report.compare import compare_runs, render_compare_html
    from funreason_refine.report.data import load_run

    a, b = load_run(run_a, "compare"), load_run(run_b, "compare")
    if a.summary.input.path != b.summary.input.path:
        err.print(
            "[yellow]note:[/] "
            + escape(
                f"the runs read different inputs ({a.summary.input.path} and {b.summary.input.path}); "
                "records are matched by position"
            ),
            highlight=False,
        )
    result = compare_runs(a, b)
    for table in compare_tables(result):
        out.print(table)
    replace_text(html_path, render_compare_html(result))
    out.print(f"wrote {html_path}", markup=False, highlight=False)


@main.command()
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["funreason", "hermes", "sharegpt", "openai"]),
    required=True,
    help="funreason: the paper's <think> + [calls] target; hermes: <tool_call> blocks; sharegpt: "
    "LLaMA-Factory; openai: messages with tool_calls (TRL).",
)
@click.option(
    "-o",
    "--output",
    "output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="JSONL file, or .parquet for Parquet.",
)
@click.option(
    "--hub-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write a dataset folder for the Hugging Face Hub here: the kept records (Parquet), the discarded ones, "
    "and a README.md dataset card (see docs/hub.md).",
)
@click.option(
    "--allow-partial",
    is_flag=True,
    help="Export (-o) a run that is not finished (interrupted, or still being written): the records it has "
    "finished, with a warning. Without it such a folder is refused.",
)
@click.option(
    "--without-cot",
    is_flag=True,
    help="Write every assistant turn without its CoT (-o; sharegpt and openai): for chat templates with no place "
    "for one (see docs/export.md).",
)
def export(
    run_dir: Path, fmt: str, output: Path | None, hub_dir: Path | None, allow_partial: bool, without_cot: bool
) -> None:
    """Write RUN_DIR's kept records as training data (-o FILE), or as a dataset folder (--hub-dir DIR)."""
    from funreason_refine.export import export_reviewed

    if output is None and hub_dir is None:
        raise click.UsageError("give -o FILE, --hub-dir DIR, or both")
    if without_cot and fmt in ("funreason", "hermes"):
        raise click.UsageError(
            f"--without-cot applies to --format sharegpt or openai: the {fmt} format's system prompt asks for "
            "a <think> block, which answers without one would contradict"
        )
    if without_cot and output is None:
        raise click.UsageError(
            "--without-cot applies to -o FILE: a dataset folder (--hub-dir) publishes the records whole, CoTs "
            "included, for its users to choose"
        )
    if output is not None:
        result = export_reviewed(run_dir, fmt, output, allow_partial, with_cot=not without_cot)
        out.print(
            f"wrote {result.written} records to {output}"
            + (" without their CoTs" if without_cot else "")
            + (f" and {output.parent / 'dataset_info.json'}" if fmt == "sharegpt" else ""),
            markup=False,
            highlight=False,
        )
        if result.describe():
            out.print(result.describe(), highlight=False, markup=False)
        for warning in [*result.warnings, *filter(None, [result.partial_warning()])]:
            warn(warning)
    if hub_dir is not None:
        from funreason_refine.cli.hub import hub_folder

        hub_folder(run_dir, fmt, hub_dir)
