"""Input listing: layouts, deterministic shards and the records inside them."""

from facesieve.sources.records import Record, iter_records
from facesieve.sources.shards import Shard, detect_layout, list_shards

__all__ = ["Record", "Shard", "detect_layout", "iter_records", "list_shards"]
