"""``facesieve index OUT``: train once on a sample, fill one index file per faces shard in
parallel, keep a manifest; later runs add only what is new and retrain when the data has grown.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import asdict, dataclass
from typing import cast

import faiss
import numpy as np

from facesieve.config import Config
from facesieve.errors import ConfigError
from facesieve.index.faiss_io import (
    add_shard,
    encode_shard,
    from_bytes,
    read_embeddings,
    shard_suffix,
    to_bytes,
)
from facesieve.index.manifest import Manifest, ShardEntry, make_ids, read_manifest, write_manifest
from facesieve.index.params import IndexParams, choose_params
from facesieve.runner.markers import read_markers
from facesieve.schema import EMBEDDING_DIM
from facesieve.storage import open_store
from facesieve.storage.base import Store

log = logging.getLogger(__name__)

DIM = EMBEDDING_DIM


@dataclass(frozen=True)
class FacesShard:
    shard_id: str
    count: int
    tag: str  # fingerprint + finish time of the embed marker: changes when faces are rewritten
    embed_fingerprint: str


@dataclass(frozen=True)
class IndexResult:
    manifest: Manifest
    retrained: bool
    added: list[str]
    refilled: list[str]
    removed: list[str]
    seconds: float


def faces_shards(out: Store) -> list[FacesShard]:
    """Finished faces shards (those with an embed done-marker), sorted by shard id."""
    shards = []
    for shard_id, marker in sorted(read_markers(out, "embed").items()):
        tag = f"{marker.fingerprint}:{marker.finished_at}"
        shards.append(
            FacesShard(shard_id, int(marker.stats.get("faces", 0)), tag, marker.fingerprint)
        )
    return shards


def train(params: IndexParams, sample: np.ndarray) -> faiss.Index:
    """The empty trained index; k-means runs on every GPU FAISS sees (faiss-gpu), else the CPU."""
    index = faiss.index_factory(DIM, params.factory, faiss.METRIC_INNER_PRODUCT)
    if params.train_size == 0:
        return index
    ivf = faiss.try_extract_index_ivf(index)
    if ivf is not None:
        ivf = faiss.downcast_index(ivf)
        if hasattr(ivf, "do_polysemous_training"):
            # index_factory turns on polysemous training for IVF-PQ: a code reordering used only
            # by polysemous filtering, which search here never uses. It took 50 of 53 s of
            # training on 20k vectors.
            ivf.do_polysemous_training = False
    if ivf is not None and faiss.get_num_gpus() > 0:
        log.info("training the coarse quantizer on %d GPU(s)", faiss.get_num_gpus())
        ivf.clustering_index = faiss.index_cpu_to_all_gpus(faiss.IndexFlatIP(ivf.d))
    started = time.perf_counter()
    index.train(np.ascontiguousarray(sample, dtype=np.float32))
    log.info(
        "trained %s on %d vectors in %.1fs",
        params.factory,
        len(sample),
        time.perf_counter() - started,
    )
    return index


def fill_shard(out: Store, trained: bytes, shard_id: str, number: int, file: str) -> int:
    """Add one faces shard's embeddings, with global ids, to a copy of the trained index."""
    emb = read_embeddings(out, shard_id)
    out.write_bytes(file, encode_shard(from_bytes(trained), emb, make_ids(number, len(emb))))
    return len(emb)


def _sample(out: Store, shards: list[FacesShard], size: int, seed: int = 0) -> np.ndarray:
    """About ``size`` vectors from randomly chosen whole shards (deterministic for a seed)."""
    order = np.random.default_rng(seed).permutation(len(shards))
    parts, have = [], 0
    for i in order:
        if have >= size:
            break
        emb = read_embeddings(out, shards[i].shard_id)
        parts.append(emb)
        have += len(emb)
    sample = np.concatenate(parts) if parts else np.zeros((0, DIM), np.float32)
    if len(sample) > size:
        sample = sample[np.random.default_rng(seed).choice(len(sample), size, replace=False)]
    return np.ascontiguousarray(sample)


def _needs_retrain(
    old: Manifest | None, params_key: str, total: int, cfg: Config, embed_fingerprint: str
) -> str:
    """Why the index must be retrained from scratch, or '' when it can be extended."""
    if old is None:
        return "no index yet"
    if old.params.get("key") != params_key:
        return "index settings changed"
    if old.embed_fingerprint != embed_fingerprint:
        return "the faces were embedded with another model or config"
    if total > cfg.index.retrain_factor * max(old.trained_on, 1):
        return f"vectors grew from {old.trained_on} to {total} (> {cfg.index.retrain_factor}x)"
    return ""


