"""What of the package one record of a rules-only ``refine run`` executes (issue 24, item 7).

    python bench/bench_one_record.py [--list]

Runs ``refine run`` in a CliRunner on the quickstart's first line, with a pipeline file of
``[input]`` and ``[output]`` only, in a temporary folder, and counts every code object under
``funreason_refine/`` that a ``sys.setprofile`` "call" event reaches, the import of
``funreason_refine.cli`` included: comprehensions, lambdas and module bodies aside, class bodies
(run at import) counted. Modules: files with such a function, ``__init__.py`` aside; modules
imported: the package's entries in ``sys.modules`` at the end. Prints one Markdown table row (the
table in docs/benchmarks.md); ``--list`` adds every function, by module, in the order first run.

Run it in a fresh interpreter: what an earlier import in the same process ran is not counted.
"""

from __future__ import annotations

import argparse
import inspect
import os
import sys
import tempfile
from pathlib import Path
from types import CodeType, FrameType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = str(ROOT / "funreason_refine")
NOT_FUNCTIONS = {"<module>", "<listcomp>", "<genexpr>", "<dictcomp>", "<setcomp>", "<lambda>"}
PIPELINE = '[input]\npath = "in.jsonl"\n\n[output]\ndir = "runs/one"\n'


def trace(seen: dict[CodeType, None]) -> Any:
    def on_event(frame: FrameType, event: str, arg: Any) -> None:
        code = frame.f_code
        if event == "call" and code.co_filename.startswith(PACKAGE) and code.co_name not in NOT_FUNCTIONS:
            seen.setdefault(code)

    return on_event


def run_one_record(folder: Path) -> dict[CodeType, None]:
    first_line = (ROOT / "examples" / "quickstart" / "records.jsonl").read_bytes().split(b"\n")[0]
    (folder / "in.jsonl").write_bytes(first_line + b"\n")
    (folder / "pipeline.toml").write_text(PIPELINE, encoding="utf-8")
    seen: dict[CodeType, None] = {}
    sys.setprofile(trace(seen))
    try:
        from click.testing import CliRunner

        from funreason_refine.cli import main

        result = CliRunner().invoke(main, ["run", str(folder / "pipeline.toml")])
    finally:
        sys.setprofile(None)
    if result.exit_code != 0:
        raise SystemExit(f"refine run failed (exit {result.exit_code}):\n{result.output}")
    return seen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--list", action="store_true", help="every function, by module, in the order first run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        os.chdir(folder)
        seen = run_one_record(folder)
    modules = {c.co_filename for c in seen if not c.co_filename.endswith("__init__.py")}
    imported = [m for m in sys.modules if m == "funreason_refine" or m.startswith("funreason_refine.")]
    class_bodies = sum(1 for c in seen if not c.co_flags & inspect.CO_OPTIMIZED)  # a function's locals are optimized
    print("| | functions | of them class bodies | modules | modules imported |")
    print("|---|---|---|---|---|")
    print(f"| now | {len(seen)} | {class_bodies} | {len(modules)} | {len(imported)} |")
    if args.list:
        for code in seen:
            print(f"{Path(code.co_filename).relative_to(PACKAGE)}:{code.co_firstlineno} {code.co_qualname}")


if __name__ == "__main__":
    main()
