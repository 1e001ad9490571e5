"""The review server over HTTP: what it serves, what it saves, and the writes it refuses."""

import http.client
import json

import pytest

from funreason_refine.config import load_pipeline
from funreason_refine.engine import run_pipeline
from funreason_refine.overrides import OVERRIDES, read_decisions
from funreason_refine.review.server import ReviewServer
from tests.review.conftest import HOSTILE, rows


@pytest.fixture
def server(run_dir):
    srv = ReviewServer(run_dir).start()
    yield srv
    srv.stop()


def request(server, method, path, body=None, headers=None, host=None):
    port = int(server.url.rsplit(":", 1)[1].strip("/"))
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.putrequest(method, path, skip_host=True)
    conn.putheader("Host", host or f"127.0.0.1:{port}")
    data = json.dumps(body).encode() if isinstance(body, dict) else (body or b"")
    for key, value in (headers or {}).items():
        conn.putheader(key, value)
    conn.putheader("Content-Length", str(len(data)))
    conn.endheaders(data)
    response = conn.getresponse()
    payload = response.read()
    conn.close()
    return response.status, dict(response.getheaders()), payload


def post(server, body, **headers):
    sent = {"Content-Type": "application/json", "X-Review-Token": server.state.token, **headers}
    status, _, payload = request(server, "POST", "/api/decision", body, {k: v for k, v in sent.items() if v})
    return status, json.loads(payload)


def test_the_page_lists_discards_by_stage_and_reason_then_kept_records(server, run_dir):
    status, headers, page = request(server, "GET", "/")
    assert status == 200 and server.url.startswith("http://127.0.0.1:")
    assert server._server.server_address[0] == "127.0.0.1"
    assert (
        "script-src 'nonce-" in headers["Content-Security-Policy"]
        and "default-src 'none'" in headers["Content-Security-Policy"]
    )
    assert f'content="{server.state.token}"' in page.decode()
    items = json.loads(request(server, "GET", "/api/items")[2])["items"]
    assert [(i["id"], i["group"]) for i in items] == [
        ("hostile", "discarded at query_tool: unknown_function"),
        ("no-days", "discarded at function_params: missing_required"),
        ("unknown-param", "discarded at function_params: unknown_parameter"),
        ("ok-paris", "kept (random sample)"),
        ("ok-rome", "kept (random sample)"),
        ("repaired", "kept (random sample)"),
    ]


def test_a_record_comes_as_json_with_no_raw_markup(server):
    status, headers, body = request(server, "GET", "/api/record?index=3")
    assert status == 200 and headers["Content-Type"].startswith("application/json")
    assert b"<" not in body and b">" not in body, "markup characters are escaped even inside the JSON"
    view = json.loads(body)
    assert view["query"] == HOSTILE and view["stage"] == "query_tool" and view["answer"] == "[get_time()]"
    repaired = json.loads(request(server, "GET", "/api/record?index=2")[2])
    (regen,) = repaired["regenerations"]
    assert (regen["rejected"], regen["regenerated"]) == (
        '[get_forecast(city="Oslo", days="5")]',
        '[get_forecast(city="Oslo", days=5)]',
    )
    assert request(server, "GET", "/api/record?index=99")[0] == 404


def test_decisions_are_saved_and_the_latest_one_counts(server, run_dir):
    assert post(server, {"index": 4, "decision": "right"})[0] == 200
    status, reply = post(server, {"index": 4, "decision": "wrong", "note": "days is implied"})
    assert status == 200 and reply["saved"]["decision"] == "wrong" and reply["saved"]["stage"] == "function_params"
    assert post(server, {"index": 0, "decision": "wrong"})[0] == 200
    assert post(server, {"index": 0, "decision": "none"})[0] == 200
    lines = (run_dir / OVERRIDES).read_text().splitlines()
    assert len(lines) == 4
    latest = read_decisions(run_dir).latest
    assert list(latest) == [4] and latest[4].note == "days is implied" and latest[4].kind == "discarded"
    decisions = json.loads(request(server, "GET", "/api/items")[2])["decisions"]
    assert list(decisions) == ["4"]


@pytest.mark.parametrize(
    "headers, why",
    [
        ({"Origin": "http://evil.example"}, "cross-origin write refused"),
        ({"Origin": "http://127.0.0.1:1"}, "cross-origin write refused"),
        ({"Sec-Fetch-Site": "cross-site"}, "cross-site write refused"),
        ({"Content-Type": "application/x-www-form-urlencoded"}, "send JSON"),
        ({"Content-Type": "text/plain"}, "send JSON"),
        ({"X-Review-Token": None}, "X-Review-Token"),
        ({"X-Review-Token": "guess"}, "X-Review-Token"),
    ],
)
def test_writes_from_anywhere_but_the_page_are_refused(server, run_dir, headers, why):
    status, reply = post(server, {"index": 4, "decision": "wrong"}, **headers)
    assert status == 403 and why in reply["error"]
    assert not (run_dir / OVERRIDES).exists()


def test_another_host_name_is_refused_even_for_reading(server):
    status, _, body = request(server, "GET", "/api/items", host="evil.example:80")
    assert status == 403 and b"unknown Host" in body


