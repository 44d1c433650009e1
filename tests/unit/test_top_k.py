import numpy as np
import pyarrow as pa

from facesieve.index.reader import tie_keys, top_k


def test_top_k_equals_a_full_sort_with_ties_and_missing_values() -> None:
    rng = np.random.default_rng(0)
    for _ in range(200):
        n, w, k = 20, int(rng.integers(1, 300)), int(rng.integers(1, 40))
        sims = rng.choice(np.linspace(-1, 1, 20).astype(np.float32), size=(n, w))  # many ties
        sims[rng.random((n, w)) < 0.1] = -np.inf
        ids = rng.permutation(n * w * 10)[: n * w].reshape(n, w).astype(np.int64)
        ties = rng.integers(0, 2**60, size=(n, w)).astype(np.uint64)
        got_ids, got_sims = top_k(ids, sims, ties, k)
        order = np.lexsort((ties, -sims.astype(np.float64)), axis=1)[:, :k]
        want_sims = np.take_along_axis(sims, order, 1)
        want_ids = np.where(np.isfinite(want_sims), np.take_along_axis(ids, order, 1), -1)
        pad = ((0, 0), (0, k - want_ids.shape[1]))
        assert np.array_equal(got_ids, np.pad(want_ids, pad, constant_values=-1))
        assert np.array_equal(got_sims, np.pad(want_sims, pad, constant_values=-np.inf))


def test_tie_keys_are_image_id_bits_then_the_face_index_capped_at_15() -> None:
    ids = ["0123456789abcdef0123#0", "fedcba9876543210ffff#17", "00000000000000a0#3"]
    expected = [(int(f[:15], 16) << 4) | min(int(f.rsplit("#", 1)[1]), 15) for f in ids]
    assert tie_keys(pa.array(ids)).tolist() == expected
    assert tie_keys(pa.chunked_array([ids[:1], ids[1:]])).tolist() == expected
    assert tie_keys(pa.array([], pa.string())).shape == (0,)
