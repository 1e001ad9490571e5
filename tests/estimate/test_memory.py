"""refine estimate streams: its memory does not grow with the input (it kept every record and prompt before)."""

import gc
import tracemalloc

import pytest

from funreason_refine.config import load_pipeline
from funreason_refine.estimate import estimate
from funreason_refine.estimate.tokens import TokenCounter
from funreason_refine.memo import Memo
from tests.conftest import write_jsonl
from tests.estimate.test_estimate import PRICES, forecast


@pytest.fixture(autouse=True)
def key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")


def pipeline(tmp_path, records):
    folder = tmp_path / str(records)
    folder.mkdir(exist_ok=True)
    rows = [forecast(str(i), city=f"City {i}", days=i % 7 + 1, cot=i % 3 > 0) for i in range(records)]
    write_jsonl(folder / "in.jsonl", rows)
    path = folder / "p.toml"
    path.write_text(
        '[input]\npath = "in.jsonl"\n[output]\ndir = "run"\n'
        f'[judge]\nmodel = "openai/fake"\napi_base = "http://127.0.0.1:9"\n{PRICES}\n'
    )
    return load_pipeline(path)


@pytest.fixture
def small_caches(monkeypatch):
    """What grows to a bound whatever the input, filled by a first run: the run's memos (tools, schemas,
    prompts' tool texts; a few thousand entries, shrunk here), the interpreter's free lists, and garbage in
    reference cycles (json's encoders make some), collected often here. Prompt tokens are counted by
    length: LiteLLM's tokenizer takes a millisecond a prompt, and the estimate keeps the same either way."""
    for memo in [o for o in gc.get_objects() if isinstance(o, Memo)]:
        monkeypatch.setattr(memo, "_max_size", 16)
    monkeypatch.setattr(TokenCounter, "_content", lambda self, model, message: len(message.get("content") or "") // 4)
    thresholds = gc.get_threshold()
    gc.set_threshold(100, 2, 2)
    yield
    gc.set_threshold(*thresholds)


def peak_bytes(loaded, **options):
    gc.collect()
    tracemalloc.start()
    try:
        result = estimate(loaded, output_tokens=20, **options)
        return tracemalloc.get_traced_memory()[1], result
    finally:
        tracemalloc.stop()


@pytest.mark.usefixtures("small_caches")
def test_peak_memory_is_flat_from_1050_to_3150_records(tmp_path):
    estimate(pipeline(tmp_path, 1050), output_tokens=20)
    # tracemalloc counts every thread's allocations: a thread an earlier test of this worker left (a server's,
    # LiteLLM's) can add to one measurement on a busy machine, never take from it. The least of two is the run's.
    small, few = min((peak_bytes(pipeline(tmp_path, 1050)) for _ in range(2)), key=lambda measured: measured[0])
    large, many = min((peak_bytes(pipeline(tmp_path, 3150)) for _ in range(2)), key=lambda measured: measured[0])
    assert many.total.calls.low == 3 * few.total.calls.low, "three times the records, three times the calls"
    # Keeping every record and its prompts (before), the peak grew with the input: 11.8 MB, then 35 MB here.
    assert large < 1.1 * small, (small, large)


@pytest.mark.usefixtures("small_caches")
def test_a_sample_holds_only_its_own_records(tmp_path):
    estimate(pipeline(tmp_path, 1050), output_tokens=20, sample=50)
    small, _ = peak_bytes(pipeline(tmp_path, 1050), sample=50)
    large, sampled = peak_bytes(pipeline(tmp_path, 3150), sample=50)
    assert (sampled.records, sampled.sampled) == (3150, 50)
    # The peak is small (about 125 KB) and moves by 2-10 KB with when the collector runs; holding the 2,100 records
    # more that the larger input has would add 600 KB or more.
    assert large < small + 32 * 1024, (small, large)
