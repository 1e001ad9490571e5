"""BFCL's possible answers read as BFCL's checker reads them, on real entries (tests/data/bfcl, see its README)."""

import json
from pathlib import Path

import pytest

from funreason_refine.config import load_pipeline
from funreason_refine.engine import run_pipeline
from funreason_refine.readers import InputStream
from funreason_refine.record import Record
from funreason_refine.stages.function_params import FunctionParams
from funreason_refine.testing import check

DATA = Path(__file__).resolve().parents[1] / "data" / "bfcl"


def read_excerpt():
    return [item for path in sorted(DATA.glob("BFCL_v4_*.json")) for item in InputStream(path, "bfcl").items()]


@pytest.fixture(scope="module")
def records():
    return {item.id: item for item in read_excerpt() if isinstance(item, Record)}


def test_every_entry_of_the_excerpt_is_read_as_a_record():
    items = read_excerpt()
    assert len(items) == 16 and [i for i in items if not isinstance(i, Record)] == []


def arguments(records, rid, at=0):
    return records[rid].calls[at].arguments


def test_objects_in_a_list_argument_list_acceptable_values_per_key(records):
    assert arguments(records, "simple_python_96")["conditions"] == [
        {"field": "age", "operation": ">", "value": "25"},
        {"field": "job", "operation": "=", "value": "engineer"},
    ]
    assert check(FunctionParams, records["simple_python_96"]).action == "pass"


def test_an_object_argument_lists_acceptable_values_per_key_and_a_blank_leaves_a_key_out(records):
    # "profile_data": [{"email": [...], "age": [30], "bio": [""]}], "notify": ["", true]
    assert arguments(records, "live_simple_114-70-0") == {
        "user_id": 12345,
        "profile_data": {"email": "john.doe@example.com", "age": 30},
    }


def test_an_object_below_the_first_level_is_taken_as_written(records):
    args = arguments(records, "live_multiple_121-46-0")
    assert args["ego_info"] == {"position": {"lateral": 10.5, "longitudinal": 50}, "orientation": 30}
    assert args["bounding_boxes"] == [{"x": 60.2, "y": 12.3}]


def test_a_required_parameter_skips_the_blank_and_an_optional_one_takes_it(records):
    # "fuel_efficiency": ["", 25.0] is required; "efficiency_reduction": [0, ""] is not.
    assert arguments(records, "simple_python_200") == {
        "distance": 12000,
        "fuel_type": "gas",
        "fuel_efficiency": 25.0,
        "efficiency_reduction": 0,
    }
    assert check(FunctionParams, records["simple_python_200"]).action == "pass"


def test_a_name_the_schema_lacks_is_left_out_where_the_label_allows_it(records):
    # bank.calculate_balance: "transactions": [[], ""], "type": ["credit", ""], "starting_balance": ["", 0.0]
    assert arguments(records, "parallel_multiple_26", at=1) == {"account": "00125648", "transactions": []}
    assert check(FunctionParams, records["parallel_multiple_26"]).action == "pass"


def test_an_enum_beside_an_array_type_constrains_the_items(records):
    record = records["live_simple_71-35-0"]
    metrics = record.tools[0]["parameters"]["properties"]["metrics"]
    assert metrics["type"] == "array" and "enum" not in metrics and "view" in metrics["items"]["enum"]
    assert arguments(records, "live_simple_71-35-0")["metrics"] == ["view"]
    assert check(FunctionParams, record).action == "pass"


def test_a_parameter_whose_default_is_null_accepts_null(records):
    assert arguments(records, "live_multiple_1038-265-0")["start_date"] is None
    assert check(FunctionParams, records["live_multiple_1038-265-0"]).action == "pass"


@pytest.mark.parametrize(
    "rid, field, words",
    [
        ("parallel_multiple_94", "ground_truth[0].sort_list.elements", 'fits the schema: [0]: "apple" is not of type'),
        ("live_simple_106-63-0", "ground_truth[0].record.auto_loan_payment_start", "lists no acceptable value"),
        ("live_multiple_507-149-4", "ground_truth[0].Flights_4_SearchOnewayFlight.origin_airport", "[''] only allows"),
        ("live_multiple_750-169-5", "ground_truth[0].Media_3_FindMovies.genre", '"Any" is not one of'),
        ("live_multiple_862-181-3", "ground_truth[0].Trains_1_FindTrains.journey_start_time", "not a parameter"),
        ("live_multiple_964-207-0", "ground_truth[0].transfer_to_human_agent.statement", "missing from the label"),
    ],
)
def test_a_label_that_contradicts_its_schema_is_discarded_as_a_label_bug(records, rid, field, words):
    verdict = check(FunctionParams, records[rid])
    assert (verdict.action, verdict.reason) == ("discard", "label_contradicts_schema")
    assert verdict.message.startswith(f"{field}: ") and words in verdict.message


@pytest.mark.parametrize(
    "rid, parameter, given, repaired",
    [
        ("live_multiple_552-153-1", "is_unisex", True, "True"),
        ("live_multiple_595-158-1", "number_of_rooms", 2, "2"),
        ("live_multiple_756-169-11", "genre", "horror", "Horror"),
    ],
)
def test_values_one_enum_member_away_are_repaired(records, rid, parameter, given, repaired):
    record = records[rid]
    assert record.calls[0].arguments[parameter] == given and not record.problems
    verdict = check(FunctionParams, record)
    assert (verdict.action, verdict.reason) == ("regenerate", "coerced_enum")
    assert verdict.record.calls[0].arguments[parameter] == repaired
    assert check(FunctionParams, verdict.record).action == "pass"


def test_a_run_keeps_the_repaired_entries_and_reports_each_label_bug(tmp_path):
    pipeline = tmp_path / "bfcl.toml"
    pipeline.write_text(
        f"[input]\npath = {json.dumps(str(DATA / 'BFCL_v4_live_multiple.json'))}\n"
        f"[output]\ndir = {json.dumps(str(tmp_path / 'run'))}\n",
        encoding="utf-8",
    )
    result = run_pipeline(load_pipeline(pipeline), workers=1)
    lines = {
        kind: [json.loads(line) for line in (result.out_dir / f"{kind}.jsonl").read_text("utf-8").split("\n") if line]
        for kind in ("kept", "discarded", "quarantined", "errors")
    }
    assert {d["id"]: (d["stage"], d["reason"]) for d in lines["discarded"]} == {
        rid: ("function_params", "label_contradicts_schema")
        for rid in (
            "live_multiple_507-149-4",
            "live_multiple_750-169-5",
            "live_multiple_862-181-3",
            "live_multiple_964-207-0",
        )
    }
    kept = {r["id"]: r for r in lines["kept"]}
    assert sorted(kept) == [
        "live_multiple_1038-265-0",
        "live_multiple_121-46-0",
        "live_multiple_552-153-1",
        "live_multiple_595-158-1",
        "live_multiple_756-169-11",
    ]
    assert kept["live_multiple_756-169-11"]["answer"][0]["arguments"]["genre"] == "Horror"
    assert lines["quarantined"] == [] and lines["errors"] == []
    reasons = result.summary.as_dict()["stages"]["function_params"]["reasons"]
    assert reasons["discard"] == {"label_contradicts_schema": 4} and reasons["regenerate"] == {"coerced_enum": 3}
