"""The ``refine`` command: parse arguments, call the library, print. No logic lives here."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from funreason_refine.errors import ConfigError, RefineError

if TYPE_CHECKING:
    from funreason_refine.config import Pipeline

DEBUG_ENV = "FUNREASON_REFINE_DEBUG"
# Exit statuses (README, "Commands"): 2 is click's usage error.
EXIT_ERROR = 1  # a configuration, input, plugin or run-folder problem, said in one line
EXIT_RECORD_ERRORS = 3  # the run finished with records in errors.jsonl: `refine retry RUN_DIR` redoes them
EXIT_JUDGE_OUTAGE = 4  # every server of a judge failed past its outage_timeout; the run resumes where it stopped
EXIT_INTERRUPTED = 130  # Ctrl-C or SIGTERM; the run resumes where it stopped
PIPED_WIDTH = 10_000  # output to a pipe or file is not wrapped: a table row stays one line for grep

out = Console()
err = Console(stderr=True, soft_wrap=True)  # error lines stay whole for copy and paste


class _Group(click.Group):
    """Expected errors become one red line (or one line per config problem), exit code 1.

    Set FUNREASON_REFINE_DEBUG=1 to get the traceback instead.
    """

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except RefineError as exc:
            if os.environ.get(DEBUG_ENV):
                raise
            if isinstance(exc, ConfigError):
                err.print(f"[red]error:[/] {len(exc.problems)} problem(s) in the configuration:", highlight=False)
                for problem in exc.problems:
                    err.print(f"  - {problem}", highlight=False, markup=False)
            else:
                err.print(f"[red]error:[/] {exc}", highlight=False)
            sys.exit(EXIT_ERROR)


@click.group(cls=_Group)
@click.version_option(package_name="funreason-refine")
def main() -> None:
    """Refine function-calling training data the FunReason way."""
    out.width = PIPED_WIDTH if not out.is_terminal else None  # type: ignore[assignment]


@main.command()
@click.argument("pipeline", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--limit", type=click.IntRange(min=1), help="Only the first N input records.")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Run folder (default: [output] dir of the pipeline).",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    help="Processes that refine records (default: one per CPU for inputs over 8 MiB, else 1; "
    "judged pipelines run in one process).",
)
@click.option("--judge-model", help="Use this LiteLLM model as [judge] model for this run.")
@click.option("--fresh", is_flag=True, help="Start the run folder over (cached judge answers are kept).")
@click.option(
    "--accept-changes", is_flag=True, help="Go on in a run folder started with another pipeline configuration."
)
def run(
    pipeline: Path,
    limit: int | None,
    out_dir: Path | None,
    workers: int | None,
    judge_model: str | None,
    fresh: bool,
    accept_changes: bool,
) -> None:
    """Run PIPELINE; on an existing run folder, resume where it stopped."""
    from funreason_refine.config import load_pipeline

    loaded = load_pipeline(pipeline, out_dir, judge_model=judge_model)
    _run(loaded, limit=limit, workers=workers, fresh=fresh, accept_changes=accept_changes)


@main.command()
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--judge-model", help="Use this LiteLLM model as [judge] model for the retry.")
@click.option(
    "--accept-changes", is_flag=True, help="Go on although the pipeline changed since the run folder was started."
)
def retry(run_dir: Path, judge_model: str | None, accept_changes: bool) -> None:
    """Re-run only the records in RUN_DIR's errors.jsonl (with the pipeline that made the folder)."""
    import json

    from funreason_refine.config import load_pipeline
    from funreason_refine.run_folder import RUN_FILE

    run_file = run_dir / RUN_FILE
    if not run_file.exists():
        raise RefineError(f"{run_dir} has no {RUN_FILE}: it is not a run folder made by `refine run`")
    pipeline = Path(json.loads(run_file.read_text(encoding="utf-8"))["pipeline"])
    _run(load_pipeline(pipeline, run_dir, judge_model=judge_model), retry_errors=True, accept_changes=accept_changes)


