"""Pin an hf:// input to one commit, once per run folder.

The first time a run folder reads an input, its revision (a branch, a tag, or nothing: the default
branch) is resolved to a commit, which run.json records (``config.input.commit``). From then on a
resumed run, a retry, a worker process and every shard of the run find it there and read that
commit, even when the dataset has moved on. A fresh run folder resolves the revision again.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from funreason_refine.errors import InputError
from funreason_refine.hub.client import api, endpoint, filesystem, hub_errors
from funreason_refine.hub.paths import DATASETS, HubFile, HubPath

DATA_SUFFIXES = (".jsonl", ".ndjson", ".json", ".parquet")
_COMPRESSED_DATA = tuple(data + packed for data in DATA_SUFFIXES for packed in (".gz", ".bz2", ".xz", ".zst", ".zip"))
# A held-out split's name in a file's path, as the Hub names splits (data/test-00000-of-00001.parquet, dev.jsonl)
HELD_OUT = re.compile(r"(?:^|[-._ /0-9])(test|testing|eval|evaluation|validation|valid|val|dev)(?:[-._ /0-9]|$)", re.I)


def pin(path: HubPath, run_dir: Path) -> HubPath:
    """``path`` at the commit ``run_dir`` recorded for it, else at the commit its revision is at now."""
    if path.commit is not None:
        return path
    from funreason_refine.hub.reader import refuse_compressed

    commit = recorded_commit(path, run_dir) or resolve_commit(path)
    pinned = path.pinned(commit, list_files(path, commit))
    refuse_compressed(pinned)  # before the run folder is made, as a local compressed file is
    return pinned


def held_out_files(path: HubPath) -> list[str]:
    """A warning when the input's files are some of a held-out split (test, validation) and some not: a folder
    or a glob that takes a dataset's test split into the data to train on, beside its train split."""
    held_out = [f.path for f in path.files if HELD_OUT.search(f.path)]
    if not held_out or len(held_out) == len(path.files):
        return []
    return [
        f"{path.url} matches {len(path.files)} files, of which {len(held_out)} named as a held-out split "
        f"(test, validation), read as records to train on: {', '.join(held_out[:3])}"
        f"{' ...' if len(held_out) > 3 else ''}. If they are not meant, name the files to read (e.g. data/train-*)"
    ]


def recorded_commit(path: HubPath, run_dir: Path) -> str | None:
    """The commit a run folder (or one of its shards) recorded for this input, as written, if any."""
    from funreason_refine.executors.layout import SHARDS
    from funreason_refine.run_identity import RUN_FILE

    run_dir = Path(run_dir)
    for run_file in [run_dir / RUN_FILE, *sorted((run_dir / SHARDS).glob(f"*/{RUN_FILE}"))]:
        recorded = _input_of(run_file)
        if recorded.get("path") == path.url and isinstance(recorded.get("commit"), str):
            return str(recorded["commit"])
    return None


def _input_of(run_file: Path) -> dict[str, Any]:
    from funreason_refine.run_identity import run_file_of

    config = run_file_of(run_file.parent).get("config")
    found = config.get("input") if isinstance(config, dict) else None
    return found if isinstance(found, dict) else {}


def resolve_commit(path: HubPath) -> str:
    """The commit the revision of ``path`` is at now (one call to the Hub's API)."""
    with hub_errors(path.repo_id, path.revision):
        info = api().dataset_info(path.repo_id, revision=path.revision)
    if not info.sha:
        raise InputError(f"the Hub did not say which commit {path.url} is at; give a commit after '@'")
    return str(info.sha)


def list_files(path: HubPath, commit: str) -> tuple[HubFile, ...]:
    """The files ``path`` names at ``commit``, in name order: one file, a glob's matches, or a folder's data files."""
    fs: Any = filesystem()  # glob(detail=True) gives a dict, not the list fsspec's annotation says
    root = path.pinned(commit, ()).fs_path("")
    with hub_errors(path.repo_id, path.revision, commit=commit):
        if path.is_glob:
            found = fs.glob(root + path.pattern, detail=True)
        else:
            found = _file_or_folder(fs, root + path.pattern)
    files = tuple(
        HubFile(name[len(root) :], int(info["size"]))
        for name, info in sorted(found.items())
        if info["type"] == "file" and not name[len(root) :].startswith(".")
    )
    if not files:
        tree = f"{endpoint()}/{DATASETS}{path.repo_id}/tree/{commit}"
        raise InputError(f"no file of {path.url} matches (at commit {commit[:12]}): see the files at {tree}")
    return files


def _file_or_folder(fs: Any, name: str) -> dict[str, Any]:
    try:
        info = fs.info(name)
    except FileNotFoundError as exc:
        if exc.__cause__ is not None:  # the repository or revision, not the file (said by hub_errors)
            raise
        return {}
    if info["type"] == "file":
        return {name: info}
    found = fs.find(name, detail=True)
    data = {n: i for n, i in found.items() if n.lower().endswith(DATA_SUFFIXES)}
    # A folder of compressed data files alone (train.jsonl.gz): named, so that the input is refused saying how to read
    # them, not as a folder without files.
    return data or {n: i for n, i in found.items() if n.lower().endswith(_COMPRESSED_DATA)}
