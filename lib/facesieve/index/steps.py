"""The index as two steps: ``index-train`` (one unit) and ``index-fill`` (one unit per faces shard).

Training runs once on a seeded sample of whole faces shards and is kept until the number of
vectors grows past ``index.retrain_factor`` times what it was trained on, the index settings
change, or the faces were embedded with another model or config; then a new *generation* is
trained and every shard is encoded again. Filling encodes one faces shard into
``index/gen-<G>/shards/<shard_id>``; a fill unit's digest covers the generation and the faces
shard's embed digest, so a nightly run encodes exactly the new and rewritten shards. The manifest
is written after the fill step (``write_index_manifest``) and names what search reads.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from typing import Any

import faiss
import numpy as np

from facesieve.config import Config
from facesieve.errors import ConfigError
from facesieve.index.faiss_io import (
    assemble,
    encode_shard,
    from_bytes,
    read_vectors,
    shard_suffix,
    to_bytes,
)
from facesieve.index.manifest import Manifest, ShardEntry, write_manifest
from facesieve.index.params import IndexParams, choose_params
from facesieve.schema import EMBEDDING_DIM
from facesieve.storage.base import Store
from facesieve.work import Marker, Resources, Unit, UnitOutput, digest, read_markers
from facesieve.work.contract import Progress

log = logging.getLogger(__name__)

DIM = EMBEDDING_DIM
VERSION = 1
TRAIN_UNIT = "train"


@dataclass(frozen=True)
class FacesShard:
    """A finished faces shard, from its embed done-marker."""

    shard_id: str
    count: int
    digest: str  # the embed unit's digest: changes when the shard's faces are rewritten
    fingerprint: str  # the embed config and models
    number: int


def faces_shards(out: Store) -> list[FacesShard]:
    """Every finished faces shard, sorted by shard id."""
    return [
        FacesShard(
            sid,
            int(m.stats.get("faces", 0)),
            m.digest,
            str(m.meta.get("fingerprint")),
            int(m.meta.get("number", -1)),
        )
        for sid, m in sorted(read_markers(out, "embed").items())
    ]


def embed_fingerprint(shards: list[FacesShard]) -> str:
    found = {s.fingerprint for s in shards if s.count}
    if len(found) > 1:
        raise ConfigError(
            "faces/ holds shards embedded with different configs or models; rerun `facesieve run`"
        )
    return found.pop() if found else ""


def train(params: IndexParams, sample: np.ndarray | None) -> faiss.Index:
    """The empty trained index; k-means runs on every GPU FAISS sees (faiss-gpu), else the CPU."""
    index = faiss.index_factory(DIM, params.factory, faiss.METRIC_INNER_PRODUCT)
    if params.train_size == 0 or sample is None:
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


def _sample(out: Store, shard_ids: list[str], size: int, seed: int = 0) -> np.ndarray:
    """About ``size`` vectors from randomly chosen whole shards (deterministic for a seed)."""
    order = np.random.default_rng(seed).permutation(len(shard_ids))
    parts, have = [], 0
    for i in order:
        if have >= size:
            break
        emb, _ = read_vectors(out, shard_ids[i])
        parts.append(emb)
        have += len(emb)
    sample = np.concatenate(parts) if parts else np.zeros((0, DIM), np.float32)
    if len(sample) > size:
        sample = sample[np.random.default_rng(seed).choice(len(sample), size, replace=False)]
    return np.ascontiguousarray(sample)


@dataclass(frozen=True)
class TrainWork:
    params: IndexParams
    shard_ids: list[str]  # where the training sample comes from
    total: int
    fingerprint: str
    params_key: str


class TrainStep:
    """One unit: the trained, empty index of the current generation."""

    name = "index-train"
    item_name = ""
    owned_prefixes = ()
    resources = Resources(cpus=1.0)

    def __init__(self, out: Store, config: Config) -> None:
        self.out, self.config = out, config

    def plan(self, done: dict[str, Marker]) -> list[Unit]:
        shards = [s for s in faces_shards(self.out) if s.count]
        total = sum(s.count for s in shards)
        if not total:
            return []
        fingerprint = embed_fingerprint(shards)
        ic = self.config.index
        params_key = f"{ic.factory}|{ic.memory}|{ic.flat_below}"
        previous = done.get(TRAIN_UNIT)
        if previous is not None and not self._reason(previous.meta, params_key, total, fingerprint):
            return [Unit(TRAIN_UNIT, previous.digest, previous.label)]  # the training holds
        params = choose_params(total, DIM, ic.memory, ic.flat_below, ic.nprobe, ic.factory)
        work = TrainWork(params, [s.shard_id for s in shards], total, fingerprint, params_key)
        d = digest(self.name, VERSION, params_key, fingerprint, asdict(params), total)
        return [Unit(TRAIN_UNIT, d, f"train {params.factory} ({total} vectors)", 1, work)]

    def _reason(self, meta: dict[str, Any], params_key: str, total: int, fingerprint: str) -> str:
        """Why the index must be trained again, or '' when the current training holds."""
        factor = self.config.index.retrain_factor
        if meta.get("params_key") != params_key:
            return "index settings changed"
        if meta.get("fingerprint") != fingerprint:
            return "the faces were embedded with another model or config"
        if total > factor * max(int(meta.get("trained_on", 0)), 1):
            return f"vectors grew from {meta.get('trained_on')} to {total} (> {factor}x)"
        return ""

    def setup(self, device: str, threads: int) -> None:
        if threads:
            faiss.omp_set_num_threads(threads)

    def process(self, unit: Unit, progress: Progress) -> UnitOutput:
        work: TrainWork = unit.payload
        started = time.perf_counter()
        params = work.params
        sample = _sample(self.out, work.shard_ids, params.train_size) if params.train_size else None
        trained = to_bytes(train(params, sample))
        key = f"index/gen-{unit.digest}/trained.faiss"
        self.out.write_bytes(key, trained)
        progress(1)
        stats = {
            "vectors_sampled": 0 if sample is None else len(sample),
            "seconds": round(time.perf_counter() - started, 3),
        }
        meta = {
            "generation": unit.digest,
            "trained_file": key,
            "params": {
                **asdict(params),
                "key": work.params_key,
                "bytes_per_vector": params.bytes_per_vector,
            },
            "params_key": work.params_key,
            "fingerprint": work.fingerprint,
            "trained_on": work.total,
        }
        return UnitOutput(stats, [key], meta)


@dataclass(frozen=True)
class FillWork:
    shard_id: str
    number: int
    file: str


class FillStep:
    """One unit per faces shard: its vectors encoded with the current generation's training."""

    name = "index-fill"
    item_name = "vectors"
    resources = Resources(cpus=1.0)

    def __init__(self, out: Store, train_marker: Marker) -> None:
        self.out = out
        self.generation = str(train_marker.meta["generation"])
        self.trained_file = str(train_marker.meta["trained_file"])
        self.owned_prefixes = (f"index/gen-{self.generation}/shards/",)
        self._trained: faiss.Index | None = None
        self._suffix = ""

    def plan(self, done: dict[str, Marker]) -> list[Unit]:
        self._suffix = shard_suffix(from_bytes(self.out.read_bytes(self.trained_file)))
        units = []
        for s in faces_shards(self.out):
            if not s.count:
                continue
            file = f"{self.owned_prefixes[0]}{s.shard_id}{self._suffix}"
            d = digest(self.name, VERSION, self.generation, s.digest)
            units.append(
                Unit(s.shard_id, d, s.shard_id, s.count, FillWork(s.shard_id, s.number, file))
            )
        return units

    def setup(self, device: str, threads: int) -> None:
        faiss.omp_set_num_threads(max(threads, 1))
        self._trained = from_bytes(self.out.read_bytes(self.trained_file))

    def process(self, unit: Unit, progress: Progress) -> UnitOutput:
        if self._trained is None:
            raise RuntimeError("FillStep.setup() must run before process()")
        work: FillWork = unit.payload
        emb, ids = read_vectors(self.out, work.shard_id)
        self.out.write_bytes(work.file, encode_shard(self._trained, emb, ids))
        progress(len(emb))
        return UnitOutput({"vectors": len(emb)}, [work.file], {"number": work.number})