@pytest.mark.parametrize(
    "body, status, why",
    [
        ({"index": 99, "decision": "wrong"}, 404, "record 99 is not a kept or discarded record"),
        ({"index": "4", "decision": "wrong"}, 404, "not a kept or discarded record"),
        ({"index": 4, "decision": "maybe"}, 400, "decision"),
        ({"index": 4, "decision": "wrong", "note": "x" * 5000}, 400, "note"),
        ({"index": 4, "decision": "wrong", "path": "../../x"}, 400, "send {"),
        (b"{not json", 400, ""),
    ],
)
def test_bad_decisions_are_refused_and_nothing_is_written(server, run_dir, body, status, why):
    got, reply = post(server, body)
    assert got == status and why in reply["error"]
    assert not (run_dir / OVERRIDES).exists()


def test_only_overrides_jsonl_is_ever_written(server, run_dir):
    before = {p: p.stat().st_mtime_ns for p in run_dir.parent.rglob("*") if p.is_file()}
    for path in ("/api/decision/../../escape", "/../overrides.jsonl", "/api/decision?file=../x"):
        post_status = request(
            server,
            "POST",
            path,
            {"index": 4, "decision": "wrong"},
            {"Content-Type": "application/json", "X-Review-Token": server.state.token},
        )[0]
        assert post_status in (200, 404)
    post(server, {"index": 4, "decision": "wrong"})
    after = {p: p.stat().st_mtime_ns for p in run_dir.parent.rglob("*") if p.is_file()}
    changed = {p for p in after if before.get(p) != after[p]}
    assert changed == {run_dir / OVERRIDES}


def test_a_last_line_still_being_written_is_left_out(run_dir):
    with (run_dir / "discarded.jsonl").open("a") as fh:
        fh.write('{"index": 9, "id": "half-writ')
    srv = ReviewServer(run_dir, allow_partial=True).start()
    try:
        items = json.loads(request(srv, "GET", "/api/items")[2])["items"]
        assert [i["index"] for i in items if i["kind"] == "discarded"] == [3, 4, 5]
    finally:
        srv.stop()


def test_an_index_of_other_digits_is_no_record_and_a_note_may_hold_a_lone_surrogate(server, run_dir):
    for index in ("%C2%B2", "%D9%A3"):  # "²" and Arabic-Indic three: str.isdigit() says True of both
        status, _, _ = request(server, "GET", f"/api/record?index={index}")
        assert status == 404
    status, reply = post(server, b'{"index": 4, "decision": "wrong", "note": "odd \\ud800 char"}')
    assert status == 200, reply
    assert read_decisions(run_dir).latest[4].note == "odd \\ud800 char"


def test_a_run_refined_again_while_the_review_is_open_is_refused_not_decided_on_another_record(server, run_dir):
    """The review reads each record at the offset it found when it started: after `refine run --fresh` on
    reordered input, record 4's offset holds another record, which must not get the decision made on 4."""
    first_discard = next(iter((run_dir / "discarded.jsonl").open()))
    assert json.loads(first_discard)["index"] == 3
    redone = rows()[3:] + rows()[:3]  # the same records, the discarded ones first
    with (run_dir.parent / "input.jsonl").open("w") as fh:
        fh.writelines(json.dumps(row) + "\n" for row in redone)
    run_pipeline(load_pipeline(run_dir.parent / "pipeline.toml"), workers=1, fresh=True)
    assert json.loads(next(iter((run_dir / "discarded.jsonl").open())))["index"] == 0
    status, reply = post(server, {"index": 4, "decision": "wrong"})
    assert status == 500 and "changed since this review started" in reply["error"], reply
    assert "start it again" in reply["error"] and not (run_dir / OVERRIDES).exists()
    status, _, body = request(server, "GET", "/api/record?index=3")
    assert status == 500 and b"changed since this review started" in body


def test_a_run_refined_again_into_files_of_the_same_inode_is_refused_as_changed(server, run_dir):
    """A file system that gives the new outcome file the inode the old one had (ext4 does, after `refine run
    --fresh` deleted it) left a record's offset in the middle of a line, or past the end: the review said the
    folder "cannot be reviewed", not that it changed and to start the review again."""
    discarded = run_dir / "discarded.jsonl"
    first = discarded.read_bytes().split(b"\n")[0]
    with discarded.open("r+b") as fh:  # the new run's shorter file, where the old one was
        fh.write(first[:-20] + b"}\n")
        fh.truncate()
    for index in (4, 5):  # an offset past the end of the file, and one inside what is now a line
        status, reply = post(server, {"index": index, "decision": "wrong"})
        assert status == 500 and "changed since this review started" in reply["error"], reply
    assert not (run_dir / OVERRIDES).exists()


def test_bidirectional_controls_in_a_record_are_shown_not_obeyed(tmp_path):
    # U+202E reversed what followed it on the page: the argument "5 days" read "syad 5", the id another id.
    from funreason_refine.testing import run_rows
    from tests.conftest import xlam_row

    query = "Forecast for Oslo, \u202e5 days\u202c please"
    run_rows([xlam_row("id\u2067x", query=query, answers=[{"name": "get_time", "arguments": {}}])], tmp_path)
    srv = ReviewServer(tmp_path / "run").start()
    try:
        (item,) = json.loads(request(srv, "GET", "/api/items")[2])["items"]
        view = json.loads(request(srv, "GET", "/api/record?index=0")[2])
    finally:
        srv.stop()
    assert item["id"] == "id\\u2067x" and view["id"] == "id\\u2067x"
    assert view["query"] == "Forecast for Oslo, \\u202e5 days\\u202c please"
