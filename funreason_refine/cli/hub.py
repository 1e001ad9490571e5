"""refine push, and what refine export --hub-dir prints: a run's data as a dataset of the Hugging Face Hub."""

from __future__ import annotations

from pathlib import Path

import click

from funreason_refine.cli.app import main, out, warn

FORMATS = ["funreason", "hermes", "sharegpt", "openai"]


def hub_folder(run_dir: Path, fmt: str, hub_dir: Path) -> None:
    """refine export --hub-dir: write the dataset folder, say what is in it and what is left to write."""
    from funreason_refine.hub.folder import CARD, write_hub_folder

    folder = write_hub_folder(run_dir, fmt, hub_dir)
    out.print(
        f"wrote the dataset folder {hub_dir}: {folder.kept} kept records (config default), "
        + (f"{folder.discarded} discarded (config discarded)" if folder.discarded else "no discarded record to publish")
        + f" and {CARD}",
        highlight=False,
        markup=False,
    )
    if folder.export.describe():
        out.print(folder.export.describe(), highlight=False, markup=False)
    for warning in folder.warnings:
        warn(warning)
    out.print(
        f"before publishing, fill in what {hub_dir / CARD} marks TO FILL IN (the licence first)",
        highlight=False,
        markup=False,
    )


@main.command()
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
@click.argument("repo_id")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="funreason", show_default=True)
@click.option("--private", is_flag=True, help="Create the repository private (an existing one keeps its visibility).")
@click.option("--dry-run", is_flag=True, help="List what would be uploaded; nothing is sent.")
def push(run_dir: Path, repo_id: str, fmt: str, private: bool, dry_run: bool) -> None:
    """Upload RUN_DIR as the dataset REPO_ID (ORG/NAME) on the Hugging Face Hub, in one commit.

    The repository is created when it does not exist. The token comes from HF_TOKEN (or `hf auth login`).
    Pushing the same run again changes nothing. Needs pip install 'funreason-refine[hub]'.
    """
    from funreason_refine.hub.push import push_run

    result = push_run(run_dir, repo_id, fmt, private=private, dry_run=dry_run)
    verb = "would upload" if dry_run else "uploaded"
    for name, size in result.files:
        out.print(f"  {name}  ({size:,} bytes)", highlight=False, markup=False)
    for name in result.deleted:
        out.print(f"  {name}  (deleted: not in this run's folder)", highlight=False, markup=False)
    if result.review:
        out.print(result.review, highlight=False, markup=False)
    for warning in result.warnings:
        warn(warning)
    if result.card_kept:
        out.print(
            "kept the README.md on the Hub: it was edited since funreason-refine wrote it. This run's card: "
            f"`refine export {run_dir} --format {fmt} --hub-dir DIR` writes it, to copy what changed",
            highlight=False,
            markup=False,
        )
    if dry_run:
        out.print(
            f"{verb} {len(result.files)} files to the dataset {repo_id} in one commit ({result.kept} kept, "
            f"{result.discarded} discarded records); earlier files under data/ and discarded/ that are not "
            "among them would be deleted",
            highlight=False,
            markup=False,
        )
    elif not result.changed:
        out.print(
            f"the dataset {repo_id} already holds these files: nothing to commit ({result.url})",
            highlight=False,
            markup=False,
        )
    else:
        out.print(
            f"{verb} {len(result.files)} files to {result.url} in commit {result.commit}", highlight=False, markup=False
        )
