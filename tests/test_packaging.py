import os
import shutil
import subprocess
import sys
import zipfile

import pytest

from tests.conftest import REPO


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    # Built from a copy without build/ or egg-info: setuptools would reuse a stale build/ folder.
    tmp_path = tmp_path_factory.mktemp("wheel")
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
    (built,) = (tmp_path / "wheel").glob("funreason_refine-*.whl")
    return built


def test_a_non_editable_install_ships_the_stage_specs(wheel):
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


def test_a_non_editable_install_ships_every_page_template(wheel, tmp_path):
    names = set(zipfile.ZipFile(wheel).namelist())
    templates = {
        p.relative_to(REPO).as_posix() for p in (REPO / "funreason_refine" / "templates").rglob("*") if p.is_file()
    }
    pages = {f"funreason_refine/templates/{page}.html" for page in ("report", "review", "calibration", "compare")}
    assert pages <= templates and templates - names == set()
    # The installed package (not this checkout) finds them: the review page needs page.css, review.css, review.js.
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    code = (
        "import funreason_refine; from funreason_refine.review.page import render_page; "
        "print(funreason_refine.__file__); print(render_page('t', 'n'))"
    )
    env = {**os.environ, "PYTHONPATH": str(site)}
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    where, page = done.stdout.split("\n", 1)
    assert where.startswith(str(site))
    assert "max-width:1100px" in page and "nav li:hover" in page and 'api("/api/items")' in page
