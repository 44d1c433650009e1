import json

import pytest

from facesieve.apply.decisions import ReviewDecision, decisions_bytes, parse_decisions
from facesieve.errors import ConfigError


def _doc(*entries: dict) -> bytes:
    return json.dumps(
        {"format": "facesieve-decisions", "version": 1, "decisions": list(entries)}
    ).encode()


def test_round_trip_and_last_entry_wins():
    data = decisions_bytes(
        [
            ReviewDecision("a", "drop"),
            ReviewDecision("b", "relabel", "Jane", "looked twice"),
            ReviewDecision("a", "keep"),
        ],
        report="r1",
    )
    got = parse_decisions(data)
    assert got == {
        "a": ReviewDecision("a", "keep"),
        "b": ReviewDecision("b", "relabel", "Jane", "looked twice"),
    }


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"not json", "not JSON"),
        (json.dumps({"format": "other"}).encode(), "not a facesieve decisions file"),
        (_doc({"image_id": "a", "action": "review"}), "action must be one of"),
        (_doc({"image_id": "a", "action": "relabel"}), "relabel needs"),
        (_doc({"image_id": "a", "action": "keep", "label": "x"}), "only relabel"),
        (_doc({"image_id": "", "action": "keep"}), "image_id"),
        (_doc("a"), "must be an object"),
    ],
)
def test_bad_files_name_the_problem(data, message):
    with pytest.raises(ConfigError, match=message):
        parse_decisions(data, "d.json")
