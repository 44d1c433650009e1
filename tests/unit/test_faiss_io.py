import faiss
import numpy as np
import pytest

from facesieve.index.faiss_io import add_shard, encode_shard, from_bytes, shard_suffix, to_bytes


def _trained(factory: str) -> faiss.Index:
    index = faiss.index_factory(32, factory, faiss.METRIC_INNER_PRODUCT)
    x = np.random.default_rng(0).normal(size=(2000, 32)).astype(np.float32)
    faiss.normalize_L2(x)
    index.train(x)
    return index


@pytest.mark.parametrize("factory", ["IDMap2,Flat", "IVF8,PQ8", "OPQ8,IVF8,PQ8"])
def test_shards_add_up_to_what_add_with_ids_builds(factory: str) -> None:
    trained = _trained(factory)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 32)).astype(np.float32)
    faiss.normalize_L2(x)
    ids = np.arange(300, dtype=np.int64) + (5 << 32)
    assembled = from_bytes(to_bytes(trained))
    assert add_shard(assembled, encode_shard(trained, x[:0], ids[:0])) == 0  # an empty shard
    assert add_shard(assembled, encode_shard(trained, x[:100], ids[:100])) == 100
    assert add_shard(assembled, encode_shard(trained, x[100:], ids[100:])) == 200
    reference = from_bytes(to_bytes(trained))
    reference.add_with_ids(x, ids)
    assert assembled.ntotal == reference.ntotal == 300
    _, a = assembled.search(x[:20], 5)
    _, b = reference.search(x[:20], 5)
    np.testing.assert_array_equal(a, b)
    assert shard_suffix(trained) == (".faiss" if factory.startswith("IDMap") else ".codes.npz")
