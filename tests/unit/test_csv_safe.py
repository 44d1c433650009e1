"""actions.csv opens safely in a spreadsheet: text cells that a spreadsheet would run as a
formula get a leading apostrophe; numbers stay numbers."""

from __future__ import annotations

import csv
import io

import pyarrow as pa
import pytest

from facesieve.clean.actions import ACTIONS
from facesieve.report.step import csv_bytes


def _actions(uris: list[str], labels: list[str | None], scores: list[float]) -> pa.Table:
    n = len(uris)
    return pa.table(
        {
            "image_id": [f"id{i}" for i in range(n)],
            "uri": uris,
            "label": labels,
            "action": ["review"] * n,
            "reasons": [["mislabeled", "outlier"]] * n,
            "suggested_label": ['=HYPERLINK("http://x")'] + [None] * (n - 1),
            "duplicate_of": [None] * n,
            "cluster_id": list(range(-1, n - 1)),
            "score": scores,
        },
        schema=ACTIONS,
    )


@pytest.mark.parametrize(
    ("cell", "written"),
    [
        ("=cmd|' /C calc'!A0", "'=cmd|' /C calc'!A0"),
        ("+1+1", "'+1+1"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tfoo", "'\tfoo"),
        ("\rfoo", "'\rfoo"),
        ("-12", "-12"),  # a plain number as text is not a formula
        ("+3.5e2", "+3.5e2"),
        ("alice", "alice"),
        ("a=b", "a=b"),  # only the first character matters
    ],
)
def test_label_cells(cell: str, written: str) -> None:
    rows = list(
        csv.DictReader(io.StringIO(csv_bytes(_actions(["/d/a.jpg"], [cell], [0.5])).decode()))
    )
    assert rows[0]["label"] == written


def test_uris_are_escaped_and_numbers_kept() -> None:
    table = _actions(
        ["=evil.jpg", "/data/-x.jpg", "@home.png"], ["a", None, "b"], [-0.25, 0.0, 1.0]
    )
    rows = list(csv.DictReader(io.StringIO(csv_bytes(table).decode())))
    assert [r["uri"] for r in rows] == ["'=evil.jpg", "/data/-x.jpg", "'@home.png"]
    assert [r["score"] for r in rows] == ["-0.25", "0", "1"]
    assert [r["cluster_id"] for r in rows] == ["-1", "0", "1"]
    assert rows[0]["suggested_label"] == '\'=HYPERLINK("http://x")'
    assert rows[0]["reasons"] == "mislabeled;outlier" and rows[1]["label"] == ""
