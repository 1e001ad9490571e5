import json
import os
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

sys._called_from_test = True  # type: ignore[attr-defined]
os.environ["FUNREASON_REFINE_NO_PLUGINS"] = "1"

REPO = Path(__file__).resolve().parents[3]
QUICKSTART = REPO / "examples" / "quickstart" / "pipeline.toml"


@pytest.fixture(scope="session")
def kept_run(tmp_path_factory):
    """A run folder of the quickstart pipeline (its kept records have CoTs, no-CoT and multi-call answers)."""
    from funreason_refine.config import load_pipeline
    from funreason_refine.engine import run_pipeline

    out = tmp_path_factory.mktemp("quickstart-run")
    run_pipeline(load_pipeline(QUICKSTART, out), workers=1)
    return out


@pytest.fixture(scope="session")
def records(kept_run):
    from funreason_msl.data import read_records

    return read_records(kept_run)


@pytest.fixture(scope="session")
def tokenizer(records):
    from funreason_msl.data import messages
    from funreason_msl.tiny import tiny_tokenizer

    texts = [m["content"] for r in records for m in messages(r)] + [json.dumps(r["tools"]) for r in records]
    return tiny_tokenizer(texts)
