import math

import numpy as np
import pytest

from facesieve.config import parse_memory
from facesieve.errors import ConfigError
from facesieve.index.params import choose_params
from facesieve.schema import MAX_FACES_PER_IMAGE, MAX_SLOTS, index_id, shard_number_of


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("8G", 8 * 2**30),
        ("512M", 512 * 2**20),
        ("1.5g", int(1.5 * 2**30)),
        ("1000", 1000),
        ("2GiB", 2 * 2**30),
    ],
)
def test_memory_budgets_parse(text: str, value: int) -> None:
    assert parse_memory(text) == value


@pytest.mark.parametrize("text", ["", "lots", "8X", "-1G"])
def test_bad_memory_budgets_are_config_errors(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_memory(text)


def test_small_sets_are_exact() -> None:
    p = choose_params(5_000, 512, "8G", flat_below=20_000)
    assert p.factory == "IDMap2,Flat" and p.train_size == 0


@pytest.mark.parametrize("n", [100_000, 1_000_000, 10_000_000, 100_000_000])
def test_nlist_stays_in_the_4_to_16_sqrt_n_band(n: int) -> None:
    p = choose_params(n, 512, "1T", flat_below=20_000)
    assert 4 <= p.nlist / math.sqrt(n) <= 16
    assert p.nlist & (p.nlist - 1) == 0 and p.factory.startswith("IVF")
    assert p.train_size >= min(n, 39 * p.nlist) or p.train_size == 200_000


def test_nlist_is_capped_by_training_points() -> None:
    p = choose_params(30_000, 512, "8G", flat_below=0)
    assert p.nlist * 39 <= 30_000


def test_pq_size_follows_the_memory_budget() -> None:
    roomy = choose_params(1_000_000, 512, "8G", flat_below=0)
    assert (roomy.m, roomy.opq, roomy.bytes_per_vector) == (64, False, 72)
    assert roomy.factory == "IVF4096,PQ128x4fs"  # 64 bytes as 128 four-bit codes (fast-scan)
    tight = choose_params(1_000_000, 512, "50M", flat_below=0)
    assert tight.m == 32 and tight.opq and tight.factory == "OPQ64,IVF4096,PQ64x4fs"
    assert tight.bytes_per_vector * 1_000_000 <= parse_memory("50M")
    with pytest.raises(ConfigError, match="do not fit"):
        choose_params(1_000_000, 512, "10M", flat_below=0)


def test_factory_string_overrides_the_rule() -> None:
    p = choose_params(1_000_000, 512, "8G", flat_below=0, nprobe=7, factory="OPQ16,IVF1024,PQ16")
    assert (p.factory, p.nlist, p.nprobe, p.opq) == ("OPQ16,IVF1024,PQ16", 1024, 7, True)


def test_index_ids_are_unique_per_shard_slot_and_face() -> None:
    ids = [index_id(n, slot, f) for n in (0, 7, 2**30) for slot in (0, 1, MAX_SLOTS - 1)
           for f in (0, 3, MAX_FACES_PER_IMAGE - 1)]  # fmt: skip
    assert len(set(ids)) == len(ids) and min(ids) >= 0
    assert shard_number_of(np.array(ids)).tolist() == [n for n in (0, 7, 2**30) for _ in range(9)]
    for bad in ((0, MAX_SLOTS, 0), (0, 0, MAX_FACES_PER_IMAGE), (0, -1, 0)):
        with pytest.raises(ValueError):
            index_id(*bad)
