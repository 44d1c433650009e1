"""``facesieve run``: embed -> index (+ kNN graph) -> cluster -> clean, each stage incremental.

Each stage skips what is already done: embed by shard done-markers, the index by its manifest
(only new or changed shards are added), the kNN graph, clusters and report by keys of their
inputs. A second run with nothing new therefore reads a few small JSON files and returns.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from typing import Any

from facesieve.clean.job import CleanResult, run_clean
from facesieve.cluster.job import ClusterResult, run_cluster
from facesieve.config import Config
from facesieve.index.build import build_index, faces_shards
from facesieve.index.knn import KnnResult, build_knn
from facesieve.runner.job import JobResult, run_embed
from facesieve.storage import open_store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PipelineResult:
    embed: JobResult
    index: dict[str, Any]
    knn: KnnResult | None  # None when no face was found at all
    cluster: ClusterResult | None
    clean: CleanResult
    seconds: float

    @property
    def exit_code(self) -> int:
        return self.embed.exit_code

    def to_dict(self) -> dict[str, Any]:
        return {
            "embed": self.embed.run_info,
            "index": self.index,
            "knn": asdict(self.knn) if self.knn else None,
            "cluster": asdict(self.cluster) if self.cluster else None,
            "clean": {"up_to_date": self.clean.up_to_date, **self.clean.summary},
            "seconds": round(self.seconds, 3),
        }


def run_pipeline(
    input_uri: str, out_uri: str, config: Config, show_progress: bool | None = None
) -> PipelineResult:
    started = time.perf_counter()
    embed = run_embed(input_uri, out_uri, config, show_progress=show_progress)
    out = open_store(out_uri, config.run.s3_endpoint)
    if sum(s.count for s in faces_shards(out)) == 0:
        # nothing to index or cluster: the report still lists every file and why it failed
        log.warning("no face was found in any image; writing the report of the files only")
        clean = run_clean(out_uri, config)
        return PipelineResult(embed, {}, None, None, clean, time.perf_counter() - started)
    index = build_index(out_uri, config)
    info = {
        "factory": index.manifest.factory,
        "vectors": index.manifest.total,
        "retrained": index.retrained,
        "added": len(index.added),
        "refilled": len(index.refilled),
        "removed": len(index.removed),
        "seconds": round(index.seconds, 3),
    }
    knn = build_knn(out, config.index)
    cluster = run_cluster(out_uri, config)
    clean = run_clean(out_uri, config)
    return PipelineResult(embed, info, knn, cluster, clean, time.perf_counter() - started)
