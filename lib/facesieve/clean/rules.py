"""All cleaning rules applied in order, producing the action list and the evidence behind it."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from facesieve import schema
from facesieve.clean.actions import ActionBuilder
from facesieve.clean.duplicates import Duplicates, find_duplicates
from facesieve.clean.inputs import CleanInputs
from facesieve.clean.labels import (
    Identities,
    best_other_label,
    build_identities,
    face_flags,
    multiple_identities,
    own_similarity,
    split_labels,
)
from facesieve.clean.pixel_cache import PairKey
from facesieve.clean.subjects import (
    first_subjects,
    largest_subjects,
    refine_subjects,
    usable_faces,
)
from facesieve.config import CleanConfig

log = logging.getLogger(__name__)


@dataclass
class Decision:
    actions: pa.Table
    subject: np.ndarray  # (I,) face row shown for each image, -1 none
    label_names: list[str]
    image_label: np.ndarray  # (I,) label code, -1 unlabeled
    identities: Identities | None
    duplicates: Duplicates
    reason_scores: list[dict[str, float]]  # per image: reason -> its own score
    timings: dict[str, float] = field(default_factory=dict)


def _codes(labels: list[str | None]) -> tuple[np.ndarray, list[str]]:
    names = sorted({x for x in labels if x is not None})
    code = {n: i for i, n in enumerate(names)}
    return np.array([code.get(x, -1) if x is not None else -1 for x in labels], np.int64), names


def decide(
    inp: CleanInputs,
    cfg: CleanConfig,
    mode: str,
    s3_endpoint: str | None,
    max_pixels: int,
    known_scores: dict[PairKey, float] | None = None,
) -> Decision:
    """Every rule over ``inp``; ``known_scores`` are pixel scores kept by an earlier report."""
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    img = inp.images
    ids = img.column("image_id").to_pylist()
    status = img.column("status").to_pylist()
    image_label, names = _codes(img.column("label").to_pylist())
    labeled = mode == "labeled"
    if not labeled:
        image_label = np.full(inp.n_images, -1, np.int64)
    face_label = image_label[inp.face_image] if len(inp.face_image) else np.zeros(0, np.int64)
    usable = usable_faces(inp, cfg)
    subject = first_subjects(inp, usable) if labeled else largest_subjects(inp, usable)
    b = ActionBuilder(inp.n_images)

    # file-level reasons
    for row, st in enumerate(status):
        if st in (schema.DECODE_ERROR, schema.TOO_LARGE, schema.UNSUPPORTED):
            b.add(row, "decode_error")
        elif st == schema.NO_FACE:
            b.add(row, "no_face")
    has_subject = subject >= 0
    good = np.zeros(inp.n_images, bool)
    good[has_subject] = usable[subject[has_subject]]
    for row in np.flatnonzero(has_subject & ~good):
        b.add(int(row), "low_quality")

    identities = None
    if labeled and len(inp.face_image):
        t = time.perf_counter()
        rows = np.flatnonzero(good & (image_label >= 0))
        share, fallback = cfg.identity_min_share, cfg.identity_fallback_cosine
        identities = build_identities(inp, subject[rows], face_label, len(names), share, fallback)
        refined = refine_subjects(
            inp,
            usable,
            subject,
            image_label,
            identities.centroids,
            identities.counts >= 1,
            cfg.outlier_max_own,
        )
        srows = refined[rows]
        if not np.array_equal(srows, subject[rows]):  # often none moves: one face per image
            identities = build_identities(inp, srows, face_label, len(names), share, fallback)
        subject = refined
        is_subject = np.zeros(len(inp.face_image), bool)
        is_subject[srows] = True
        labs = face_label[srows]
        own = own_similarity(inp, identities, srows, labs)
        other_lab, other_sim = best_other_label(
            inp, identities, srows, labs, face_label, is_subject, cfg.mislabel_min_cosine
        )
        face_px = inp.faces.column("face_px").to_numpy(zero_copy_only=False)[srows]
        flags = face_flags(cfg, own, other_lab, other_sim, face_px)
        for k, row in enumerate(rows):
            if flags.mislabeled[k]:
                b.add(int(row), "mislabeled", float(other_sim[k]), names[flags.suggested[k]])
            elif flags.outlier[k]:
                b.add(int(row), "outlier", float(own[k]))
        multi = multiple_identities(inp, identities, srows, face_label, cfg)
        for k, row in enumerate(rows):
            if int(srows[k]) in multi and not flags.mislabeled[k]:
                b.add(int(row), "label_has_multiple_identities", multi[int(srows[k])])
        split = split_labels(inp, identities, face_label, cfg)
        member_rows = rows[identities.member[srows]]
        for row in member_rows:
            lab = int(image_label[row])
            if lab in split:
                main, cos = split[lab]
                b.add(int(row), "identity_split_across_labels", cos, names[main])
        per_image = np.bincount(inp.face_image[usable], minlength=inp.n_images)
        for row in np.flatnonzero((per_image >= 2) & (image_label >= 0)):
            b.add(int(row), "multiple_faces")
        timings["labels_s"] = round(time.perf_counter() - t, 3)

    t = time.perf_counter()
    # In labeled data duplicates are proposed by each image's subject face only: a bystander
    # shared by two different crops of one event photo does not make them copies. In a photo
    # collection every usable face proposes (a crop of a group photo keeps only some faces).
    reference = subject.copy()  # the face framing each image's pixels: its usable subject
    shown = reference >= 0
    reference[shown] = np.where(usable[subject[shown]], subject[shown], -1)
    proposing = usable.copy()
    if labeled:
        proposing[:] = False
        proposing[reference[reference >= 0]] = True
    distrust = reference < 0  # copies kept last: no usable face, or a label the faces doubt
    for row, reasons in enumerate(b.reasons):
        distrust[row] |= "mislabeled" in reasons or "outlier" in reasons
    dups = find_duplicates(
        inp, proposing, reference, cfg, s3_endpoint, max_pixels, known_scores, distrust
    )
    for row, keep in dups.exact.items():
        b.add(row, "exact_duplicate", 1.0, duplicate_of=ids[keep])
    for row, (keep, score) in dups.near.items():
        b.add(row, "near_duplicate", score, duplicate_of=ids[keep])
    labels = img.column("label").to_pylist()
    for row, keep in dups.across_labels.items() if labeled else ():
        other = labels[keep] if row != keep else None
        b.add(row, "duplicate_across_labels", suggested=other)
    timings["duplicates_s"] = round(time.perf_counter() - t, 3)

    cluster_ids = [int(inp.cluster_ids[s]) if s >= 0 else None for s in subject.tolist()]
    actions = b.table(img, cluster_ids)
    timings["rules_s"] = round(time.perf_counter() - t0, 3)
    return Decision(actions, subject, names, image_label, identities, dups, b.scores, timings)
