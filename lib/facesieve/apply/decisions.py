"""Review decisions: what a person decided about flagged images, as a file ``apply`` reads.

The review page (``OUT/report/index.html``) exports this file; people may also write it by hand
or from a script. A decision *replaces* the action of one image, whatever the report said:

```json
{"format": "facesieve-decisions", "version": 1,
 "report": "<summary.json's report id, optional>",
 "decisions": [
   {"image_id": "3f2a...", "action": "keep"},
   {"image_id": "9b41...", "action": "relabel", "label": "Jane_Doe", "note": "checked"},
   {"image_id": "77c0...", "action": "drop"}]}
```

``action`` is one of ``keep``, ``drop``, ``relabel`` (``label`` required, the new label); a
decision cannot be ``review`` (that is what a decision settles). The page's *accept* writes the
report's action (``relabel`` with its suggested label), *reject* writes ``keep``, and *relabel*
writes the label the reviewer typed. Why a file and not edits of ``actions.parquet``: the next
nightly report rewrites the actions, while decisions are a person's work and must survive it;
``apply`` matches them by ``image_id``, which stays the same for the same file path.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from facesieve.errors import ConfigError

FORMAT = "facesieve-decisions"
VERSION = 1
DECIDABLE = ("keep", "drop", "relabel")


@dataclass(frozen=True)
class ReviewDecision:
    """One person's decision about one image: the action that replaces the report's."""

    image_id: str
    action: str  # keep | drop | relabel
    label: str | None = None  # the new label, for relabel
    note: str | None = None


def parse_decisions(data: bytes, source: str = "decisions file") -> dict[str, ReviewDecision]:
    """Decisions by image id; raises ``ConfigError`` naming the first bad entry.

    A later entry for the same image replaces an earlier one (the page appends as people change
    their minds).
    """
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{source} is not JSON: {exc}") from exc
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ConfigError(f"{source} is not a facesieve decisions file (format {FORMAT!r})")
    if doc.get("version") != VERSION:
        raise ConfigError(
            f"{source}: version {doc.get('version')!r}, this facesieve reads {VERSION}"
        )
    entries = doc.get("decisions")
    if not isinstance(entries, list):
        raise ConfigError(f"{source}: 'decisions' must be a list")
    out: dict[str, ReviewDecision] = {}
    for n, entry in enumerate(entries):
        where = f"{source}: decision {n}"
        if not isinstance(entry, dict):
            raise ConfigError(f"{where} must be an object")
        image_id, action, label = entry.get("image_id"), entry.get("action"), entry.get("label")
        note = entry.get("note")
        if not isinstance(image_id, str) or not image_id:
            raise ConfigError(f"{where}: image_id must be a non-empty string")
        if action not in DECIDABLE:
            raise ConfigError(
                f"{where}: action must be one of {', '.join(DECIDABLE)}, not {action!r}"
            )
        if action == "relabel" and (not isinstance(label, str) or not label.strip()):
            raise ConfigError(f"{where}: relabel needs a non-empty 'label'")
        if action != "relabel" and label is not None:
            raise ConfigError(f"{where}: only relabel takes a 'label'")
        if note is not None and not isinstance(note, str):
            raise ConfigError(f"{where}: note must be a string")
        out[image_id] = ReviewDecision(image_id, action, label.strip() if label else None, note)
    return out


def decisions_bytes(decisions: list[ReviewDecision], report: str | None = None) -> bytes:
    """The file for ``decisions`` (what the review page exports), for scripts and tests."""
    entries = []
    for d in decisions:
        entry = {"image_id": d.image_id, "action": d.action}
        if d.label is not None:
            entry["label"] = d.label
        if d.note is not None:
            entry["note"] = d.note
        entries.append(entry)
    doc = {"format": FORMAT, "version": VERSION, "report": report, "decisions": entries}
    return (json.dumps(doc, indent=1) + "\n").encode()
