import json
import os
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

sys._called_from_test = True  # type: ignore[attr-defined]
os.environ["FUNREASON_REFINE_NO_PLUGINS"] = "1"

# Under pytest-xdist the workers share the cores: torch's default, a thread per core in each worker, has a training
# test's threads spin against the other workers' (twice the time on 2 cores, -n 2). Each worker takes its share.
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _WORKERS > 1:
    import torch

    torch.set_num_threads(max(1, (os.cpu_count() or 1) // _WORKERS))

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


def run_with_kept(run_dir: Path, into: Path, *lines: dict) -> Path:
    """A copy of the finished run folder ``run_dir`` whose kept.jsonl holds ``lines`` (each with its input index)."""
    import shutil

    shutil.copytree(run_dir, into)
    (into / "kept.jsonl").write_text("".join(json.dumps({"index": i, **line}) + "\n" for i, line in enumerate(lines)))
    return into


@pytest.fixture(scope="session")
def mixed_run(tmp_path_factory, kept_run):
    """A run folder of single-turn records (the quickstart's kept ones, exported as OpenAI chats and read
    back) and conversations of 1, 2 and 5 assistant turns with parallel calls (conversations.py)."""
    from conversations import CONVERSATIONS

    from funreason_refine.config import load_pipeline
    from funreason_refine.engine import run_pipeline
    from funreason_refine.export import to_row
    from funreason_refine.jsonl import read_jsonl

    folder = tmp_path_factory.mktemp("mixed-run")
    rows = [to_row(line, "openai") for line in read_jsonl(kept_run / "kept.jsonl")] + CONVERSATIONS
    (folder / "input.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    stages = "".join(f'[[stages]]\nname = "{name}"\n' for name in ("conversation", "query_tool", "function_params"))
    (folder / "pipeline.toml").write_text(
        '[input]\npath = "input.jsonl"\nformat = "openai"\n[output]\ndir = "run"\n'
        '[[stages]]\nname = "classification"\ntext_answers = "keep"\n'
        f'{stages}[[stages]]\nname = "cot"\nrequired = false\n[[stages]]\nname = "format"\n',
        encoding="utf-8",
    )
    run_pipeline(load_pipeline(folder / "pipeline.toml"), workers=1)
    return folder / "run"


@pytest.fixture(scope="session")
def records(mixed_run):
    from funreason_msl.data import read_records

    return read_records(mixed_run)


@pytest.fixture(scope="session")
def tokenizer(records):
    from funreason_msl.data import messages
    from funreason_msl.tiny import tiny_tokenizer

    texts = [m["content"] for r in records for m in messages(r)] + [json.dumps(r["tools"]) for r in records]
    return tiny_tokenizer(texts)


@pytest.fixture(scope="session")
def plain_tokenizer(records):
    """Like ``tokenizer`` but with ``<think>`` and ``</think>`` left to BPE, as in SmolLM2 (several tokens each)."""
    from funreason_msl.data import messages
    from funreason_msl.tiny import tiny_tokenizer

    texts = [m["content"] for r in records for m in messages(r)] + [json.dumps(r["tools"]) for r in records]
    return tiny_tokenizer(texts, think_tokens=False)


@pytest.fixture(scope="session")
def gguf_checkpoint(tmp_path_factory, plain_tokenizer):
    """(path of a GGUF file holding a tiny Llama and ``plain_tokenizer``, that model)."""
    pytest.importorskip("gguf", reason="the gguf package reads and writes GGUF files: pip install gguf")
    from funreason_msl.tiny import tiny_model
    from gguf_file import write_gguf

    model = tiny_model(len(plain_tokenizer), seed=2)
    path = tmp_path_factory.mktemp("gguf") / "tiny-chat.gguf"
    write_gguf(path, model, plain_tokenizer)
    return path, model
