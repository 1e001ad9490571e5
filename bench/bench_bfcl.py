"""The rules-only pipeline over every Python single-turn category of the installed ``bfcl-eval``.

    pip install --no-deps bfcl-eval     # only its data files are read; its dependencies are not needed
    python bench/bench_bfcl.py [--show N] [--categories simple_python,parallel,...]

For each category with ground truth (BFCL's question file and ``possible_answer/`` file, as the
package ships them) runs the five built-in stages offline into bench/runs/bfcl/<category> and
prints a Markdown table: records, kept, discarded, quarantined, and the discards by stage and
reason. ``--show N`` also lists up to N discarded entries per reason (id and message), to tell
reading bugs from genuine label bugs. The relevance categories (irrelevance, live_irrelevance,
live_relevance) have no possible answers, so no reference call to check: they are listed as skipped.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import re
from collections import Counter, defaultdict
from pathlib import Path

from funreason_refine.config import load_pipeline
from funreason_refine.engine import run_pipeline

RUNS = Path(__file__).resolve().parent / "runs" / "bfcl"
# BFCL's "python" test collection (bfcl_eval/constants/category_mapping.py), single-turn.
CATEGORIES = [
    "simple_python",
    "multiple",
    "parallel",
    "parallel_multiple",
    "live_simple",
    "live_multiple",
    "live_parallel",
    "live_parallel_multiple",
    "irrelevance",
    "live_irrelevance",
    "live_relevance",
]


def data_dir() -> Path:
    # find_spec locates the package without importing it (its __init__ pulls heavy dependencies).
    spec = importlib.util.find_spec("bfcl_eval")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("bfcl-eval is not installed: pip install --no-deps bfcl-eval")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def question_file(data: Path, category: str) -> Path:
    # BFCL_v4_multiple.json, not BFCL_v4_parallel_multiple.json: the category is the whole rest of the name.
    exact = re.compile(rf"BFCL_v\d+_{re.escape(category)}\.json")
    matches = sorted(p for p in data.glob("BFCL_v*.json") if exact.fullmatch(p.name))
    if not matches:
        raise SystemExit(f"no question file for {category} in {data}")
    return matches[-1]


def run_category(question: Path, category: str) -> tuple[dict[str, int], list[dict[str, str]]]:
    """(counts per outcome, discarded lines) of one fresh rules-only run over ``question``."""
    out = RUNS / category
    RUNS.mkdir(parents=True, exist_ok=True)
    toml = RUNS / f"{category}.toml"
    # json.dumps: a TOML basic string, whatever the path holds
    text = f'[input]\npath = {json.dumps(str(question))}\nformat = "bfcl"\n[output]\ndir = {json.dumps(str(out))}\n'
    toml.write_text(text, "utf-8")
    result = run_pipeline(load_pipeline(toml), fresh=True)
    counts = {name: _lines(result.out_dir / f"{name}.jsonl") for name in ("kept", "discarded", "quarantined", "errors")}
    discarded = [json.loads(line) for line in _read(result.out_dir / "discarded.jsonl")]
    return counts, discarded


def _read(path: Path) -> list[str]:
    # "\n" only: str.splitlines() would also split on U+2028 inside JSON strings.
    return [line for line in path.read_text("utf-8").split("\n") if line.strip()] if path.exists() else []


def _lines(path: Path) -> int:
    return len(_read(path))


def main(categories: list[str], show: int) -> None:
    data = data_dir()
    version = importlib.metadata.version("bfcl-eval")
    rows, examples, totals = [], defaultdict(list), Counter()
    for category in categories:
        question = question_file(data, category)
        if not (question.parent / "possible_answer" / question.name).exists():
            rows.append(f"| {category} | skipped: no possible answers (a relevance category) | | | | |")
            continue
        counts, discarded = run_category(question, category)
        reasons = Counter(f"{d['stage']}/{d['reason']}" for d in discarded)
        for d in discarded:
            examples[f"{d['stage']}/{d['reason']}"].append(f"{d['id']}: {d['message'][:200]}")
        totals.update(counts)
        records = sum(counts.values())
        by_reason = ", ".join(f"{r} {n}" for r, n in reasons.most_common()) or "-"
        kept, dropped, quarantined = counts["kept"], counts["discarded"], counts["quarantined"]
        rows.append(f"| {category} | {records} | {kept} | {dropped} | {quarantined} | {by_reason} |")
    print(f"bfcl-eval {version}, rules-only pipeline (the five built-in stages, no judge)\n")
    print("| category | records | kept | discarded | quarantined | discarded by stage/reason |")
    print("|---|---|---|---|---|---|")
    print("\n".join(rows))
    total = sum(totals.values())
    print(f"| **all** | {total} | {totals['kept']} | {totals['discarded']} | {totals['quarantined']} | |")
    for reason, lines in sorted(examples.items()) if show else ():
        print(f"\n{reason} ({len(lines)}):")
        for line in lines[:show]:
            print(f"  {line}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--categories", default=",".join(CATEGORIES), help="comma-separated BFCL categories")
    parser.add_argument("--show", type=int, default=0, help="list up to N discarded entries per reason")
    args = parser.parse_args()
    main(args.categories.split(","), args.show)
