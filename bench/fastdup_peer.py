"""fastdup (visual-similarity duplicates) on the noisy copy of `facesieve eval`, same truth.

fastdup pins its own dependencies: run it from its own virtual environment, with its telemetry
off (SENTRY_OPT_OUT=1), for example:

    python -m venv /tmp/fdenv && /tmp/fdenv/bin/pip install fastdup
    SENTRY_OPT_OUT=1 /tmp/fdenv/bin/python bench/fastdup_peer.py /tmp/ev1

Scores near-duplicate pairs exactly like `facesieve eval` does: a pair is right when both images
descend from one source image; pairs of two untouched source images are counted apart.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path


def main(work: str, threshold: float) -> None:
    import fastdup

    w = Path(work)
    files = json.loads((w / "truth.json").read_text())["files"]
    data = (w / "data").resolve()
    fd_dir = w / "fastdup"
    started = time.perf_counter()
    fd = fastdup.create(work_dir=str(fd_dir), input_dir=str(data))
    fd.run(overwrite=True, threshold=threshold, num_threads=2)
    seconds = time.perf_counter() - started
    sim = fd.similarity()
    source = {p: t.get("of", p) for p, t in files.items()}
    copies = {p for p, t in files.items() if t["kind"] == "near_copy"}
    injected = {p for p, t in files.items() if "of" in t}
    found = set()
    for a, b, d in zip(sim["filename_from"], sim["filename_to"], sim["distance"], strict=True):
        if d < threshold:
            continue
        ra, rb = str(Path(a).resolve().relative_to(data)), str(Path(b).resolve().relative_to(data))
        found.add(frozenset((ra, rb)))
    exact_copy = {p for p, t in files.items() if t["kind"] == "exact_copy"}
    found = {f for f in found if not f & exact_copy}  # exact copies are another reason
    right = {f for f in found if len({source.get(x, x) for x in f}) == 1}
    source_pairs = {f for f in found if not f & injected and f not in right}
    hits = {p for p in copies if any(p in f for f in right)}
    print(
        json.dumps(
            {
                "threshold": threshold,
                "seconds": round(seconds, 1),
                "flagged_pairs": len(found),
                "precision": round(len(right) / max(len(found), 1), 4),
                "precision_without_source_pairs": round(
                    len(right) / max(len(found) - len(source_pairs), 1), 4
                ),
                "recall": round(len(hits) / max(len(copies), 1), 4),
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    os.environ.setdefault("SENTRY_OPT_OUT", "1")
    main(sys.argv[1], float(sys.argv[2]) if len(sys.argv) > 2 else 0.9)
