"""``refine push``: a run's dataset folder uploaded to a dataset repository of the Hub, in one commit.

The folder is written afresh (folder.py) into a temporary folder and committed with the Hub's commit
API: files that did not change are left out by huggingface_hub, so pushing the same run twice makes
no second commit; files of an earlier push under data/ and discarded/ that the new folder does not
have are deleted in the same commit. The repository is created (private with ``private``) when it
does not exist; an existing one keeps its visibility. A README.md on the Hub that a person has edited
since funreason-refine wrote it (the TO FILL IN parts filled in) is never replaced.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from funreason_refine.errors import RefineError
from funreason_refine.hub.client import api, explain, filesystem, require
from funreason_refine.hub.folder import CARD, write_hub_folder

MANAGED = ("data/", "discarded/")  # what a push owns in the repository; anything else there is left alone


@dataclass
class PushResult:
    """What was (or, in a dry run, would be) uploaded, and the commit that holds it."""

    repo_id: str
    files: list[tuple[str, int]]  # path in the repository, size in bytes
    kept: int
    discarded: int
    deleted: list[str] = field(default_factory=list)
    commit: str | None = None  # None: a dry run
    changed: bool = True  # False: the repository already held exactly these files
    url: str | None = None
    review: str | None = None
    card_kept: bool = False  # the repository's README.md was edited by a person: left as it is
    warnings: list[str] = field(default_factory=list)  # what the folder holds less than the run (folder.py)


def push_run(run_dir: Path, repo_id: str, fmt: str, private: bool = False, dry_run: bool = False) -> PushResult:
    """Upload the dataset folder of ``run_dir`` to the dataset repository ``repo_id`` (``dry_run``: only say what)."""
    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise RefineError(f"{repo_id!r} is not a repository id: write ORG/NAME (or USER/NAME)")
    if not dry_run:
        require("refine push")
    with tempfile.TemporaryDirectory(prefix="funreason-push-") as tmp:
        folder = write_hub_folder(run_dir, fmt, Path(tmp), repo_id=repo_id)
        files = [(name, (folder.path / name).stat().st_size) for name in folder.files]
        result = PushResult(repo_id, files, folder.kept, folder.discarded, review=folder.export.describe())
        result.warnings = folder.warnings
        if not dry_run:
            _commit(folder.path, folder.files, result, private, run_dir, fmt)
    return result


def _commit(folder: Path, names: list[str], result: PushResult, private: bool, run_dir: Path, fmt: str) -> None:
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete

    hub = api()
    try:
        url = hub.create_repo(result.repo_id, repo_type="dataset", private=private, exist_ok=True)
        before = hub.dataset_info(result.repo_id).sha
        remote = hub.list_repo_files(result.repo_id, repo_type="dataset")
        stale = [f for f in remote if f.startswith(MANAGED) and f not in names]
        new_card = (folder / CARD).read_text("utf-8")
        result.card_kept = CARD in remote and _edited_card(f"datasets/{result.repo_id}@{before}/{CARD}", new_card)
        operations: list[CommitOperationAdd | CommitOperationDelete] = [
            CommitOperationAdd(path_in_repo=n, path_or_fileobj=str(folder / n))
            for n in names
            if not (n == CARD and result.card_kept)
        ]
        operations += [CommitOperationDelete(path_in_repo=f) for f in stale]
        info = hub.create_commit(
            result.repo_id,
            operations,
            commit_message=f"Refined data from funreason-refine ({Path(run_dir).name}, {fmt})",
            commit_description=f"{result.kept} kept and {result.discarded} discarded records; see {CARD}.",
            repo_type="dataset",
            parent_commit=before,  # refused if a commit came in since the files and the card were looked at
        )
    except Exception as exc:
        raise RefineError(_why(exc, result.repo_id)) from exc
    result.deleted, result.commit, result.url = stale, info.oid, str(url)
    result.changed = info.oid != before


def _edited_card(card_path: str, new: str) -> bool:
    """Whether the repository's card is one a person has written or edited (then a push leaves it alone)."""
    from funreason_refine.hub.card import untouched

    current = filesystem().cat_file(card_path).decode("utf-8", "replace")
    return current != new and not untouched(current)


def _why(exc: Exception, repo_id: str) -> str:
    from huggingface_hub import errors

    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    if isinstance(exc, errors.HfHubHTTPError) and status in (401, 403):
        return (
            f"the Hub refused to write to the dataset {repo_id} ({status}): set HF_TOKEN to a token with write "
            "access to it (or run `hf auth login`)"
        )
    if isinstance(exc, errors.HfHubHTTPError) and status == 412:
        return (
            f"the dataset {repo_id} changed on the Hub while this push looked at it (a commit came in): nothing was "
            "written; push again"
        )
    message = explain(exc, repo_id)
    if message is None:
        return f"pushing to {repo_id} failed: {type(exc).__name__}: {exc}"
    return message
