import pytest

from funreason_refine.testing import run_rows
from tests.conftest import xlam_row

HOSTILE = '<script>window.pwned=1</script></textarea><img src=x onerror="window.pwned=2"> weather in </pre>Paris?'
FORECAST = {
    "name": "get_forecast",
    "description": "Forecast.",
    "parameters": {"city": {"type": "str", "description": "City"}, "days": {"type": "int", "description": "Days"}},
}


def rows():
    """Two kept records, one kept after a repair, three discarded (one with hostile text)."""
    return [
        xlam_row("ok-paris"),
        xlam_row("ok-rome", query="Weather in Rome?", answers=[{"name": "get_weather", "arguments": {"city": "Rome"}}]),
        xlam_row(
            "repaired",
            query="Forecast for Oslo, 5 days",
            tools=[FORECAST],
            answers=[{"name": "get_forecast", "arguments": {"city": "Oslo", "days": "5"}}],
        ),
        xlam_row("hostile", query=HOSTILE, answers=[{"name": "get_time", "arguments": {}}]),
        xlam_row("no-days", tools=[FORECAST], answers=[{"name": "get_forecast", "arguments": {"city": "Oslo"}}]),
        xlam_row("unknown-param", answers=[{"name": "get_weather", "arguments": {"city": "Paris", "x": 1}}]),
    ]


@pytest.fixture
def run_dir(tmp_path):
    out = run_rows(rows(), tmp_path)
    assert [r["id"] for r in out["kept"]] == ["ok-paris", "ok-rome", "repaired"]
    assert [r["id"] for r in out["discarded"]] == ["hostile", "no-days", "unknown-param"]
    return tmp_path / "run"
