"""Calibration candidates: the rules alone, the pipeline as written, other judge models, prompt variants.

Each candidate is a pipeline file of its own, written into its own run folder under the
calibration folder (``DIR/<slug>/pipeline.toml``, run folder ``DIR/<slug>/``), derived from the
user's pipeline: the golden records as input, absolute paths, and the candidate's judge or
prompts. The folder keeps its judge answer cache, so a second calibration pays for nothing
already asked, and every other command (report, review, audit) works on it as on any run.
"""

from __future__ import annotations

import copy
import re
import shutil
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from funreason_refine.calibrate.golden import GoldenInput
from funreason_refine.calibrate.thresholds import without_thresholds
from funreason_refine.errors import ConfigError
from funreason_refine.judge_swap import split_model

RULES_ONLY = "rules only"
PIPELINE_JUDGES = "pipeline judges"
PIPELINE_SCORERS = "pipeline scorers"  # the pipeline's own candidate, when it has scorers and no [judge]
PIPELINE_PROMPTS = "pipeline"
JUDGE_KEYS = ("judge", "judges", "vote", "prompt", "prompt_file", "spec", "scorer")
SPECS = "specs"


@dataclass
class Candidate:
    name: str
    slug: str
    judge: str | None  # the [judge] model; None for the rules alone
    prompts: str  # the prompt variant: "pipeline" for the pipeline's own prompts
    data: dict[str, Any]
    spec_dirs: list[Path] = field(default_factory=list)  # stage spec folders, later ones overriding earlier ones
    notes: list[str] = field(default_factory=list)