def _run(loaded: Pipeline, **options: Any) -> None:
    import signal

    from funreason_refine.console import RunDisplay, summary_tables
    from funreason_refine.engine import RunInterrupted, run_pipeline
    from funreason_refine.judge.endpoints import JudgeOutage

    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt  # SIGTERM stops as cleanly as Ctrl-C

    signal.signal(signal.SIGTERM, on_term)
    size = loaded.input.path.stat().st_size
    try:
        with RunDisplay(err, size, loaded.input.path.name) as progress:
            result = run_pipeline(loaded, progress=progress, **options)
    except RunInterrupted as exc:
        err.print(f"[yellow]stopped:[/] {exc}", highlight=False)
        sys.exit(EXIT_INTERRUPTED)
    except JudgeOutage as exc:
        err.print(f"[red]stopped:[/] {exc}", highlight=False)
        sys.exit(EXIT_JUDGE_OUTAGE)
    if result.resumed:
        out.print(f"resumed: {result.resumed} records were already done in {result.out_dir}")
    for table in summary_tables(result.summary):
        out.print(table)
    timings = result.summary["timings"]
    judge = result.summary["judge"]
    if judge["model"] or judge.get("generator"):
        out.print(
            f"judge: {judge['calls']} calls, {judge['cached']} answered from the cache, {judge['retries']} retries, "
            f"{judge['prompt_tokens'] + judge['completion_tokens']:,} tokens, ${judge['cost_usd']:.4f}"
        )
        for note in judge["notes"]:
            out.print(f"[yellow]note:[/] {note}", highlight=False)
    out.print(f"run folder: {result.out_dir} ({timings['records_per_second']} records/s, {result.workers} worker(s))")
    if result.stopped:
        err.print(
            f"[yellow]stopped:[/] {result.stopped}. What was finished is saved; run the same command "
            "again (with a higher max_cost) to go on.",
            highlight=False,
        )
    if result.errors:
        err.print(
            f"[red]{result.errors} record(s) in {result.out_dir / 'errors.jsonl'}[/]: stopped by failures that were "
            f"not verdicts (see each line's error). Fix the cause, then run `refine retry {result.out_dir}`.",
            highlight=False,
        )
        sys.exit(EXIT_RECORD_ERRORS)


@main.command()
@click.argument("pipeline", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--sample", type=click.IntRange(min=1), help="Estimate on N records drawn at random (seeded), scaled up.")
@click.option("--output-tokens", type=click.IntRange(min=1), help="Output tokens a call (default: measured or 200).")
@click.option(
    "--probe",
    type=click.IntRange(min=1),
    help="Measure the answers with P real calls per stage and model (paid; kept in the run folder's answer cache, "
    "so the run does not pay for them again).",
)
@click.option("--judge-model", help="Estimate with this LiteLLM model as [judge] model.")
@click.option("--json", "as_json", is_flag=True, help="The estimate as JSON, for scripts.")
def estimate(
    pipeline: Path,
    sample: int | None,
    output_tokens: int | None,
    probe: int | None,
    judge_model: str | None,
    as_json: bool,
) -> None:
    """Predict the calls, tokens, cost and time of a judged run of PIPELINE before it spends anything."""
    from funreason_refine.config import load_pipeline
    from funreason_refine.estimate import estimate as estimate_run

    if output_tokens is not None and probe is not None:
        raise click.UsageError("give --output-tokens or --probe, not both")
    result = estimate_run(load_pipeline(pipeline, judge_model=judge_model), sample, output_tokens, probe)
    if as_json:
        click.echo(json.dumps(result.as_dict(), indent=2))
        return
    from funreason_refine.estimate.table import estimate_lines, estimate_table

    out.print(estimate_table(result))
    for line in estimate_lines(result):
        out.print(line, highlight=False, markup=False)


@main.command()
@click.argument("pipeline", type=click.Path(dir_okay=False, path_type=Path))
def validate(pipeline: Path) -> None:
    """Check PIPELINE (keys, stage names, stage configs, specs) without running anything."""
    from funreason_refine.config import load_pipeline

    loaded = load_pipeline(pipeline)
    names = " -> ".join(s.name for s in loaded.stages)
    out.print(
        f"[green]ok[/]: {pipeline}: {len(loaded.stages)} stages ({names}); output {loaded.output_dir}", highlight=False
    )


@main.command()
@click.option("--json", "as_json", is_flag=True, help="The same listing as JSON, for scripts.")
def stages(as_json: bool) -> None:
    """List registered stages: the plugin that supplied each, its defaults and its own keys."""
    from funreason_refine.plugin_manager import stage_rows

    rows = stage_rows()
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    table = Table(show_edge=False)
    for col in ("stage", "plugin", "description", "default", "keys"):
        table.add_column(col, overflow="fold")
    for row in rows:
        default = f"#{row['order']}" if row["order"] is not None else "listed only"
        default += f", on_fail {row['on_fail']}"
        table.add_row(row["name"], row["plugin"], escape(row["description"]), default, ", ".join(row["keys"]) or "-")
    out.print(table)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="The same listing as JSON, for scripts.")
