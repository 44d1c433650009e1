import pyarrow as pa

from facesieve.report.changes import compare, counts


def _state(rows):
    cols = ["image_id", "uri", "label", "bytes", "sha256", "action", "reasons"]
    return pa.table({c: [r[i] for r in rows] for i, c in enumerate(cols)})


def test_changes_between_two_reports() -> None:
    before = _state([
        ("a", "/d/x/a.jpg", "x", 10, "h1", "keep", []),
        ("b", "/d/x/b.jpg", "x", 10, "h2", "keep", []),
        ("c", "/d/x/c.jpg", "x", 10, "h3", "drop", ["near_duplicate"]),
        ("d", "/d/x/d.jpg", "x", 10, "h4", "keep", []),
    ])  # fmt: skip
    after = _state([
        ("a", "/d/x/a.jpg", "x", 10, "h1", "keep", []),
        ("b", "/d/x/b.jpg", "x", 12, "h9", "keep", []),
        ("d", "/d/x/d.jpg", "x", 10, "h4", "drop", ["exact_duplicate"]),
        ("e", "/d/x/e.jpg", "x", 10, "h4", "keep", []),
    ])  # fmt: skip
    changes = compare(before, after).to_pylist()
    assert [(c["change"], c["image_id"]) for c in changes] == [
        ("added", "e"), ("removed", "c"), ("modified", "b"), ("verdict", "d"),
    ]  # fmt: skip
    verdict = changes[-1]
    assert verdict["old_action"] == "keep" and verdict["new_reasons"] == ["exact_duplicate"]
    assert changes[1]["new_action"] is None and changes[0]["old_action"] is None
    assert counts(compare(before, after)) == {"added": 1, "removed": 1, "modified": 1,
                                             "verdict": 1}  # fmt: skip
    assert compare(after, after).num_rows == 0
    assert counts(compare(None, after))["added"] == 4
