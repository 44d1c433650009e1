"""The rule that picks index parameters from the number of vectors and a memory budget.

- Fewer than ``flat_below`` vectors: ``IDMap2,Flat`` (exact inner product; no training). Below
  that size an IVF-PQ saves little and is hard to train well.
- Otherwise IVF with ``nlist`` = the power of two at or above 4 x sqrt(N) (the low end of the usual
  4-16 x sqrt(N) band: k-means cost grows with nlist and this must train on 2 cores), capped so
  every list has at least 39 training points (FAISS's minimum); trained on 40 x nlist vectors
  (50k-200k).
- PQ codes of ``m`` bytes, the largest of 64/32/16/8 whose codes plus 8-byte ids fit 80% of the
  budget (the rest is the coarse quantizer, lists and search buffers), as 2m four-bit
  sub-quantizers in FAISS's fast-scan layout (``PQ128x4fs`` for 64 bytes): the same bytes as
  m eight-bit ones, searched from SIMD registers instead of lookup tables in memory. At 1M faces
  it answered 2.5-5x more kNN-graph queries per second than ``PQ64`` at the same nprobe, with
  the same same-identity recall after exact re-ranking, and trained in a third of the time
  (docs/BENCHMARKS.md, "kNN graph and the global stages at scale").
- OPQ (a learned rotation before PQ) when m < 64, FAISS's usual advice for short codes. Not
  measured here: the budgets benchmarked so far (8G and 100M at 1M vectors) both give m = 64.
- ``nprobe`` = max(32, nlist / 64) (``default_nprobe``), from the recall/speed sweep at 1M.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from facesieve.config import parse_memory
from facesieve.errors import ConfigError

PQ_SIZES = (64, 32, 16, 8)
ID_BYTES = 8
MIN_POINTS_PER_LIST = 39


@dataclass(frozen=True)
class IndexParams:
    factory: str
    nlist: int  # 0 for flat indexes
    m: int  # PQ bytes per vector; 0 for flat
    opq: bool
    nprobe: int
    train_size: int  # vectors to train on; 0 = no training

    @property
    def bytes_per_vector(self) -> int:
        return (self.m if self.m else 4 * 512) + ID_BYTES


def choose_params(
    n: int, dim: int, memory: str, flat_below: int, nprobe: int = 0, factory: str | None = None
) -> IndexParams:
    """Parameters for ``n`` vectors of ``dim`` dimensions within ``memory``."""
    budget = parse_memory(memory)
    if factory:
        nlist = _nlist_from_factory(factory)
        return IndexParams(factory, nlist, 0, "OPQ" in factory, nprobe or default_nprobe(nlist),
                           min(n, max(64 * nlist, 10_000)) if nlist else 0)  # fmt: skip
    if n < max(flat_below, 1):
        if n * (4 * dim + ID_BYTES) > budget:
            raise ConfigError(
                f"{n} exact vectors need more than --memory {memory}; lower flat_below"
            )
        return IndexParams("IDMap2,Flat", 0, 0, False, 0, 0)
    nlist = 2 ** math.ceil(math.log2(4 * math.sqrt(n)))
    nlist = max(1, min(nlist, 2 ** int(math.log2(max(n // MIN_POINTS_PER_LIST, 1)))))
    fitting = [m for m in PQ_SIZES if dim % m == 0 and (m + ID_BYTES) * n <= 0.8 * budget]
    if not fitting:
        raise ConfigError(
            f"{n} vectors do not fit --memory {memory} even at 8 bytes per vector; raise the budget"
        )
    m = fitting[0]
    opq = m < 64
    prefix = f"OPQ{2 * m}," if opq else ""
    train = min(n, max(40 * nlist, 50_000), 200_000)
    return IndexParams(
        f"{prefix}IVF{nlist},PQ{2 * m}x4fs", nlist, m, opq, nprobe or default_nprobe(nlist), train
    )


def default_nprobe(nlist: int) -> int:
    """max(32, nlist / 64), at most nlist: at 1M vectors (4,096 lists) that is 64, which measured
    recall@10 0.990 at 1,509 queries/s on 2 cores; 256 gained 0.004 recall for a third of the
    speed (docs/BENCHMARKS.md)."""
    return max(1, min(nlist, max(32, nlist // 64)))


def _nlist_from_factory(factory: str) -> int:
    match = re.search(r"IVF(\d+)", factory)
    return int(match.group(1)) if match else 0