def plugins(as_json: bool) -> None:
    """List loaded plugins: name, package, version and the hooks they implement."""
    from funreason_refine.plugin_manager import plugin_rows

    rows = plugin_rows()
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    table = Table(show_edge=False)
    for col in ("plugin", "package", "version", "hooks"):
        table.add_column(col, overflow="fold")
    for row in rows:
        table.add_row(row["name"], row["package"], row["version"], ", ".join(row["hooks"]))
    out.print(table)


@main.command()
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
def report(run_dir: Path) -> None:
    """Summarise RUN_DIR and write report.md and report.html (self-contained) into it."""
    from funreason_refine.console import report_tables
    from funreason_refine.report.build import build_report
    from funreason_refine.report.conversations import conversation_tables
    from funreason_refine.report.data import load_run
    from funreason_refine.report.html import render_html
    from funreason_refine.report.markdown import render_markdown
    from funreason_refine.report.review import review_tables

    built = build_report(load_run(run_dir))
    (run_dir / "report.md").write_text(render_markdown(built), encoding="utf-8")
    (run_dir / "report.html").write_text(render_html(built), encoding="utf-8")
    for table in report_tables(built):
        out.print(table)
    for table in review_tables(built):
        out.print(table)
    for table in conversation_tables(built):
        out.print(table)
    out.print(f"wrote {run_dir / 'report.md'} and {run_dir / 'report.html'}")


@main.command()
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--stage", help="Only records discarded by this stage.")
@click.option("--reason", help="Only records discarded with this reason code.")
@click.option(
    "--turn", type=click.IntRange(min=0), help="Only conversations discarded at this assistant turn (0 is the first)."
)
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON record per line, for scripts.")
def audit(run_dir: Path, stage: str | None, reason: str | None, turn: int | None, limit: int, as_json: bool) -> None:
    """Browse the discarded records of RUN_DIR with the reasons and verdict trail."""
    import json

    from funreason_refine.console import audit_panels
    from funreason_refine.report.audit import discarded, filters_available
    from funreason_refine.report.data import load_run

    run = load_run(run_dir)
    found = 0
    for record in discarded(run, stage, reason, limit, turn):
        found += 1
        if as_json:
            click.echo(json.dumps(record, ensure_ascii=True))
        else:
            for part in audit_panels(record):
                out.print(part)
    if not found:
        raise RefineError(f"no discarded record in {run_dir} matches; there are: {filters_available(run, turn)}")


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

    a, b = load_run(run_a), load_run(run_b)
    if a.summary.get("input", {}).get("path") != b.summary.get("input", {}).get("path"):
        err.print(
            f"[yellow]note:[/] the runs read different inputs ({a.summary['input'].get('path')} and "
            f"{b.summary['input'].get('path')}); records are matched by position",
            highlight=False,
        )
    result = compare_runs(a, b)
    for table in compare_tables(result):
        out.print(table)
    html_path.write_text(render_compare_html(result), encoding="utf-8")
    out.print(f"wrote {html_path}")


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
    required=True,
    help="JSONL file, or .parquet for Parquet.",
)
def export(run_dir: Path, fmt: str, output: Path) -> None:
    """Write RUN_DIR's kept records as training data."""
    from funreason_refine.export import export_reviewed

    result = export_reviewed(run_dir, fmt, output)
    out.print(
        f"wrote {result.written} records to {output}"
        + (f" and {output.parent / 'dataset_info.json'}" if fmt == "sharegpt" else "")
    )
    if result.describe():
        out.print(result.describe(), highlight=False)