def build_index(out_uri: str, config: Config) -> IndexResult:
    started = time.perf_counter()
    out = open_store(out_uri, config.run.s3_endpoint)
    shards = faces_shards(out)
    total = sum(s.count for s in shards)
    if not shards or total == 0:
        raise ConfigError(f"no embedded faces under {out_uri}/faces: run `facesieve embed` first")
    fingerprints = {s.embed_fingerprint for s in shards}
    if len(fingerprints) > 1:
        raise ConfigError(
            "faces/ holds shards embedded with different configs or models; rerun `facesieve embed`"
        )
    embed_fingerprint = fingerprints.pop()
    ic = config.index
    params_key = f"{ic.factory}|{ic.memory}|{ic.flat_below}"
    old = read_manifest(out)
    reason = _needs_retrain(old, params_key, total, config, embed_fingerprint)

    timings: dict[str, float] = {}
    if reason:
        log.info("training a new index: %s", reason)
        params = choose_params(total, DIM, ic.memory, ic.flat_below, ic.nprobe, ic.factory)
        t = time.perf_counter()
        trained_index = train(
            params, _sample(out, shards, params.train_size) if params.train_size else None
        )
        timings["train_s"] = round(time.perf_counter() - t, 3)
        trained = to_bytes(trained_index)
        generation = hashlib.sha256(trained).hexdigest()[:12]
        trained_file = f"index/gen-{generation}/trained.faiss"
        out.write_bytes(trained_file, trained)
        manifest = Manifest(
            generation=generation,
            factory=params.factory,
            params={
                **asdict(params),
                "key": params_key,
                "bytes_per_vector": params.bytes_per_vector,
            },
            dim=DIM,
            embed_fingerprint=embed_fingerprint,
            trained_on=total,
            trained_file=trained_file,
        )
        entries = {}
    else:
        manifest = cast(Manifest, old)  # no reason to retrain implies an existing manifest
        trained = out.read_bytes(manifest.trained_file)
        entries = dict(manifest.shards)
    suffix = shard_suffix(from_bytes(trained))

    current = {s.shard_id: s for s in shards}
    removed = [sid for sid in entries if sid not in current]
    refill = [
        sid for sid, e in entries.items() if sid in current and e.faces_tag != current[sid].tag
    ]
    added = [s.shard_id for s in shards if s.shard_id not in entries]
    next_number = max((e.number for e in entries.values()), default=-1) + 1
    for sid in removed:
        out.delete(entries.pop(sid).file)
    for sid in added:
        file = f"index/gen-{manifest.generation}/shards/{sid}{suffix}"
        entries[sid] = ShardEntry(sid, next_number, file, 0, current[sid].tag)
        next_number += 1
    todo = [entries[sid] for sid in sorted(added + refill)]

    t = time.perf_counter()
    counts = _fill_all(out, trained, todo, config)
    timings["fill_s"] = round(time.perf_counter() - t, 3)
    for entry, count in zip(todo, counts, strict=True):
        entries[entry.shard_id] = ShardEntry(
            entry.shard_id, entry.number, entry.file, count, current[entry.shard_id].tag
        )
    manifest.shards = dict(sorted(entries.items()))
    manifest.merged = None
    manifest.timings = {**timings, "total_s": round(time.perf_counter() - started, 3)}
    write_manifest(out, manifest)
    if old is not None and old.generation != manifest.generation:
        _delete_generation(out, old)
    log.info("index: %d vectors in %d shards (%s)", manifest.total, len(entries), manifest.factory)
    return IndexResult(
        manifest, bool(reason), added, refill, removed, time.perf_counter() - started
    )


def merge_shards(out_uri: str, config: Config) -> Manifest:
    """Write every index shard into one index file (``index/gen-*/merged.faiss``)."""
    out = open_store(out_uri, config.run.s3_endpoint)
    manifest = read_manifest(out)
    if manifest is None:
        raise ConfigError(f"no index under {out_uri}: run `facesieve index` first")
    merged = from_bytes(out.read_bytes(manifest.trained_file))
    for entry in manifest.shards.values():
        add_shard(merged, out.read_bytes(entry.file))
    file = f"index/gen-{manifest.generation}/merged.faiss"
    out.write_bytes(file, to_bytes(merged))
    manifest.merged = {
        "file": file,
        "count": int(merged.ntotal),
        "fingerprint": manifest.fingerprint(),
    }
    write_manifest(out, manifest)
    return manifest


def _fill_all(out: Store, trained: bytes, todo: list[ShardEntry], config: Config) -> list[int]:
    """Fill index shards: Ray tasks (one CPU each) or in-process."""
    if not todo:
        return []
    if config.run.runner == "local" or len(todo) == 1:
        return [fill_shard(out, trained, e.shard_id, e.number, e.file) for e in todo]
    import ray

    from facesieve.runner.job import ray_session

    with ray_session(config):
        task = ray.remote(num_cpus=1)(_fill_task)
        trained_ref = ray.put(trained)
        return ray.get([task.remote(out, trained_ref, e.shard_id, e.number, e.file) for e in todo])


def _fill_task(out: Store, trained: bytes, shard_id: str, number: int, file: str) -> int:
    faiss.omp_set_num_threads(1)  # one CPU per task; tasks run side by side
    return fill_shard(out, trained, shard_id, number, file)


def _delete_generation(out: Store, old: Manifest) -> None:
    for entry in old.shards.values():
        out.delete(entry.file)
    out.delete(old.trained_file)
    if old.merged:
        out.delete(old.merged["file"])
