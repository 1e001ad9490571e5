"""pytest fixtures for plugin authors: a record factory, throwaway stages, a fake judge server.

Installed with funreason-refine (entry point group ``pytest11``), so a plugin package's tests use
them by name, with nothing to import::

    def test_my_stage(record_factory, register_stage, fake_judge, tmp_path): ...

Imports stay inside the fixtures: this module loads in every pytest session of an environment
where funreason-refine is installed.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest


@pytest.fixture
def record_factory() -> Callable[..., Any]:
    """``record_factory(query=..., tools=..., answers=..., cot=..., index=...)``: a record exactly as the
    xLAM reader builds it (``funreason_refine.testing.make_record``)."""
    from funreason_refine.testing import make_record

    return make_record


@pytest.fixture
def register_stage() -> Iterator[Callable[..., None]]:
    """``register_stage(StageClass, replace=False)``: the stage is registered, as by a plugin's
    ``register_stages`` hook, for this test only; ``refine`` and ``load_pipeline`` see it."""
    from contextlib import ExitStack

    from funreason_refine import hookimpl
    from funreason_refine.testing import registered

    with ExitStack() as stack:

        def register(cls: type, replace: bool = False) -> None:
            class ThrowawayPlugin:
                @hookimpl
                def register_stages(self, register: Callable[..., None]) -> None:
                    register(cls, replace=replace)

            stack.enter_context(registered(ThrowawayPlugin(), f"test-stage-{cls.__name__}-{id(cls)}"))

        yield register


@pytest.fixture
def fake_judge(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Any]]:
    """``fake_judge(script)``: a running OpenAI-compatible server on 127.0.0.1 that answers every chat
    request with ``script(request)`` (a text, or a ``Reply`` for status codes, delays, broken bodies),
    stopped after the test. Point ``[judge]`` at it with ``model = "openai/<any name>"`` and
    ``api_base = server.api_base``; ``server.requests`` records what was asked. A placeholder
    OPENAI_API_KEY is set for the test unless one is set already."""
    from contextlib import ExitStack

    from funreason_refine.testing.fake_llm import FakeLLM

    if not os.environ.get("OPENAI_API_KEY"):
        monkeypatch.setenv("OPENAI_API_KEY", "sk-fake-judge")
    with ExitStack() as stack:
        yield lambda script: stack.enter_context(FakeLLM(script))
