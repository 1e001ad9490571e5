import subprocess
import sys
import zipfile

from tests.conftest import REPO


def test_a_non_editable_install_ships_the_stage_specs(tmp_path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(REPO),
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("funreason_refine-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    specs = sorted(n for n in names if n.startswith("funreason_refine/stage_specs/") and n.endswith(".toml"))
    assert [s.rsplit("/", 1)[1] for s in specs] == [
        "01_classification.toml",
        "02_query_tool.toml",
        "03_cot.toml",
        "04_function_params.toml",
        "05_format.toml",
    ]
    assert "funreason_refine/py.typed" in names
    assert not any(n.startswith(("tests/", "examples/")) for n in names)
    # Every module of the source tree is in the wheel (setup.cfg lists packages one by one).
    source = {str(p.relative_to(REPO)) for p in (REPO / "funreason_refine").rglob("*.py")}
    assert source - set(names) == set()
