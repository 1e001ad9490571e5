"""Time the review page itself in headless Chromium on a large run: a step to the next record, a decision.

python bench/bench_review_page.py [--records 20000] [--steps 20] [--decisions 10]

Builds bench/runs/review-N (once): the quickstart's records repeated to N input lines, each copy's
id and query made its own, refined with the quickstart's pipeline. Then serves its review in this
process and drives the page with key events in Chromium (Debian's chromium and chromedriver):

- step: `j` pressed, until the next record is on the page and the browser has drawn a frame;
- decision: `r` pressed, until the next record is on the page and drawn, and until the server
  has saved the decision (the page says so).

The decisions go to the run's overrides.jsonl, which is removed afterwards.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
QUICKSTART = HERE.parent / "examples" / "quickstart"

MEASURE = """
const [steps, decisions, done] = arguments;
const frame = () => new Promise((r) => requestAnimationFrame(() => setTimeout(r, 0)));
const until = async (test) => { while (!test()) await new Promise((r) => setTimeout(r, 1)); };
const title = () => document.getElementById("title").textContent;
const press = (key) => document.dispatchEvent(new KeyboardEvent("keydown", {key: key, bubbles: true}));
(async () => {
  const out = {items: document.querySelectorAll("#list li").length, step: [], decide: [], saved: []};
  for (let n = 0; n < steps; n++) {
    const before = title(), t = performance.now();
    press("j");
    await until(() => title() !== before);
    await frame();
    out.step.push(performance.now() - t);
  }
  for (let n = 0; n < decisions; n++) {
    const before = title(), index = before.match(/^Record (\\d+) /)[1], t = performance.now();
    press("r");
    await until(() => title() !== before);
    await frame();
    out.decide.push(performance.now() - t);
    await until(() => document.getElementById("status").textContent === "saved #" + index + ": verdict right");
    out.saved.push(performance.now() - t);
  }
  done(out);
})();
"""


def build(records: int) -> Path:
    folder = HERE / "runs" / f"review-{records}"
    run_dir = folder / "run"
    if (run_dir / "summary.json").exists():
        return run_dir
    from funreason_refine.config import load_pipeline
    from funreason_refine.engine import run_pipeline

    folder.mkdir(parents=True, exist_ok=True)
    lines = (QUICKSTART / "records.jsonl").read_bytes().rstrip(b"\n").split(b"\n")
    with (folder / "records.jsonl").open("wb") as out:
        for n in range(records):
            line, copy = lines[n % len(lines)], n // len(lines)
            try:
                row = json.loads(line)
                row["id"], row["query"] = f"{row['id']}-{copy}", f"{row['query']} (copy {copy})"
                line = json.dumps(row).encode()
            except (ValueError, KeyError, TypeError):
                pass  # the quickstart's unreadable lines stay as they are: quarantined, once per copy
            out.write(line + b"\n")
    shutil.copy(QUICKSTART / "eval_set.json", folder / "eval_set.json")
    shutil.copy(QUICKSTART / "pipeline.toml", folder / "pipeline.toml")
    run_pipeline(load_pipeline(folder / "pipeline.toml", run_dir))
    return run_dir


def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1000"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    driver.set_script_timeout(600)
    return driver


def main() -> None:
    from funreason_refine.review.server import ReviewServer

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--decisions", type=int, default=10)
    args = parser.parse_args()
    run_dir = build(args.records)
    overrides = run_dir / "overrides.jsonl"
    if overrides.exists():
        sys.exit(f"{overrides} exists: move it away first (this benchmark removes the one it writes)")
    server = ReviewServer(run_dir).start()
    driver = browser()
    try:
        driver.get(server.url)
        while driver.execute_script("return document.getElementById('app').dataset.ready") != "true":
            time.sleep(0.1)
        got = driver.execute_async_script(MEASURE, args.steps, args.decisions)
    finally:
        driver.quit()
        server.stop()
        overrides.unlink(missing_ok=True)

    def ms(values: list[float]) -> str:
        return f"median {statistics.median(values):.0f} ms, max {max(values):.0f} ms"

    print(f"| review page, {args.records:,}-record run ({got['items']:,} records listed) | |")
    print("|---|---|")
    print(f"| step to the next record (`j`, {args.steps}) | {ms(got['step'])} |")
    print(f"| decision (`r`, {args.decisions}): the next record shown | {ms(got['decide'])} |")
    print(f"| decision: saved | {ms(got['saved'])} |")


if __name__ == "__main__":
    main()
