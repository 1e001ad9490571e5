import json

import pytest

from tests.conftest import FAKE_HUB, QUICKSTART, refine, xlam_row

pytest.importorskip("huggingface_hub")


@pytest.fixture
def hub(monkeypatch):
    """The local stand-in of the Hub (started by tests/conftest.py, where HF_ENDPOINT points), emptied for each test."""
    FAKE_HUB.reset()
    monkeypatch.delenv("HF_TOKEN", raising=False)
    yield FAKE_HUB
    FAKE_HUB.reset()


def jsonl(*rows) -> bytes:
    return b"".join(json.dumps(r).encode() + b"\n" for r in rows)


def xlam_rows(prefix: str, count: int, start: int = 0) -> list[dict]:
    return [xlam_row(f"{prefix}{i}", query=f"What's the weather in city number {i}?") for i in range(start, count)]


@pytest.fixture(scope="module")
def quickstart_run(tmp_path_factory):
    """The quickstart refined once per test module: the run folder the Hub tests export and push."""
    folder = tmp_path_factory.mktemp("quickstart") / "run"
    refine("run", QUICKSTART / "pipeline.toml", "--out", folder)
    return folder
