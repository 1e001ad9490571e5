"""``hf://datasets/ORG/NAME[@REVISION]/PATH_OR_GLOB``: an input on the Hub, as a value (no network here).

Once pinned (pin.py), a HubPath knows the commit its revision resolved to and the files its pattern
matched there, in name order; every later read goes to that commit, so a resumed run, a retry and
every shard read the same bytes whatever happens to the dataset meanwhile.
"""

from __future__ import annotations

import os
import posixpath
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Self
from urllib.parse import quote, unquote

PREFIX = "hf://"
DATASETS = "datasets/"
GLOB_CHARS = frozenset("*?[")
# The revisions whose names hold a "/" that a path writes unquoted (huggingface_hub's SPECIAL_REFS_REVISION_REGEX)
SPECIAL_REFS = re.compile(r"(refs/convert/\w+|refs/pr/\d+)/(.*)\Z", re.DOTALL)


class HubFile(NamedTuple):
    """One file of the input: its path in the repository and its size in bytes."""

    path: str
    size: int


def is_hub_path(text: object) -> bool:
    return isinstance(text, str) and text.startswith(PREFIX)


if TYPE_CHECKING:
    # To the type checker a HubPath is a Path, because the run types [input] path as a local Path (engine.py);
    # a HubPath answers each question the run asks of it as a Path would (below). What the run does with
    # local input files only (engine.input_files fingerprints them) it skips, as is_file() is False.
    _PathLike = Path
else:
    _PathLike = object


@dataclass(frozen=True)
class HubPath(_PathLike):
    """A file, or a glob of files, in a dataset repository on the Hub, at a revision."""

    repo_id: str  # ORG/NAME
    pattern: str  # a path in the repository, or a glob of paths
    revision: str | None = None  # as written after '@'; None: the default branch
    commit: str | None = None  # the commit the revision resolved to (pin.py)
    files: tuple[HubFile, ...] = ()  # the files the pattern matched at that commit, in name order

    @classmethod
    def parse(cls, text: str) -> HubPath:
        """``hf://datasets/ORG/NAME[@REVISION]/PATH``; ValueError saying what to write otherwise."""
        example = "hf://datasets/ORG/NAME/data/train.jsonl (or ...NAME@REVISION/...)"
        rest = text[len(PREFIX) :] if text.startswith(PREFIX) else ""
        if not rest.startswith(DATASETS):
            raise ValueError(f"{text!r}: only dataset repositories can be read; write {example}")
        parts = rest[len(DATASETS) :].split("/", 2)
        if len(parts) < 3 or not parts[0] or not parts[1] or not parts[2].strip("/"):
            raise ValueError(f"{text!r} names no file in the repository; write {example}")
        org, name, pattern = parts
        name, _, revision = name.partition("@")
        if not name or "@" in revision:
            raise ValueError(f"{text!r}: write the revision once, after the dataset name: {example}")
        special = SPECIAL_REFS.match(f"{revision}/{pattern}")  # @refs/convert/parquet/..., as HfFileSystem reads it
        if special is not None:
            revision, pattern = special[1], special[2]
        if not pattern.strip("/"):
            raise ValueError(f"{text!r} names no file in the repository; write {example}")
        return cls(f"{org}/{name}", pattern.strip("/"), unquote(revision) or None)

    @property
    def url(self) -> str:
        """The path as written (the revision, not the commit)."""
        return self._url(self.revision)

    @property
    def pinned_url(self) -> str:
        """The path at its commit (the path as written before it is pinned)."""
        return self._url(self.commit or self.revision)

    def _url(self, revision: str | None) -> str:
        at = f"@{quote(revision, safe='')}" if revision else ""
        return f"{PREFIX}{DATASETS}{self.repo_id}{at}/{self.pattern}"

    def fs_path(self, path_in_repo: str) -> str:
        """A file of the repository at the pinned commit, as HfFileSystem names it."""
        at = f"@{quote(self.commit or self.revision or 'main', safe='')}"
        return f"{DATASETS}{self.repo_id}{at}/{path_in_repo}"

    @property
    def is_glob(self) -> bool:
        return any(c in GLOB_CHARS for c in self.pattern)

    def pinned(self, commit: str, files: tuple[HubFile, ...]) -> HubPath:
        return replace(self, commit=commit, files=files)

    @property
    def size(self) -> int:
        """The size of the input: its files' sizes added up."""
        return sum(f.size for f in self.files)

    # The questions a run asks of its input path, answered as a Path answers them.

    @property
    def name(self) -> str:
        return posixpath.basename(self.pattern)

    @property
    def parent(self) -> Self:
        return replace(self, pattern=posixpath.dirname(self.pattern), files=())

    def __truediv__(self, other: str | os.PathLike[str]) -> Self:
        return replace(self, pattern=posixpath.join(self.pattern, os.fspath(other)), files=())

    def is_file(self) -> bool:
        """False: not a file on this machine (its files are self.files, on the Hub)."""
        return False

    def stat(self, *, follow_symlinks: bool = True) -> os.stat_result:
        """A read-only file of ``size`` bytes (what the progress display takes as its total)."""
        return os.stat_result((0o100444, 0, 0, 1, 0, 0, self.size, 0, 0, 0))

    def resolve(self, strict: bool = False) -> Self:
        return self

    def __str__(self) -> str:
        return self.pinned_url

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: Any) -> Any:
        from pydantic_core import core_schema

        return core_schema.no_info_plain_validator_function(
            cls._validate, serialization=core_schema.plain_serializer_function_ser_schema(str)
        )

    @classmethod
    def _validate(cls, value: Any) -> HubPath:
        if isinstance(value, HubPath):
            return value
        if is_hub_path(value):
            return cls.parse(value)
        raise ValueError("not an hf:// path")