@main.command("selfrefine")
@click.argument("pipeline", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--rounds", type=click.IntRange(min=1), default=2, show_default=True)
def selfrefine_command(pipeline: Path, rounds: int) -> None:
    """Self-refinement: [source] sample_from writes answers, the stages keep the good ones, per round."""
    from funreason_refine.config import load_pipeline
    from funreason_refine.selfrefine import selfrefine

    loaded = load_pipeline(pipeline)
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
        f"summary in {loaded.output_dir / 'selfrefine.json'}"
    )


def _register_plugin_commands() -> None:
    from funreason_refine.errors import PluginError
    from funreason_refine.plugin_manager import get_plugin_manager

    try:
        get_plugin_manager().hook.register_commands(cli=main)
    except PluginError:
        pass  # reported by each command that needs the plugins; the others (report, export...) still work
    except Exception as exc:  # a broken plugin must not take `refine` itself down
        err.print(f"[red]error:[/] a plugin failed to add its commands: {type(exc).__name__}: {exc}", highlight=False)


_register_plugin_commands()


@main.command()
@click.argument("golden", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("pipeline", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--judge-model",
    "judge_models",
    multiple=True,
    help="A candidate judge (any LiteLLM model), in the pipeline's [judge] table; repeat for more.",
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
    "--golden-from",
    "golden_from",
    type=click.Path(file_okay=False, path_type=Path),
    help="First write GOLDEN from the decisions made with `refine review` in this run folder.",
)
def calibrate(
    golden: Path,
    pipeline: Path | None,
    judge_models: tuple[str, ...],
    prompt_dirs: tuple[Path, ...],
    out_dir: Path,
    golden_from: Path | None,
) -> None:
    """Score candidate judges against the labels of GOLDEN, running PIPELINE once per candidate."""
    from funreason_refine.calibrate.run import HTML_NAME, JSON_NAME
    from funreason_refine.calibrate.run import calibrate as run_calibration
    from funreason_refine.calibrate.tables import calibration_tables

    if golden_from is not None:
        from funreason_refine.calibrate.from_review import golden_from_review

        written = golden_from_review(golden_from, golden)
        out.print(f"wrote {written.records} labelled records to {golden} from the review of {golden_from}")
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
        )
    for table in calibration_tables(report):
        out.print(table)
    out.print(f"wrote {out_dir / JSON_NAME} and {out_dir / HTML_NAME}; each candidate's run folder is in {out_dir}")
    if any("error" in c for c in report["candidates"]):
        sys.exit(1)


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
def review(run_dir: Path, port: int, no_browser: bool, kept_sample: int) -> None:
    """Review RUN_DIR's verdicts in the browser; decisions go to RUN_DIR/overrides.jsonl."""
    import webbrowser

    from funreason_refine.review.server import ReviewServer

    server = ReviewServer(run_dir, port, kept_sample)
    items = server.state.index.items
    out.print(
        f"review of {run_dir}: {sum(i.kind == 'discarded' for i in items)} discarded and "
        f"{sum(i.kind == 'kept' for i in items)} kept records at {server.url} (Ctrl-C to stop); "
        f"decisions go to {run_dir / 'overrides.jsonl'}",
        highlight=False,
        soft_wrap=True,
    )
    sys.stdout.flush()
    if not no_browser:
        webbrowser.open(server.url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        out.print("review stopped; every decision acknowledged on the page is saved")
