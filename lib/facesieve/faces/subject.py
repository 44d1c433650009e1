"""Which face of an image is its labeled subject, in centred datasets.

In LFW-style data (crops centred on the labeled person, bystanders at the edges) the subject is
the face whose box centre is nearest the image centre. Benchmarks and tests on such data use this
one rule; uncentred photo collections need the identity evidence of the cleaning step instead.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa


def central_faces(images: pa.Table, faces: pa.Table) -> dict[str, int]:
    """image_id -> row in ``faces`` of the face nearest its image's centre.

    ``images`` needs ``image_id``, ``width``, ``height``; ``faces`` needs ``image_id`` and ``bbox``.
    Images without faces are absent from the result.
    """
    size = {
        i: (w, h)
        for i, w, h in zip(
            *(images.column(c).to_pylist() for c in ("image_id", "width", "height")), strict=True
        )
    }
    ids = faces.column("image_id").to_pylist()
    boxes = np.asarray(faces.column("bbox").combine_chunks().flatten(), np.float32).reshape(-1, 4)
    half = np.array([size[i] for i in ids], np.float32).reshape(-1, 2) / 2
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    dist = np.hypot(*(centres - half).T)
    best: dict[str, int] = {}
    for row, (image_id, d) in enumerate(zip(ids, dist, strict=True)):
        if image_id not in best or d < dist[best[image_id]]:
            best[image_id] = row
    return best
