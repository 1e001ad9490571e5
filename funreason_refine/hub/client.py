"""huggingface_hub, imported lazily, and its errors said in one line with what to do.

The endpoint is read from ``HF_ENDPOINT`` when a client is made (huggingface_hub reads it once, at
import), and the token is left to huggingface_hub, which reads ``HF_TOKEN`` (or the token saved by
``hf auth login``): this package never holds it, so it cannot reach a run folder.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from funreason_refine.errors import InputError, RefineError

if TYPE_CHECKING:
    from huggingface_hub import HfApi, HfFileSystem

INSTALL = "pip install 'funreason-refine[hub]'"
DEFAULT_ENDPOINT = "https://huggingface.co"
LOGIN = "set HF_TOKEN to a token of an account that can read it (or run `hf auth login`)"


def require(what: str) -> None:
    """Raise a one-line error naming the extra to install when huggingface_hub is missing."""
    try:
        import huggingface_hub  # noqa: F401
    except ImportError:
        raise RefineError(f"{what} needs the Hugging Face Hub libraries: {INSTALL}") from None


def endpoint() -> str:
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def api() -> HfApi:
    require("reading or writing the Hugging Face Hub")
    from huggingface_hub import HfApi

    return HfApi(endpoint=endpoint())


def filesystem() -> HfFileSystem:
    require("reading hf:// input")
    from huggingface_hub import HfFileSystem

    return HfFileSystem(endpoint=endpoint())


def explain(exc: BaseException, repo_id: str, revision: str | None = None, commit: str | None = None) -> str | None:
    """What went wrong talking to the Hub about ``repo_id`` (read at ``commit``, once pinned), and what to do;
    None for an unknown error."""
    from huggingface_hub import errors

    page = f"{endpoint()}/datasets/{repo_id}"
    cause = _cause(exc)
    if isinstance(cause, errors.RevisionNotFoundError) and commit is not None:
        return (
            f"the dataset {repo_id} no longer has commit {commit}, which this run folder reads (run.json: "
            "config.input.commit): its history was rewritten. Its records cannot be read again as the run read "
            "them; to refine the dataset as it is now, give a new --out"
        )
    if isinstance(cause, errors.HFValidationError):
        return f"{repo_id!r} is not a dataset name: write ORG/NAME as the dataset's page shows it ({cause})"
    if isinstance(cause, errors.GatedRepoError):
        return f"the dataset {repo_id} is gated: accept its conditions at {page}, then {LOGIN}"
    if isinstance(cause, errors.RepositoryNotFoundError):
        return f"the dataset {repo_id} was not found on {endpoint()}: check its name; if it is private, {LOGIN}"
    if isinstance(cause, errors.RevisionNotFoundError):
        return f"the dataset {repo_id} has no revision {revision!r}: write a branch, tag or commit after '@'"
    if isinstance(cause, errors.OfflineModeIsEnabled):
        return "HF_HUB_OFFLINE is set: unset it to read hf:// input"
    if isinstance(cause, errors.HfHubHTTPError):
        status = cause.response.status_code if cause.response is not None else "an error"
        return f"the Hub answered {status} for {repo_id}: {str(cause).splitlines()[0]}"
    if isinstance(cause, FileNotFoundError):
        return f"not found in the dataset {repo_id}: {cause}"
    if isinstance(cause, errors.HTTPError | OSError):
        failure = f"{type(cause).__name__}: {cause}"
        return f"cannot reach the Hub at {endpoint()} ({failure}); check the connection or HF_ENDPOINT"
    return None


def _cause(exc: BaseException) -> BaseException:
    """The Hub's error: HfFileSystem raises FileNotFoundError from it."""
    return exc.__cause__ if isinstance(exc, FileNotFoundError) and exc.__cause__ is not None else exc


@contextmanager
def hub_errors(repo_id: str, revision: str | None = None, then: str = "", commit: str | None = None) -> Iterator[None]:
    """Turn the Hub's errors inside the block into one-line InputErrors; ``then``: what to do next after a
    failure that may pass (a connection lost, the Hub's own error); ``commit``: the commit read, once pinned."""
    require("reading or writing the Hugging Face Hub")
    from huggingface_hub import errors

    try:
        yield
    except RefineError:
        raise
    except Exception as exc:
        message = explain(exc, repo_id, revision, commit)
        if message is None:
            raise
        settled = (
            errors.RepositoryNotFoundError,
            errors.RevisionNotFoundError,
            FileNotFoundError,
            errors.HFValidationError,
        )
        passing = not isinstance(_cause(exc), settled)
        raise InputError(message + (f"; {then}" if then and passing else "")) from exc