def write_index_manifest(
    out: Store, train_marker: Marker, fill_markers: dict[str, Marker]
) -> Manifest:
    """The manifest of the current generation and every filled shard; older generations go."""
    meta = train_marker.meta
    params = dict(meta["params"])
    manifest = Manifest(
        generation=str(meta["generation"]),
        factory=str(params["factory"]),
        params=params,
        dim=DIM,
        embed_fingerprint=str(meta["fingerprint"]),
        trained_on=int(meta["trained_on"]),
        trained_file=str(meta["trained_file"]),
        shards={
            sid: ShardEntry(
                sid, int(m.meta["number"]), m.outputs[0], int(m.stats["vectors"]), m.digest
            )
            for sid, m in sorted(fill_markers.items())
        },
    )
    write_manifest(out, manifest)
    current = f"index/gen-{manifest.generation}/"
    for info in out.list("index/"):
        if info.key.startswith("index/gen-") and not info.key.startswith(current):
            out.delete(info.key)
    log.info(
        "index: %d vectors in %d shards (%s)",
        manifest.total,
        len(manifest.shards),
        manifest.factory,
    )
    return manifest


def merge_shards(out: Store, manifest: Manifest) -> Manifest:
    """Write every index shard into one index file (``index/gen-*/merged.faiss``); search opens
    it instead of assembling the shards while the manifest's fingerprint still matches."""
    merged = from_bytes(out.read_bytes(manifest.trained_file))
    assemble(merged, (out.read_bytes(e.file) for e in manifest.shards.values()))
    file = f"index/gen-{manifest.generation}/merged.faiss"
    out.write_bytes(file, to_bytes(merged))
    manifest.merged = {
        "file": file,
        "count": int(merged.ntotal),
        "fingerprint": manifest.fingerprint(),
    }
    write_manifest(out, manifest)
    return manifest
