"""refine stages, refine plugins: what is registered, as tables or JSON."""

from __future__ import annotations

import json

import click
from rich.markup import escape
from rich.table import Table

from funreason_refine.cli.app import main, out


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
        keys = ", ".join(row["keys"]) or "-"
        table.add_row(escape(row["name"]), escape(row["plugin"]), escape(row["description"]), default, escape(keys))
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
        table.add_row(*(escape(str(row[k])) for k in ("name", "package", "version")), ", ".join(row["hooks"]))
    out.print(table)


@main.command()
@click.argument("what", type=click.Choice(["summary", "selfrefine"]))
def schema(what: str) -> None:
    """Print the JSON Schema of a file tools read: summary (a run folder's summary.json) or selfrefine
    (selfrefine.json of `refine selfrefine`)."""
    from funreason_refine.summary import schema as summary_schema

    click.echo(json.dumps(summary_schema(what), indent=2))
