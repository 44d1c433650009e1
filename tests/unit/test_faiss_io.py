import itertools

import faiss
import numpy as np
import pytest

from facesieve.index.faiss_io import (
    assemble,
    encode_shard,
    from_bytes,
    shard_suffix,
    to_bytes,
)


def _trained(factory: str) -> faiss.Index:
    index = faiss.index_factory(32, factory, faiss.METRIC_INNER_PRODUCT)
    x = np.random.default_rng(0).normal(size=(2000, 32)).astype(np.float32)
    faiss.normalize_L2(x)
    index.train(x)
    return index


FACTORIES = [
    "IDMap2,Flat",
    "IVF8,PQ8",
    "OPQ8,IVF8,PQ8",
    "IVF8,PQ16x4fs",  # fast-scan: codes packed in blocks of 32 per list
    "OPQ16,IVF8,PQ16x4fs",
    "IVF300,PQ16x4fs",  # list numbers of two bytes
]


@pytest.mark.parametrize("factory", FACTORIES)
def test_shards_add_up_to_what_add_with_ids_builds(factory: str) -> None:
    trained = _trained(factory)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 32)).astype(np.float32)
    faiss.normalize_L2(x)
    ids = np.arange(300, dtype=np.int64) + (5 << 32)
    assembled = from_bytes(to_bytes(trained))
    assert assemble(assembled, [encode_shard(trained, x[:0], ids[:0])]) == 0  # an empty shard
    assert assemble(assembled, [encode_shard(trained, x[:100], ids[:100])]) == 100
    assert assemble(assembled, [encode_shard(trained, x[100:], ids[100:])]) == 200
    reference = from_bytes(to_bytes(trained))
    reference.add_with_ids(x, ids)
    assert assembled.ntotal == reference.ntotal == 300
    if "IVF" in factory:
        for index in (assembled, reference):
            faiss.ParameterSpace().set_index_parameter(index, "nprobe", 4)
    d_a, a = assembled.search(x[:50], 5)
    d_b, b = reference.search(x[:50], 5)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(d_a, d_b)
    assert (a[:, 0] == ids[:50]).mean() > 0.9  # found themselves: the codes were read right
    assert shard_suffix(trained) == (".faiss" if factory.startswith("IDMap") else ".codes.npz")


@pytest.mark.parametrize("factory", ["IVF8,PQ8", "IVF8,PQ16x4fs"])
def test_assembling_in_one_pass_equals_shard_by_shard(factory: str) -> None:
    """Uneven shards, so fast-scan lists end in part-full blocks that later shards fill."""
    trained = _trained(factory)
    x = np.random.default_rng(2).normal(size=(500, 32)).astype(np.float32)
    faiss.normalize_L2(x)
    ids = np.arange(500, dtype=np.int64) * 3
    cuts = [0, 37, 38, 201, 500]
    shards = [encode_shard(trained, x[a:b], ids[a:b]) for a, b in itertools.pairwise(cuts)]
    one_pass, by_shard = from_bytes(to_bytes(trained)), from_bytes(to_bytes(trained))
    assert assemble(one_pass, shards) == 500
    for data in shards:
        assemble(by_shard, [data])
    assert assemble(from_bytes(to_bytes(trained)), []) == 0
    for index in (one_pass, by_shard):
        faiss.ParameterSpace().set_index_parameter(index, "nprobe", 8)
    d1, i1 = one_pass.search(x, 10)
    d2, i2 = by_shard.search(x, 10)
    np.testing.assert_array_equal(np.sort(i1, 1), np.sort(i2, 1))
    np.testing.assert_allclose(np.sort(d1, 1), np.sort(d2, 1), rtol=0, atol=1e-6)
    assert (i1[:, 0] == ids).mean() > 0.9
