"""The results document as a typed, versioned contract: Document.from_json reads what to_json
writes, reads version-1 documents (which gained keys over time without a version change), and
refuses what it cannot read with one line. The renderers work on a loaded document."""

import json

import pytest

from farm.document import DOCUMENT_VERSION, SCHEMA_VERSION, Document, DocumentError, Row, Status
from farm.render import FORMATS, render

# A version-1 document as the first farm release wrote it (before issue 7): no document_version,
# no statistics, warnings, distributions, baseline, cost or leaks; rows with the 14 original fields;
# status without incomplete/missing.
V1 = {
    "schema_version": 1,
    "run_id": "20261101-020000-abcdef",
    "status": {"state": "finished", "planned": 4, "done": 4, "ok": 3, "failed": 1, "label": "schedule:nightly"},
    "manifest": {"plan": {"providers": ["local"], "snippets": ["hello"], "repetitions": 4, "warmup": 0,
                          "seed": 5}},
    "counts": {"ok": 3, "error": 1},
    "errors_by_class": {"local/hello": {"snippet_failed": 1}},
    "results": [{"provider": "local", "snippet": "hello", "phase": "run", "n": 3, "errors": 1, "error_rate": 0.25,
                 "min_ms": 10.0, "p50_ms": 12.0, "p90_ms": 13.6, "p95_ms": 13.8, "p99_ms": 13.96, "max_ms": 14.0,
                 "mean_ms": 12.0, "stdev_ms": 2.0}],
}


def test_a_v1_document_loads_with_absent_keys_empty():
    doc = Document.from_json(json.loads(json.dumps(V1)))
    assert doc.run_id == V1["run_id"] and doc.status.label == "schedule:nightly"
    assert doc.status.incomplete is False and doc.status.missing == [] and doc.status.missing_count == 0
    (row,) = doc.results
    assert isinstance(row, Row) and row.p50_ms == 12.0 and row.p50_ci_ms is None and row.flags == []
    assert row.method == "exact" and row.clock == "monotonic"  # version 7's clock, derived from the phase
    assert doc.headline == []  # version 7: absent in older documents means empty
    assert doc.statistics == {} and doc.warnings == [] and doc.distributions == {}
    assert doc.baseline is None and doc.cost is None and doc.leaks == {"leaked": {}, "reclaimed": {}}
    assert row.scenario == "cold" and row.subject == "hello"  # rows from before scenarios (version < 4) are cold
    upgraded = doc.to_json()  # written back as the current version, the original values kept
    assert upgraded["schema_version"] == SCHEMA_VERSION and upgraded["document_version"] == DOCUMENT_VERSION == 10
    assert upgraded["reused"] == {}  # version 6: a v1 document had no reused sandboxes to say of
    assert upgraded["results"][0]["stdev_ms"] == 2.0 and upgraded["counts"] == V1["counts"]


def test_a_v1_document_renders_in_every_format_but_csv():
    doc = Document.from_json(V1)
    table = render(doc, "table")
    assert table.splitlines()[0] == "run 20261101-020000-abcdef  finished  3 ok / 1 failed of 4"
    assert "local · hello — 1 of 4 failed (25.0%)" in table and "errors local/hello: snippet_failed=1" in table
    assert "— n≥" in table  # no interval in a v1 row: the cell says how many samples it needs
    assert "schedule:nightly" in render(doc, "html")
    assert "| local | hello | 25.0 | run |" in render(doc, "markdown")
    assert json.loads(render(doc, "json"))["document_version"] == 10
    with pytest.raises(DocumentError, match="no samples attached"):
        render(doc, "csv")  # raw samples live in Redis, never in the document
    assert set(FORMATS) == {"table", "json", "markdown", "csv", "html"}


def test_the_current_version_round_trips():
    doc = Document(run_id="r", status=Status("running", 10, 4, 3, 1, incomplete=False),
                   manifest={"plan": {}}, counts={"ok": 3}, errors_by_class={},
                   results=[Row("p", "s", "tti", 3, 1, 0.25, 1.0, 2.0, 3.0, 3.5, 3.9, 4.0, 2.5, 1.0,
                                p50_ci_ms=[1.0, 3.0], flags=["bimodal"], modes_ms=[1.0, 3.9])],
                   warnings=["few samples"], distributions={"p/s/tti": [1.0, 4.0]},
                   baseline={"runs": ["q"], "flags": [], "changes": []}, cost={"label": "x", "providers": {}})
    data = json.loads(json.dumps(doc.to_json()))
    assert Document.from_json(data) == doc
    assert list(data)[:3] == ["schema_version", "document_version", "run_id"]


def test_a_newer_document_of_the_same_schema_is_read_ignoring_keys_it_adds():
    newer = {**V1, "document_version": DOCUMENT_VERSION + 1, "energy": {"joules": 3},
             "results": [{**V1["results"][0], "p999_ms": 14.0}], "status": {**V1["status"], "host": "x"}}
    doc = Document.from_json(newer)
    assert doc.results[0].p50_ms == 12.0 and "energy" not in doc.to_json()


@pytest.mark.parametrize("data, message", [
    ({**V1, "schema_version": 2}, "schema_version 2 is not 1"),
    ({k: v for k, v in V1.items() if k != "schema_version"}, "schema_version None is not 1"),
    ({**V1, "document_version": "2"}, "document_version '2' is not a positive integer"),
    ({k: v for k, v in V1.items() if k != "results"}, "version 1 is incomplete or malformed: KeyError"),
    ({**V1, "results": [{"provider": "p"}]}, "incomplete or malformed: TypeError"),
    ([V1], "a results document is a JSON object, not list"),
])
def test_unreadable_documents_fail_with_one_line(data, message):
    with pytest.raises(DocumentError, match=message) as err:
        Document.from_json(data)
    assert "\n" not in str(err.value)
