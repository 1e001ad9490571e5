"""Write N synthetic xLAM-shaped records (JSONL) for benchmarks.

Shapes follow xlam-function-calling-60k: 1-4 tools per record from a pool of ~3,600 distinct
APIs with Python-style parameter types, 1-3 calls, and a CoT of about 1,500 characters (the
paper's ~350 tokens). About 10% of records carry a defect that a stage discards or repairs.

    python bench/generate.py 60000 bench/data/60k.jsonl
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

TYPES = [
    ("str", lambda r: r.choice(["Paris", "red shoes", "AAPL", "2024-05-01"])),
    ("int", lambda r: r.randint(1, 500)),
    ("float", lambda r: round(r.uniform(0, 100), 2)),
    ("bool", lambda r: r.random() < 0.5),
    ("List[int]", lambda r: [r.randint(0, 9) for _ in range(r.randint(1, 4))]),
    ("List[str]", lambda r: ["a", "b"][: r.randint(1, 2)]),
    ("Dict[str, Any]", lambda r: {"k": r.randint(0, 3)}),
]
WORDS = "get list search fetch compute convert find check calculate lookup".split()
NOUNS = "weather stock user product order flight hotel movie recipe song city rate".split()


def make_pool(rng: random.Random, n: int = 3600) -> list[dict]:
    pool = []
    for i in range(n):
        params = {}
        for j in range(rng.randint(1, 4)):
            type_name, _ = rng.choice(TYPES)
            optional = j > 0 and rng.random() < 0.4
            params[f"p{j}_{rng.choice(NOUNS)}"] = {
                "description": f"The {rng.choice(NOUNS)} to use.",
                "type": type_name + (", optional" if optional else ""),
            }
        pool.append(
            {
                "name": f"{rng.choice(WORDS)}_{rng.choice(NOUNS)}_{i}",
                "description": f"Tool {i}: {rng.choice(WORDS)}s a {rng.choice(NOUNS)}.",
                "parameters": params,
            }
        )
    return pool


def value_for(rng: random.Random, type_text: str):
    base = type_text.removesuffix(", optional")
    return next(gen for name, gen in TYPES if name == base)(rng)


def make_record(rng: random.Random, pool: list[dict], i: int) -> dict:
    tools = rng.sample(pool, rng.randint(1, 4))
    calls = []
    for tool in rng.sample(tools, rng.randint(1, min(3, len(tools)))):
        args = {
            p: value_for(rng, spec["type"])
            for p, spec in tool["parameters"].items()
            if "optional" not in spec["type"] or rng.random() < 0.5
        }
        calls.append({"name": tool["name"], "arguments": args})
    defect = rng.random()
    if defect < 0.03:
        calls[0]["arguments"]["unexpected"] = 1
    elif defect < 0.06:
        calls[0]["name"] = "not_offered"
    elif defect < 0.08:
        key = next(iter(calls[0]["arguments"]), None)
        if key and isinstance(calls[0]["arguments"][key], int) and not isinstance(calls[0]["arguments"][key], bool):
            calls[0]["arguments"][key] = str(calls[0]["arguments"][key])
    names = " and ".join(c["name"] for c in calls)
    filler = " ".join(rng.choice(NOUNS + WORDS) for _ in range(200))
    cot = f"The user asks for {names}. I check the parameters one by one: {filler}. So I call {names}."
    return {
        "id": i,
        "query": f"Please {rng.choice(WORDS)} the {rng.choice(NOUNS)} for me, item {i}.",
        "tools": json.dumps(tools),
        "answers": json.dumps(calls),
        "cot": cot,
    }


def main(n: int, out: Path) -> None:
    rng = random.Random(2505_20192)
    pool = make_pool(rng)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as fh:
        for i in range(n):
            fh.write(json.dumps(make_record(rng, pool, i)) + "\n")


if __name__ == "__main__":
    main(int(sys.argv[1]), Path(sys.argv[2]))