def slugify(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "candidate"


def read_pipeline(path: Path) -> dict[str, Any]:
    """The pipeline file as TOML data, with its relative paths made absolute."""
    try:
        data = tomllib.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        raise ConfigError([f"{path}: pipeline file not found"]) from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError([f"{path}: cannot read the pipeline file ({exc})"]) from None
    base = path.resolve().parent
    # Every key of a pipeline file that names a path (see config.PipelineFile); input and output
    # are replaced by the candidate's own.
    if isinstance(data.get("stage_specs_dir"), str):
        data["stage_specs_dir"] = str(base / data["stage_specs_dir"])
    for entry in data.get("stages", []):
        if isinstance(entry, dict) and isinstance(entry.get("prompt_file"), str):
            entry["prompt_file"] = str(base / entry["prompt_file"])
    return data


def _judged(data: dict[str, Any]) -> bool:
    stages = [e for e in data.get("stages", []) if isinstance(e, dict)]
    return "judge" in data or any(
        isinstance(e.get("judge"), dict) or e.get("judges") or isinstance(e.get("scorer"), dict) for e in stages
    )


def _rules_only(data: dict[str, Any], registered: set[str]) -> Candidate:
    out = {k: v for k, v in data.items() if k not in ("judge", "generate", "max_cost")}
    notes = []
    if "stages" in data:
        kept = []
        for entry in data["stages"]:
            if not isinstance(entry, dict):  # load_pipeline reports it, naming the file and the entry
                kept.append(entry)
                continue
            if entry.get("name") not in registered:
                notes.append(f"stage {entry.get('name')!r} has no rules (a judge-only spec): left out")
                continue
            kept.append({k: v for k, v in entry.items() if k not in JUDGE_KEYS})
        out["stages"] = kept
    return Candidate(RULES_ONLY, slugify(RULES_ONLY), None, PIPELINE_PROMPTS, out, notes=notes)


def _with_judge(data: dict[str, Any], model: str | None) -> dict[str, Any]:
    if model is None:
        return copy.deepcopy(data)
    from funreason_refine.judge_swap import swap_judge

    return swap_judge(data, model)  # as `refine run --judge-model`


def _variant(data: dict[str, Any], folder: Path) -> tuple[dict[str, Any], list[Path]]:
    """The pipeline with a folder of stage specs laid over its own: their prompts win."""
    files = sorted(folder.glob("*.toml"))
    if not files:
        raise ConfigError([f"--prompts {folder}: no stage spec (*.toml) in this folder; copy one from stage_specs/"])
    names = set()
    for file in files:
        try:
            names.add(tomllib.loads(file.read_text("utf-8")).get("name"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError([f"{file}: cannot read this stage spec ({exc})"]) from None
    out = copy.deepcopy(data)
    for entry in out.get("stages", []):
        # A [[stages]] prompt would beat the spec's: the variant is what is measured.
        if isinstance(entry, dict) and entry.get("name") in names:
            entry.pop("prompt", None)
            entry.pop("prompt_file", None)
    own = [Path(data["stage_specs_dir"])] if isinstance(data.get("stage_specs_dir"), str) else []
    return out, [*own, folder]


def build(
    data: dict[str, Any], judge_models: list[str], prompt_dirs: list[Path], registered: set[str]
) -> list[Candidate]:
    """The rules alone; then each judge (the pipeline's own, then --judge-model ones) with each prompt set."""
    judges: list[tuple[str, str | None]] = []
    if _judged(data):
        own = data["judge"].get("model") if isinstance(data.get("judge"), dict) else None
        judges.append((str(own or (PIPELINE_SCORERS if "judge" not in data else PIPELINE_JUDGES)), None))
    for given in judge_models:
        if given not in [name for name, _ in judges] + [model for _, model in judges]:
            judges.append((split_model(given)[0], given))  # named by the model, not the URL it is served at
    variants: list[tuple[str, Path | None]] = [(PIPELINE_PROMPTS, None)] + [(p.name, p) for p in prompt_dirs]
    out = [_rules_only(data, registered)]
    for name, model in judges:
        for variant, folder in variants:
            derived, specs = _with_judge(data, model), list[Path]()
            if folder is not None:
                derived, specs = _variant(derived, folder)
            label = name if folder is None else f"{name} + prompts {variant}"
            out.append(Candidate(label, slugify(label), name, variant, derived, spec_dirs=specs))
    seen: dict[str, int] = {}
    for c in out:  # two names may make the same folder name
        seen[c.slug] = seen.get(c.slug, 0) + 1
        if seen[c.slug] > 1:
            c.slug = f"{c.slug}-{seen[c.slug]}"
    return out


def write(candidate: Candidate, out_dir: Path, golden: GoldenInput, max_record_bytes: int | None) -> Path:
    """Write the candidate's pipeline file into its run folder; returns its path."""
    import tomli_w  # a TOML writer: the standard library reads TOML only

    folder = out_dir / candidate.slug
    folder.mkdir(parents=True, exist_ok=True)
    data = copy.deepcopy(candidate.data)
    data["input"] = {"path": str(golden.path.resolve())}
    if golden.format is not None:
        data["input"]["format"] = golden.format
    if golden.answers is not None:
        data["input"]["answers"] = str(golden.answers.resolve())
    if max_record_bytes is not None:
        data["input"]["max_record_bytes"] = max_record_bytes
    data["output"] = {"dir": "."}
    # Every record that reaches a scorer is scored: its thresholds are applied afterwards (thresholds.py).
    without_thresholds(data)
    # The dataset audits judge a data set (duplicates, eval-set copies), not the stages and judges
    # scored here: a golden set's duplicates must not count as discards.
    data.pop("audit", None)
    if candidate.spec_dirs:
        specs = folder / SPECS
        shutil.rmtree(specs, ignore_errors=True)
        specs.mkdir()
        for rank, spec_dir in enumerate(candidate.spec_dirs):
            for file in sorted(spec_dir.glob("*.toml")):
                # Specs are read in name order, a later one replacing an earlier one of the same stage.
                shutil.copyfile(file, specs / f"{rank}-{file.name}")
        data["stage_specs_dir"] = SPECS
    path = folder / "pipeline.toml"
    header = f"# Written by `refine calibrate` for candidate {candidate.name!r}; edits are overwritten.\n"
    path.write_text(header + tomli_w.dumps(data), encoding="utf-8")
    return path
