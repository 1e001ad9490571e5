import shutil
import subprocess
import sys
import zipfile

from tests.conftest import REPO


def test_a_non_editable_install_ships_the_stage_specs(tmp_path):
    # Built from a copy without build/ or egg-info: setuptools would reuse a stale build/ folder.
    source_tree = tmp_path / "src"
    skip = shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", "runs", "data")
    shutil.copytree(REPO, source_tree, ignore=skip)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(source_tree),
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path / "wheel"),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = (tmp_path / "wheel").glob("funreason_refine-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    specs = sorted(n for n in names if n.startswith("funreason_refine/stage_specs/") and n.endswith(".toml"))
    assert [s.rsplit("/", 1)[1] for s in specs] == [
        "classification.toml",
        "cot.toml",
        "format.toml",
        "function_params.toml",
        "query_tool.toml",
    ]
    assert "funreason_refine/py.typed" in names
    assert "funreason_refine/hub/templates/README.md.j2" in names  # the dataset card's template
    assert not any(n.startswith(("tests/", "examples/")) for n in names)
    # Every module of the source tree is in the wheel (setup.cfg lists packages one by one).
    source = {str(p.relative_to(REPO)) for p in (REPO / "funreason_refine").rglob("*.py")}
    assert source - set(names) == set()
